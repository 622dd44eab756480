"""`Client` (threads: Django, Flask, workers) and `AsyncClient` (asyncio: FastAPI, Starlette).

Both evaluate in process from the flag set they keep current, log exposures of running experiments
once per (experiment, phase, unit), and deliver events in the background. Evaluations never raise and
never wait on the network: before the first flag set arrives, and while the server is down, they
serve the last known flag set or the caller's default with a reason.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx

from flagd_sdk.core import Core
from flagd_sdk.drivers import TaskDriver, ThreadDriver
from flagd_sdk.evaluation import FlagType, ResolutionDetails
from flagd_sdk.options import ConfigurationError, Options
from flagd_sdk.programs import config_program, delivery_program
from flagd_sdk.remote import RemoteEvaluator

logger = logging.getLogger("flagd_sdk")


def _read_bootstrap(path: Path) -> Mapping[str, Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml  # optional: flags-as-code files are often YAML
        except ImportError as exc:
            raise ConfigurationError(f"{path} is YAML: install PyYAML, or give a JSON file") from exc
        loaded = yaml.safe_load(text)
    else:
        loaded = json.loads(text)
    if not isinstance(loaded, Mapping) or not isinstance(loaded.get("flags"), Mapping):
        raise ConfigurationError(f"{path} is not a flag set: it needs a top-level 'flags' object")
    return loaded


class _Evaluations:
    """The API of both clients: evaluations (in process unless remote) and tracking, which never raise."""

    _core: Core
    _evaluate: Callable[[FlagType, str, Any, str | None, Mapping[str, Any] | None], ResolutionDetails]

    def details(
        self,
        flag: str,
        unit: str | None,
        default: Any,
        attributes: Mapping[str, Any] | None = None,
        flag_type: FlagType = FlagType.ANY,
    ) -> ResolutionDetails:
        """The whole resolution: value, variant, reason, error code and message, flag metadata."""
        return self._evaluate(flag_type, flag, default, unit, attributes)

    def variant(self, flag: str, unit: str | None, attributes: Mapping[str, Any] | None = None) -> str | None:
        """The variant `unit` gets (None when the flag cannot be evaluated)."""
        return self._evaluate(FlagType.ANY, flag, None, unit, attributes).variant

    def bool_value(
        self, flag: str, unit: str | None, default: bool, attributes: Mapping[str, Any] | None = None
    ) -> bool:
        value: bool = self._evaluate(FlagType.BOOLEAN, flag, default, unit, attributes).value
        return value

    def string_value(
        self, flag: str, unit: str | None, default: str, attributes: Mapping[str, Any] | None = None
    ) -> str:
        value: str = self._evaluate(FlagType.STRING, flag, default, unit, attributes).value
        return value

    def int_value(
        self, flag: str, unit: str | None, default: int, attributes: Mapping[str, Any] | None = None
    ) -> int:
        value: int = self._evaluate(FlagType.INTEGER, flag, default, unit, attributes).value
        return value

    def float_value(
        self, flag: str, unit: str | None, default: float, attributes: Mapping[str, Any] | None = None
    ) -> float:
        value: float = self._evaluate(FlagType.FLOAT, flag, default, unit, attributes).value
        return value

    def object_value(
        self, flag: str, unit: str | None, default: Any, attributes: Mapping[str, Any] | None = None
    ) -> Any:
        return self._evaluate(FlagType.OBJECT, flag, default, unit, attributes).value

    def track(
        self, event: str, unit: str, value: float | None = None, properties: Mapping[str, Any] | None = None
    ) -> None:
        """Record a conversion (or a survey answer, as `value`) of `unit`; sent in the background."""
        self._core.track(event, unit, value, properties)

    def status(self) -> dict[str, Any]:
        """Flag-set version and age, connected or not, events queued, sent, dropped and refused."""
        return self._core.status()


def _core(options: Options) -> Core:
    core = Core(
        max_queue=options.max_queue, exposure_cache=options.exposure_cache, batch_size=options.batch_size
    )
    if options.bootstrap is not None:
        core.apply(_read_bootstrap(options.bootstrap), version=None, etag=None)
    return core


_LIVE: weakref.WeakSet[Client] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for client in list(_LIVE):
        client._restart_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _close_at_exit(reference: weakref.ref[Client]) -> None:
    client = reference()
    if client is not None:
        client.close()


class Client(_Evaluations):
    """A client for threaded applications. Construction waits at most `init_timeout` for the flag set.

    client = Client("http://127.0.0.1:8080", sdk_key)
    if client.variant("checkout-redesign", user.id) == "on": ...
    client.track("purchase", user.id, value=order.total)
    """

    def __init__(
        self, url: str, sdk_key: str, *, transport: httpx.BaseTransport | None = None, **settings: Any
    ) -> None:
        self.options = Options(url.rstrip("/"), sdk_key, **settings)
        self._transport = transport
        self._core = _core(self.options)
        self._evaluate = self._core.evaluate
        self._remote: RemoteEvaluator | None = None
        if self.options.remote:
            self._remote = RemoteEvaluator(self.options, transport)
            self._evaluate = self._remote.evaluate
        self._ready = threading.Event()
        self._core.on_ready = self._ready.set
        if self._core.ready:
            self._ready.set()
        self._closed = False
        self._start()
        _LIVE.add(self)
        atexit.register(_close_at_exit, weakref.ref(self))
        if not self._ready.wait(self.options.init_timeout):
            logger.warning(
                "no flag set from %s within %.1f s: serving %s until it answers",
                self.options.url,
                self.options.init_timeout,
                "the bootstrap file" if self._core.ready else "defaults",
            )

    def _start(self) -> None:
        if self._remote is not None:
            self._ready.set()  # nothing to wait for: each evaluation asks the server
        self._config = ThreadDriver(
            "config", lambda: config_program(self._core, self.options), self.options, self._transport
        )
        self._delivery = ThreadDriver(
            "events", lambda: delivery_program(self._core, self.options), self.options, self._transport
        )
        self._core.on_batch = self._delivery.wake
        if self._remote is None:
            self._config.start()
        self._delivery.start()

    def _restart_after_fork(self) -> None:
        """In a forked child (gunicorn --preload): the parent's threads are gone; start this process's own."""
        if self._closed:
            return
        self._ready = threading.Event()
        self._core.on_ready = self._ready.set
        if self._core.ready:
            self._ready.set()
        self._start()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until a flag set is served (from the server or the bootstrap file)."""
        return self._ready.wait(timeout)

    def flush(self, timeout: float = 5.0) -> bool:
        """Send every queued event now; True when all were delivered (or refused) within `timeout`."""
        deadline = time.monotonic() + timeout
        # Flushing is rare and bounded by its timeout: polling the counter keeps enqueueing free of locks.
        while self._core.queued and time.monotonic() < deadline:
            self._delivery.wake()
            time.sleep(0.01)
        return self._core.queued == 0

    def close(self) -> None:
        """Deliver what is queued (within close_timeout), then stop the background threads."""
        if self._closed:
            return
        self._closed = True
        self.flush(self.options.close_timeout)
        self._config.stop(1.0)
        self._delivery.stop(1.0)
        if self._remote is not None:
            self._remote.close()
        _LIVE.discard(self)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Evaluations):
    """A client for asyncio applications; `await client.start()` (or `async with`) begins its work.

    client = AsyncClient("http://127.0.0.1:8080", sdk_key)
    await client.start()
    if client.variant("checkout-redesign", user.id) == "on": ...
    """

    def __init__(
        self, url: str, sdk_key: str, *, transport: httpx.AsyncBaseTransport | None = None, **settings: Any
    ) -> None:
        self.options = Options(url.rstrip("/"), sdk_key, **settings)
        if self.options.remote:
            raise ConfigurationError(
                "remote evaluation is for short-lived processes and needs the sync Client; an asyncio app "
                "evaluates locally (remote=False)"
            )
        self._transport = transport
        self._core = _core(self.options)
        self._evaluate = self._core.evaluate
        self._config: TaskDriver | None = None
        self._delivery: TaskDriver | None = None

    async def start(self) -> bool:
        """Begin following the flag set and delivering events; True when a flag set is served within
        init_timeout (otherwise defaults, or the bootstrap file, until the server answers)."""
        ready = asyncio.Event()
        if self._core.ready:
            ready.set()
        self._core.on_ready = ready.set
        self._config = TaskDriver(
            "config", lambda: config_program(self._core, self.options), self.options, self._transport
        )
        self._delivery = TaskDriver(
            "events", lambda: delivery_program(self._core, self.options), self.options, self._transport
        )
        self._core.on_batch = self._delivery.wake
        self._config.start()
        self._delivery.start()
        try:
            async with asyncio.timeout(self.options.init_timeout):
                await ready.wait()
        except TimeoutError:
            logger.warning("no flag set from %s within %.1f s", self.options.url, self.options.init_timeout)
            return False
        return True

    async def flush(self, seconds: float = 5.0) -> bool:
        """Send every queued event now; True when all were delivered (or refused) within `seconds`."""
        deadline = time.monotonic() + seconds
        while self._core.queued and time.monotonic() < deadline:
            if self._delivery is not None:
                self._delivery.wake()
            await asyncio.sleep(0.01)  # as in Client.flush: a bounded poll, so enqueueing takes no lock
        return self._core.queued == 0

    async def aclose(self) -> None:
        await self.flush(self.options.close_timeout)
        for driver in (self._config, self._delivery):
            if driver is not None:
                await driver.stop()

    async def __aenter__(self) -> AsyncClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
