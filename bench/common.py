"""What the benchmark scripts share: a free loopback port, and a database to run against."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import asyncpg

from flagd.auth import keys
from flagd.auth.keys import Scope
from flagd.auth.repository import ApiKeyRepository
from flagd.storage.embedded import EmbeddedPostgres


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def database(workdir: Path) -> Iterator[str]:
    """DATABASE_URL when set, else an embedded PostgreSQL in `workdir` for the length of the block."""
    configured = os.environ.get("DATABASE_URL")
    if configured:
        yield configured
        return
    embedded = EmbeddedPostgres(workdir / "data")
    url = embedded.start()
    try:
        yield url
    finally:
        embedded.stop()


def serve(
    database_url: str,
    workers: int = 2,
    log_level: str = "warning",
    env: dict[str, str] | None = None,
    *,
    prefix: Sequence[str] = (),
    log: IO[bytes] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """`flagd serve --workers N` on a free port, without access log, with `env` added to its environment,
    started through `prefix` (e.g. taskset, prlimit), its output to `log` if given; the process and its base URL."""
    port = free_port()
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLAGD_")}
    env.update(DATABASE_URL=database_url, FLAGD_ACCESS_LOG="false", FLAGD_LOG_LEVEL=log_level, **extra)
    command = [
        *prefix,
        sys.executable,
        "-m",
        "flagd",
        "serve",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    errors = None if log is None else subprocess.STDOUT
    return subprocess.Popen(command, env=env, stdout=log, stderr=errors), f"http://127.0.0.1:{port}"


async def results_key(database_url: str) -> str:
    """A new results-scope API key in the database; the token a client sends."""
    conn = await asyncpg.connect(database_url)
    try:
        new = keys.generate()
        await ApiKeyRepository(conn).create("bench-results", Scope.RESULTS, new)
    finally:
        await conn.close()
    return new.token
