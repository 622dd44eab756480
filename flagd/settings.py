"""Server settings: one frozen value, read once from the environment and passed in.

Every variable is documented in README.md ("Configuration"). Reading fails with a
`SettingsError` that names the variable and says what a valid value looks like.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

from flagd.auth.origins import InvalidOrigin, origins

LogFormat = Literal["text", "json"]
LogLevel = Literal["debug", "info", "warning", "error", "critical"]

_LOG_LEVELS: tuple[LogLevel, ...] = ("debug", "info", "warning", "error", "critical")
_LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

T = TypeVar("T")


class SettingsError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str | None = None
    results_database_url: str | None = None
    """A streaming read replica of DATABASE_URL that results reads go to (flagd.results.replica); the
    catch-ups that write roll-ups stay on the primary."""
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    data_dir: Path = field(default_factory=lambda: Path(".flagd"))
    log_level: LogLevel = "info"
    log_format: LogFormat = "text"
    access_log: bool = True
    migrate_on_start: bool = True
    db_pool_min_size: int = 1
    db_pool_max_size: int = 10
    db_connect_timeout: float = 10.0
    max_body_bytes: int = 1_048_576
    header_timeout_seconds: float = 10.0
    """A connection's next request headers must be complete this long after it opened (or after its previous
    response ended), however slowly they trickle in; otherwise the server closes it."""
    body_timeout_seconds: float = 30.0
    """A request's body must be complete this long after its headers; otherwise the server closes the connection."""
    keep_alive_seconds: float = 5.0
    """How long an idle connection is kept open between requests."""
    max_connections: int = 10_000
    """Connections one worker holds at once (fewer when its open-file limit is lower): past it the connection
    that has waited longest for its request headers is closed to make room, or, when every one has a request in
    flight, the newcomer is answered 503 too_many_connections."""
    config_poll_seconds: float = 5.0
    sse_heartbeat_seconds: float = 15.0
    events_max_body_bytes: int = 4 * 1_048_576
    events_max_inflated_bytes: int = 4 * 1_048_576
    events_max_batch: int = 5_000
    events_max_properties_bytes: int = 4_096
    events_max_future_skew_seconds: float = 300.0
    events_max_age_days: int = 30
    events_max_queued: int = 100_000
    events_max_queued_bytes: int = 96 * 1_048_576
    events_commit_timeout: float = 10.0
    server_exposures: bool = True
    results_pre_exposure_days: int = 14
    results_rollup_seconds: float = 30.0
    results_fresh_seconds: float = 5.0
    """A results request reads a roll-up caught up at most this long ago as it is, without catching it up."""
    results_inline_build_units: int = 50_000
    """A running experiment's phase with fewer exposed units has its first roll-ups built by the request."""
    results_processes: int = 1
    """Processes per worker that compute results and render pages, off the loop that answers evaluations."""
    results_max_waiting: int = 4
    """Results requests a worker lets wait for a busy process; past it, 503 with Retry-After."""
    results_timeout_seconds: float = 120.0
    metrics: str = "key"
    """Who may read GET /metrics: key (an admin key), open (anyone), off."""
    metrics_port: int | None = None
    """A port of their own for the metrics, open, served by the supervisor (`flagd serve`)."""
    cors_origins: tuple[str, ...] = ()
    """Browser origins every client key may be used from (a key created with origins of its own is allowed only
    from those); the CORS answers of the client endpoints name them."""
    client_rate_per_second: float = 20.0
    client_rate_burst: int = 40
    client_key_rate_per_second: float = 1000.0
    client_key_rate_burst: int = 2000
    client_events_max_batch: int = 50
    client_events_max_body_bytes: int = 65_536
    client_events_max_value: float = 1e6
    """A track event's value sent with a client key must be smaller than this in magnitude."""
    schedules_poll_seconds: float = 1.0
    """How often each worker's schedule executor looks for due schedules (and once at start-up)."""
    schedules_batch: int = 100
    """Schedules one executor runs at most per round, each in its own transaction."""
    schedules_timeout_seconds: float = 30.0
    """A schedule's transaction is cancelled (and retried) past this, its statements and lock waits."""
    webhook_poll_seconds: float = 2.0
    """How often each worker looks for due webhook deliveries besides being woken by new notifications."""
    webhook_connect_timeout_seconds: float = 5.0
    webhook_timeout_seconds: float = 10.0
    """A webhook attempt, from connecting to the end of the receiver's answer, must finish within this."""
    webhook_backoff_base_seconds: float = 5.0
    webhook_backoff_cap_seconds: float = 3_600.0
    webhook_retry_seconds: float = 86_400.0
    """How long a delivery is retried before it is marked failed."""
    webhook_concurrency: int = 8
    webhook_concurrency_per_webhook: int = 2
    webhook_log_size: int = 200
    rollouts_monitor_seconds: float = 30.0
    """How often each worker's rollout monitor looks at the running rollouts (0: this worker does not look)."""
    results_watch_seconds: float = 300.0
    """How often the results watcher compares running experiments' results with what it saw and writes the
    notifications of what changed (flagd.results.watcher); 0 turns it off."""
    events_unplanned: str = "observe"
    """Once a tracking plan exists, what happens to track events it does not name: allow, observe, enforce."""
    data_health_seconds: float = 60.0
    data_health_grace_seconds: float = 300.0
    data_health_max_hours: int = 168
    data_health_max_events: int = 200

    def __post_init__(self) -> None:
        if self.results_database_url is not None and not self.results_database_url.startswith(
            ("postgresql://", "postgres://")
        ):
            raise SettingsError(
                "FLAGD_RESULTS_DATABASE_URL must be a PostgreSQL URL (postgresql://user:password@host:5432/flagd) "
                "of a streaming read replica of DATABASE_URL"
            )
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"FLAGD_PORT must be between 0 and 65535, got {self.port}")
        if self.workers < 1:
            raise SettingsError(f"FLAGD_WORKERS must be at least 1, got {self.workers}")
        if not 0 <= self.db_pool_min_size <= self.db_pool_max_size or self.db_pool_max_size < 1:
            raise SettingsError(
                "FLAGD_DB_POOL_MIN_SIZE and FLAGD_DB_POOL_MAX_SIZE must satisfy 0 <= min <= max and max >= 1, "
                f"got min={self.db_pool_min_size} max={self.db_pool_max_size}"
            )
        if self.db_connect_timeout <= 0:
            raise SettingsError(f"FLAGD_DB_CONNECT_TIMEOUT must be positive, got {self.db_connect_timeout}")
        if self.max_body_bytes < 1024:
            raise SettingsError(f"FLAGD_MAX_BODY_BYTES must be at least 1024, got {self.max_body_bytes}")
        if self.config_poll_seconds <= 0:
            raise SettingsError(f"FLAGD_CONFIG_POLL_SECONDS must be positive, got {self.config_poll_seconds}")
        if self.sse_heartbeat_seconds <= 0:
            raise SettingsError(
                f"FLAGD_SSE_HEARTBEAT_SECONDS must be positive, got {self.sse_heartbeat_seconds}"
            )

        self._check_transport()
        self._check_events()
        self._check_clients()
        self._check_webhooks()
        _check_bounds([("FLAGD_ROLLOUTS_MONITOR_SECONDS", self.rollouts_monitor_seconds, 0, 86_400)])
        if self.metrics_port is not None and not 1 <= self.metrics_port <= 65535:
            raise SettingsError(f"FLAGD_METRICS_PORT must be between 1 and 65535, got {self.metrics_port}")
        _check_bounds(
            [
                ("FLAGD_SCHEDULES_POLL_SECONDS", self.schedules_poll_seconds, 0.01, 3_600),
                ("FLAGD_SCHEDULES_BATCH", self.schedules_batch, 1, 10_000),
                ("FLAGD_SCHEDULES_TIMEOUT_SECONDS", self.schedules_timeout_seconds, 0.1, 3_600),
            ]
        )
        if self.results_watch_seconds != 0 and not 0.05 <= self.results_watch_seconds <= 86_400:
            raise SettingsError(
                "FLAGD_RESULTS_WATCH_SECONDS must be 0 (off) or between 0.05 and 86400, "
                f"got {self.results_watch_seconds:g}"
            )
        _check_bounds(
            [
                ("FLAGD_DATA_HEALTH_SECONDS", self.data_health_seconds, 0.05, 86_400),
                ("FLAGD_DATA_HEALTH_GRACE_SECONDS", self.data_health_grace_seconds, 0, 86_400),
                ("FLAGD_DATA_HEALTH_MAX_HOURS", self.data_health_max_hours, 1, 24 * 60),
                ("FLAGD_DATA_HEALTH_MAX_EVENTS", self.data_health_max_events, 1, 10_000),
            ]
        )

    def _check_transport(self) -> None:
        _check_bounds(
            [
                ("FLAGD_HEADER_TIMEOUT_SECONDS", self.header_timeout_seconds, 0.1, 600),
                ("FLAGD_BODY_TIMEOUT_SECONDS", self.body_timeout_seconds, 0.1, 3_600),
                ("FLAGD_KEEP_ALIVE_SECONDS", self.keep_alive_seconds, 0.1, 600),
                ("FLAGD_MAX_CONNECTIONS", self.max_connections, 1, 500_000),
            ]
        )

    def _check_events(self) -> None:
        bounds: list[tuple[str, float, float, float]] = [
            ("FLAGD_EVENTS_MAX_BODY_BYTES", self.events_max_body_bytes, 1024, 256 * 1_048_576),
            ("FLAGD_EVENTS_MAX_INFLATED_BYTES", self.events_max_inflated_bytes, 1024, 1024 * 1_048_576),
            ("FLAGD_EVENTS_MAX_BATCH", self.events_max_batch, 1, 100_000),
            ("FLAGD_EVENTS_MAX_PROPERTIES_BYTES", self.events_max_properties_bytes, 2, 1_048_576),
            ("FLAGD_EVENTS_MAX_FUTURE_SKEW_SECONDS", self.events_max_future_skew_seconds, 0, 86_400),
            ("FLAGD_EVENTS_MAX_AGE_DAYS", self.events_max_age_days, 1, 3_650),
            ("FLAGD_EVENTS_MAX_QUEUED", self.events_max_queued, 1, 10_000_000),
            ("FLAGD_EVENTS_MAX_QUEUED_BYTES", self.events_max_queued_bytes, 1_048_576, 16 * 1024 * 1_048_576),
            ("FLAGD_EVENTS_COMMIT_TIMEOUT", self.events_commit_timeout, 0.1, 600),
            ("FLAGD_RESULTS_PRE_EXPOSURE_DAYS", self.results_pre_exposure_days, 0, 365),
            ("FLAGD_RESULTS_ROLLUP_SECONDS", self.results_rollup_seconds, 1, 86_400),
            ("FLAGD_RESULTS_FRESH_SECONDS", self.results_fresh_seconds, 0, 3_600),
            ("FLAGD_RESULTS_INLINE_BUILD_UNITS", self.results_inline_build_units, 0, 100_000_000),
            ("FLAGD_RESULTS_PROCESSES", self.results_processes, 1, 32),
            ("FLAGD_RESULTS_MAX_WAITING", self.results_max_waiting, 0, 1_000),
            ("FLAGD_RESULTS_TIMEOUT_SECONDS", self.results_timeout_seconds, 1, 3_600),
        ]
        _check_bounds(bounds)
        if self.events_max_queued < self.events_max_batch:
            raise SettingsError(
                "FLAGD_EVENTS_MAX_QUEUED must be at least FLAGD_EVENTS_MAX_BATCH, or no batch could ever be "
                f"queued; got {self.events_max_queued} < {self.events_max_batch}"
            )

    def _check_clients(self) -> None:
        _check_bounds(
            [
                ("FLAGD_CLIENT_RATE_PER_SECOND", self.client_rate_per_second, 0.01, 1_000_000),
                ("FLAGD_CLIENT_RATE_BURST", self.client_rate_burst, 1, 1_000_000),
                ("FLAGD_CLIENT_KEY_RATE_PER_SECOND", self.client_key_rate_per_second, 0.01, 10_000_000),
                ("FLAGD_CLIENT_KEY_RATE_BURST", self.client_key_rate_burst, 1, 10_000_000),
                ("FLAGD_CLIENT_EVENTS_MAX_BATCH", self.client_events_max_batch, 1, 100_000),
                (
                    "FLAGD_CLIENT_EVENTS_MAX_BODY_BYTES",
                    self.client_events_max_body_bytes,
                    1024,
                    256 * 1_048_576,
                ),
                ("FLAGD_CLIENT_EVENTS_MAX_VALUE", self.client_events_max_value, 1e-6, 1e15),
            ]
        )
        try:
            normal = origins(self.cors_origins)
        except InvalidOrigin as exc:
            raise SettingsError(f"FLAGD_CORS_ORIGINS: {exc}") from None
        if normal != self.cors_origins:
            raise SettingsError(
                f"FLAGD_CORS_ORIGINS must list each origin once as browsers send it: {', '.join(normal)}"
            )

    def _check_webhooks(self) -> None:
        _check_bounds(
            [
                ("FLAGD_WEBHOOK_POLL_SECONDS", self.webhook_poll_seconds, 0.01, 3_600),
                ("FLAGD_WEBHOOK_CONNECT_TIMEOUT_SECONDS", self.webhook_connect_timeout_seconds, 0.01, 60),
                ("FLAGD_WEBHOOK_TIMEOUT_SECONDS", self.webhook_timeout_seconds, 0.01, 300),
                ("FLAGD_WEBHOOK_BACKOFF_BASE_SECONDS", self.webhook_backoff_base_seconds, 0.001, 3_600),
                ("FLAGD_WEBHOOK_BACKOFF_CAP_SECONDS", self.webhook_backoff_cap_seconds, 0.001, 86_400),
                ("FLAGD_WEBHOOK_RETRY_SECONDS", self.webhook_retry_seconds, 0.1, 30 * 86_400),
                ("FLAGD_WEBHOOK_CONCURRENCY", self.webhook_concurrency, 1, 256),
                ("FLAGD_WEBHOOK_CONCURRENCY_PER_WEBHOOK", self.webhook_concurrency_per_webhook, 1, 64),
                ("FLAGD_WEBHOOK_LOG_SIZE", self.webhook_log_size, 1, 10_000),
            ]
        )
        if self.webhook_backoff_cap_seconds < self.webhook_backoff_base_seconds:
            raise SettingsError(
                "FLAGD_WEBHOOK_BACKOFF_CAP_SECONDS must be at least FLAGD_WEBHOOK_BACKOFF_BASE_SECONDS; got "
                f"{self.webhook_backoff_cap_seconds:g} < {self.webhook_backoff_base_seconds:g}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        defaults = cls()
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            results_database_url=env.get("FLAGD_RESULTS_DATABASE_URL") or None,
            host=reader.get("FLAGD_HOST", str, defaults.host),
            port=reader.get("FLAGD_PORT", int, defaults.port),
            workers=reader.get("FLAGD_WORKERS", int, defaults.workers),
            data_dir=reader.get("FLAGD_DATA_DIR", Path, defaults.data_dir),
            log_level=reader.choice("FLAGD_LOG_LEVEL", _LOG_LEVELS, defaults.log_level),
            log_format=reader.choice("FLAGD_LOG_FORMAT", _LOG_FORMATS, defaults.log_format),
            access_log=reader.get("FLAGD_ACCESS_LOG", _parse_bool, defaults.access_log),
            migrate_on_start=reader.get("FLAGD_MIGRATE_ON_START", _parse_bool, defaults.migrate_on_start),
            db_pool_min_size=reader.get("FLAGD_DB_POOL_MIN_SIZE", int, defaults.db_pool_min_size),
            db_pool_max_size=reader.get("FLAGD_DB_POOL_MAX_SIZE", int, defaults.db_pool_max_size),
            db_connect_timeout=reader.get("FLAGD_DB_CONNECT_TIMEOUT", float, defaults.db_connect_timeout),
            max_body_bytes=reader.get("FLAGD_MAX_BODY_BYTES", int, defaults.max_body_bytes),
            header_timeout_seconds=reader.get(
                "FLAGD_HEADER_TIMEOUT_SECONDS", float, defaults.header_timeout_seconds
            ),
            body_timeout_seconds=reader.get(
                "FLAGD_BODY_TIMEOUT_SECONDS", float, defaults.body_timeout_seconds
            ),
            keep_alive_seconds=reader.get("FLAGD_KEEP_ALIVE_SECONDS", float, defaults.keep_alive_seconds),
            max_connections=reader.get("FLAGD_MAX_CONNECTIONS", int, defaults.max_connections),
            config_poll_seconds=reader.get("FLAGD_CONFIG_POLL_SECONDS", float, defaults.config_poll_seconds),
            sse_heartbeat_seconds=reader.get(
                "FLAGD_SSE_HEARTBEAT_SECONDS", float, defaults.sse_heartbeat_seconds
            ),
            events_max_body_bytes=reader.get(
                "FLAGD_EVENTS_MAX_BODY_BYTES", int, defaults.events_max_body_bytes
            ),
            events_max_inflated_bytes=reader.get(
                "FLAGD_EVENTS_MAX_INFLATED_BYTES", int, defaults.events_max_inflated_bytes
            ),
            events_max_batch=reader.get("FLAGD_EVENTS_MAX_BATCH", int, defaults.events_max_batch),
            events_max_properties_bytes=reader.get(
                "FLAGD_EVENTS_MAX_PROPERTIES_BYTES", int, defaults.events_max_properties_bytes
            ),
            events_max_future_skew_seconds=reader.get(
                "FLAGD_EVENTS_MAX_FUTURE_SKEW_SECONDS", float, defaults.events_max_future_skew_seconds
            ),
            events_max_age_days=reader.get("FLAGD_EVENTS_MAX_AGE_DAYS", int, defaults.events_max_age_days),
            events_max_queued=reader.get("FLAGD_EVENTS_MAX_QUEUED", int, defaults.events_max_queued),
            events_max_queued_bytes=reader.get(
                "FLAGD_EVENTS_MAX_QUEUED_BYTES", int, defaults.events_max_queued_bytes
            ),
            events_commit_timeout=reader.get(
                "FLAGD_EVENTS_COMMIT_TIMEOUT", float, defaults.events_commit_timeout
            ),
            server_exposures=reader.get("FLAGD_SERVER_EXPOSURES", _parse_bool, defaults.server_exposures),
            results_pre_exposure_days=reader.get(
                "FLAGD_RESULTS_PRE_EXPOSURE_DAYS", int, defaults.results_pre_exposure_days
            ),
            results_rollup_seconds=reader.get(
                "FLAGD_RESULTS_ROLLUP_SECONDS", float, defaults.results_rollup_seconds
            ),
            results_fresh_seconds=reader.get(
                "FLAGD_RESULTS_FRESH_SECONDS", float, defaults.results_fresh_seconds
            ),
            results_inline_build_units=reader.get(
                "FLAGD_RESULTS_INLINE_BUILD_UNITS", int, defaults.results_inline_build_units
            ),
            results_processes=reader.get("FLAGD_RESULTS_PROCESSES", int, defaults.results_processes),
            results_max_waiting=reader.get("FLAGD_RESULTS_MAX_WAITING", int, defaults.results_max_waiting),
            results_timeout_seconds=reader.get(
                "FLAGD_RESULTS_TIMEOUT_SECONDS", float, defaults.results_timeout_seconds
            ),
            metrics=reader.choice("FLAGD_METRICS", ("key", "open", "off"), defaults.metrics),
            metrics_port=reader.get("FLAGD_METRICS_PORT", int, defaults.metrics_port),
            schedules_poll_seconds=reader.get(
                "FLAGD_SCHEDULES_POLL_SECONDS", float, defaults.schedules_poll_seconds
            ),
            schedules_batch=reader.get("FLAGD_SCHEDULES_BATCH", int, defaults.schedules_batch),
            schedules_timeout_seconds=reader.get(
                "FLAGD_SCHEDULES_TIMEOUT_SECONDS", float, defaults.schedules_timeout_seconds
            ),
            cors_origins=_parse_origins(env.get("FLAGD_CORS_ORIGINS", "")),
            client_rate_per_second=reader.get(
                "FLAGD_CLIENT_RATE_PER_SECOND", float, defaults.client_rate_per_second
            ),
            client_rate_burst=reader.get("FLAGD_CLIENT_RATE_BURST", int, defaults.client_rate_burst),
            client_key_rate_per_second=reader.get(
                "FLAGD_CLIENT_KEY_RATE_PER_SECOND", float, defaults.client_key_rate_per_second
            ),
            client_key_rate_burst=reader.get(
                "FLAGD_CLIENT_KEY_RATE_BURST", int, defaults.client_key_rate_burst
            ),
            client_events_max_batch=reader.get(
                "FLAGD_CLIENT_EVENTS_MAX_BATCH", int, defaults.client_events_max_batch
            ),
            client_events_max_body_bytes=reader.get(
                "FLAGD_CLIENT_EVENTS_MAX_BODY_BYTES", int, defaults.client_events_max_body_bytes
            ),
            client_events_max_value=reader.get(
                "FLAGD_CLIENT_EVENTS_MAX_VALUE", float, defaults.client_events_max_value
            ),
            **_webhook_settings(reader, defaults),
            rollouts_monitor_seconds=reader.get(
                "FLAGD_ROLLOUTS_MONITOR_SECONDS", float, defaults.rollouts_monitor_seconds
            ),
            results_watch_seconds=reader.get(
                "FLAGD_RESULTS_WATCH_SECONDS", float, defaults.results_watch_seconds
            ),
            events_unplanned=reader.choice(
                "FLAGD_EVENTS_UNPLANNED", ("allow", "observe", "enforce"), defaults.events_unplanned
            ),
            data_health_seconds=reader.get("FLAGD_DATA_HEALTH_SECONDS", float, defaults.data_health_seconds),
            data_health_grace_seconds=reader.get(
                "FLAGD_DATA_HEALTH_GRACE_SECONDS", float, defaults.data_health_grace_seconds
            ),
            data_health_max_hours=reader.get(
                "FLAGD_DATA_HEALTH_MAX_HOURS", int, defaults.data_health_max_hours
            ),
            data_health_max_events=reader.get(
                "FLAGD_DATA_HEALTH_MAX_EVENTS", int, defaults.data_health_max_events
            ),
        )

    def with_database(self, database_url: str) -> Settings:
        return replace(self, database_url=database_url)


_WEBHOOK_FIELDS: dict[str, type[int] | type[float]] = {
    "webhook_poll_seconds": float,
    "webhook_connect_timeout_seconds": float,
    "webhook_timeout_seconds": float,
    "webhook_backoff_base_seconds": float,
    "webhook_backoff_cap_seconds": float,
    "webhook_retry_seconds": float,
    "webhook_concurrency": int,
    "webhook_concurrency_per_webhook": int,
    "webhook_log_size": int,
}


def _webhook_settings(reader: _Reader, defaults: Settings) -> dict[str, Any]:
    """The webhook deliverer's settings, each from FLAGD_<ITS NAME>."""
    return {
        name: reader.get(f"FLAGD_{name.upper()}", parse, getattr(defaults, name))
        for name, parse in _WEBHOOK_FIELDS.items()
    }


def _check_bounds(bounds: list[tuple[str, float, float, float]]) -> None:
    """Each (variable, value, low, high): the value within [low, high], or an error naming the variable."""
    for name, value, low, high in bounds:
        if not low <= value <= high:
            raise SettingsError(f"{name} must be between {low:g} and {high:g}, got {value:g}")


def _parse_origins(raw: str) -> tuple[str, ...]:
    """Comma-separated origins, each once, as browsers send them (flagd.auth.origins)."""
    try:
        return origins(item for item in raw.split(",") if item.strip())
    except InvalidOrigin as exc:
        raise SettingsError(f"FLAGD_CORS_ORIGINS: {exc}") from None


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(raw)


_NUMBERS: dict[object, re.Pattern[str]] = {
    int: re.compile(r"[+-]?[0-9]{1,18}", re.ASCII),
    float: re.compile(
        r"[+-]?(?:[0-9]{1,20}(?:\.[0-9]{0,20})?|\.[0-9]{1,20})(?:[eE][+-]?[0-9]{1,3})?", re.ASCII
    ),
}
"""What a number in the environment may look like: ASCII decimal digits, finite."""


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def get(self, name: str, parse: Callable[[str], T], default: T) -> T:
        raw = self._env.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            if parse in (int, float) and not _NUMBERS[parse].fullmatch(raw.strip()):
                raise ValueError(raw)  # int() and float() also read nan, inf, 1_000 and other scripts' digits
            return parse(raw.strip())
        except ValueError:
            kind = (
                "true or false" if parse is _parse_bool else f"a valid {getattr(parse, '__name__', 'value')}"
            )
            raise SettingsError(f"{name} must be {kind}, got {raw!r}") from None

    def choice(self, name: str, choices: tuple[T, ...], default: T) -> T:
        raw = self._env.get(name)
        if raw is None or raw.strip() == "":
            return default
        value = raw.strip().lower()
        for choice in choices:
            if choice == value:
                return choice
        allowed = ", ".join(str(c) for c in choices)
        raise SettingsError(f"{name} must be one of {allowed}, got {raw!r}")
