"""What the benchmark scripts share: a free loopback port, and a database to run against."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
