"""Helpers the fixtures and tests share: database URLs, live servers, subprocesses."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest
import uvicorn
from starlette.types import ASGIApp

from flagd.auth import keys
from flagd.auth.keys import Scope
from flagd.auth.repository import ApiKeyRepository

T = TypeVar("T")


def database_url_for(url: str, database: str) -> str:
    """The same server and credentials as `url`, another database."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


async def drop_database(admin_url: str, name: str) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


TIMEOUT = 30.0
"""Seconds a test's HTTP client waits for an answer: generous, because the first results request of a
server starts its analysis processes and the suite runs two test processes on two cores."""


@dataclass(frozen=True, slots=True)
class LiveServer:
    url: str
    port: int


@asynccontextmanager
async def running_server(app: ASGIApp, **options: Any) -> AsyncIterator[LiveServer]:
    """Serve `app` with uvicorn on 127.0.0.1 (a free port) inside the test's event loop; `options` go to
    uvicorn's Config (e.g. flagd.http.transport.server_options, the transport `flagd serve` runs)."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_config=None, lifespan="on", access_log=False, **options
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped during start-up; see the log above")
        await asyncio.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield LiveServer(url=f"http://127.0.0.1:{port}", port=port)
    finally:
        server.should_exit = True
        await task


async def create_key(
    database_url: str, scope: Scope, name: str = "test", *, server_exposures: bool = True
) -> str:
    """A new API key of `scope` in the test's database; returns the token a client sends."""
    new = keys.generate()
    conn = await asyncpg.connect(database_url)
    try:
        await ApiKeyRepository(conn).create(name, scope, new, server_exposures=server_exposures)
    finally:
        await conn.close()
    return new.token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def flag_definition(**overrides: Any) -> dict[str, Any]:
    return {"state": "ENABLED", "variants": {"on": True, "off": False}, "defaultVariant": "off", **overrides}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class FlagdProcess:
    """`flagd ARGS` in a child process, with its output collected to a file for assertions."""

    def __init__(
        self,
        args: list[str],
        env: Mapping[str, str],
        log_path: os.PathLike[str],
        cwd: os.PathLike[str] | None = None,
    ) -> None:
        self.log_path = log_path
        log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "flagd", *args],
                env=dict(env),
                cwd=cwd,
                stdout=log_fd,
                stderr=subprocess.STDOUT,
            )
        finally:
            os.close(log_fd)  # the child holds its own copy

    @property
    def output(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def _until(self, condition: Callable[[], T | None], what: str, timeout: float) -> T:
        """Poll `condition` until it gives a value, failing if the child exits or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"flagd exited with {self.process.returncode}:\n{self.output}")
            value = condition()
            if value is not None:
                return value
            time.sleep(0.05)  # polling a child process; no assertion depends on the delay
        raise AssertionError(f"flagd {what} within {timeout}s:\n{self.output}")

    def wait_ready(self, base_url: str, timeout: float = 60.0) -> httpx.Response:
        def ready() -> httpx.Response | None:
            try:
                response = httpx.get(f"{base_url}/readyz", timeout=2.0)
            except httpx.TransportError:
                return None
            return response if response.status_code == 200 else None

        return self._until(ready, "was not ready", timeout)

    def wait_workers(self, workers: int, timeout: float = 60.0) -> None:
        """Until `workers` worker processes have finished starting (each logs it once)."""
        self._until(
            lambda: True if self.output.count("Application startup complete") >= workers else None,
            f"did not start {workers} workers",
            timeout,
        )

    def stop(self, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        return code


def flagd_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLAGD_") and k != "DATABASE_URL"}
    env["FLAGD_RESULTS_FRESH_SECONDS"] = "0"  # a test reads what it just posted
    env.update(overrides)
    return env


async def serving_workers(
    database_url: str, log: os.PathLike[str], workers: int = 2, **env: str
) -> tuple[FlagdProcess, str]:
    """`flagd serve --workers N` on a free port of its own, with `env` added, once every worker has started;
    the process and its base URL. The caller stops it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = FlagdProcess(
        ["serve", "--port", str(port), "--workers", str(workers)],
        flagd_env(DATABASE_URL=database_url, **env),
        log,
    )
    try:
        await asyncio.to_thread(server.wait_ready, base)
        # A worker still starting accepts nothing: the kernel would hand every connection to the other.
        await asyncio.to_thread(server.wait_workers, workers)
    except BaseException:
        server.stop()
        raise
    return server, base


async def backdate_phase(http: httpx.AsyncClient, database_url: str, experiment: str, days: float) -> None:
    """Make the experiment's current phase have started `days` ago (as if it had run that long), and wait
    until the server at `http` serves that: simulations post exposures of past days, which are refused for
    a phase that began after them."""
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            phase = await conn.fetchval("SELECT phase FROM experiments WHERE key = $1", experiment)
            started = await conn.fetchval("SELECT now() - make_interval(secs => $1)", days * 86_400)
            await conn.execute(
                "UPDATE experiments SET phase_started_at = $2 WHERE key = $1", experiment, started
            )
            await conn.execute(
                "UPDATE experiment_phases SET started_at = $3 WHERE experiment = $1 AND phase = $2",
                experiment,
                phase,
                started,
            )
            version = await conn.fetchval("UPDATE config_state SET version = version + 1 RETURNING version")
            await conn.execute("SELECT pg_notify('flagd_config', $1)", str(version))
    finally:
        await conn.close()
    for _ in range(500):
        ready = await http.get("/readyz")
        if ready.status_code == 200 and ready.json()["configVersion"] >= version:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the server never served config version {version}")


def missing(message: str) -> NoReturn:
    """A system program a test needs is missing: a failure under CI (CI=true), elsewhere a skip that says
    what to install, never a silent pass."""
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(message)
    pytest.skip(message)
