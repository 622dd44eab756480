"""The settings of a client, with their bounds: every queue and cache of the SDK is bounded here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class ConfigurationError(ValueError):
    """A client was built with settings it cannot work with (raised at construction, never later)."""


@dataclass(frozen=True, slots=True)
class Options:
    url: str
    """The flagd server, e.g. http://127.0.0.1:8080."""
    sdk_key: str
    init_timeout: float = 2.0
    """The longest a client's construction (or `start()`) waits for the first flag set."""
    request_timeout: float = 5.0
    """Each HTTP request (connecting, sending, waiting for the answer)."""
    stream: bool = True
    """Follow changes over the server-sent-event stream; otherwise (or while it fails) poll with ETags."""
    poll_seconds: float = 30.0
    """How often to re-check the flag set (an ETag request: 304 when nothing changed) while not streaming."""
    reconnect_seconds: float = 0.5
    """The first wait before reconnecting; it doubles, with jitter, up to max_reconnect_seconds."""
    max_reconnect_seconds: float = 30.0
    batch_size: int = 500
    """Events per request to POST /v1/events."""
    flush_seconds: float = 2.0
    """Queued events are sent at least this often."""
    max_queue: int = 100_000
    """Events waiting for delivery; past it the oldest are dropped (and counted)."""
    exposure_cache: int = 100_000
    """(experiment, phase, unit) entries remembered so that each exposure is logged once; oldest first out."""
    bootstrap: Path | None = None
    """A flag-set file (flags-as-code: JSON, or YAML when PyYAML is installed) served until the server answers."""
    remote: bool = False
    """Evaluate through the server (OFREP, one request per evaluation) instead of in process: for short-lived
    processes. Only the sync `Client`; the server records the exposures."""
    close_timeout: float = 5.0
    """At close (and at interpreter exit), how long queued events may take to be delivered."""

    def __post_init__(self) -> None:
        if not self.url.startswith(("http://", "https://")):
            raise ConfigurationError(f"url must start with http:// or https://, got {self.url!r}")
        if not self.sdk_key:
            raise ConfigurationError(
                "sdk_key is required: create one with `flagd keys create --scope sdk NAME`"
            )
        positive = {
            "init_timeout": self.init_timeout,
            "request_timeout": self.request_timeout,
            "poll_seconds": self.poll_seconds,
            "reconnect_seconds": self.reconnect_seconds,
            "max_reconnect_seconds": self.max_reconnect_seconds,
            "flush_seconds": self.flush_seconds,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ConfigurationError(f"{name} must be positive, got {value}")
        if not 1 <= self.batch_size <= 5_000:
            raise ConfigurationError(
                f"batch_size must be between 1 and 5000 (the server's limit), got {self.batch_size}"
            )
        if self.max_queue < self.batch_size:
            raise ConfigurationError(f"max_queue must be at least batch_size, got {self.max_queue}")
        if self.exposure_cache < 1:
            raise ConfigurationError(f"exposure_cache must be at least 1, got {self.exposure_cache}")
