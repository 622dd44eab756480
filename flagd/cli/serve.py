"""`flagd serve`: migrate, then run uvicorn with N workers."""

from __future__ import annotations

import argparse
import asyncio
import atexit
import errno
import os
import shutil
import signal
import socket
import tempfile
from types import FrameType
from typing import Any

import uvicorn

from flagd.cli.common import CommandError, database, database_options, logger
from flagd.http.transport import TransportLimits, raise_descriptor_limit, server_options
from flagd.log import logging_config
from flagd.metrics import MULTIPROC_ENV, serve_on_port
from flagd.settings import Settings
from flagd.storage.migrations import apply_migrations, load_migrations, schema_status
from flagd.storage.pool import connect


def register(commands: Any) -> None:
    serve = commands.add_parser("serve", help="run the HTTP server", description="Run the HTTP server.")
    database_options(serve)
    serve.add_argument("--host", help="address to listen on (FLAGD_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (FLAGD_PORT, default 8080)")
    serve.add_argument("--workers", type=int, help="worker processes (FLAGD_WORKERS, default 1)")
    serve.add_argument("--log-level", choices=["debug", "info", "warning", "error", "critical"])
    serve.add_argument("--log-format", choices=["text", "json"])
    serve.set_defaults(command=run)


def run(settings: Settings, args: argparse.Namespace) -> int:
    # uvicorn re-raises SIGTERM after its graceful shutdown; turning it into SystemExit lets the
    # embedded cluster below be stopped cleanly instead of being orphaned.
    signal.signal(signal.SIGTERM, _exit_on_signal)
    check_can_listen(settings.host, settings.port)  # before PostgreSQL starts, so a mistake costs nothing
    _raise_descriptor_limit(settings)  # the workers inherit it
    with database(settings, exclusive=True, create=True) as settings:
        if settings.migrate_on_start:
            logger.info("%s", asyncio.run(apply_pending(settings)))
        # Workers build their app from the environment: hand them the URL, and tell them the
        # migrations are done so they do not queue on the migration lock.
        os.environ["DATABASE_URL"] = settings.database_url or ""
        os.environ["FLAGD_MIGRATE_ON_START"] = "false"
        metrics_dir = _metrics_directory(settings)
        if settings.metrics_port is not None:
            serve_on_port(settings.metrics_port, settings.host, metrics_dir)
            logger.info("metrics on http://%s:%d/metrics", settings.host, settings.metrics_port)
        logger.info(
            "flagd listening on http://%s:%d with %d worker(s)",
            settings.host,
            settings.port,
            settings.workers,
        )
        uvicorn.run(
            "flagd.app:create_app_from_env",
            factory=True,
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            loop="uvloop",
            log_config=logging_config(settings),
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=10,
            **server_options(settings),
        )
    return 0


def _raise_descriptor_limit(settings: Settings) -> None:
    before, after = raise_descriptor_limit()
    if after != before:
        logger.info("raised the open-file limit from %d to %d", before, after)
    limits = TransportLimits.from_settings(settings)
    capacity = limits.capacity()
    if capacity < settings.max_connections:
        logger.warning(
            "each worker holds at most %d connections, not FLAGD_MAX_CONNECTIONS=%d: its open-file limit is %d "
            "and it keeps %d descriptors for itself; raise the limit (ulimit -n, LimitNOFILE=) to hold more",
            capacity,
            settings.max_connections,
            after,
            limits.reserved_descriptors,
        )


def _metrics_directory(settings: Settings) -> str | None:
    """With several workers, a fresh directory for their metrics (prometheus-client's multiprocess mode),
    named in PROMETHEUS_MULTIPROC_DIR before they start; removed when the server stops."""
    if settings.workers < 2:
        return None
    directory = tempfile.mkdtemp(prefix="flagd-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    atexit.register(shutil.rmtree, directory, True)
    return directory


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def check_can_listen(host: str, port: int) -> None:
    """Bind and release the address uvicorn will bind (with the same SO_REUSEADDR), or say why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CommandError(
            f"cannot listen on {host}: the address cannot be resolved ({exc.strerror}); "
            "check --host (FLAGD_HOST)"
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CommandError(
                    f"cannot listen on {host}:{port}: another process is already using that port; "
                    "stop it, or choose another port with --port or FLAGD_PORT"
                ) from None
            if exc.errno == errno.EACCES:
                raise CommandError(
                    f"cannot listen on {host}:{port}: permission denied (ports below 1024 need privileges); "
                    "choose another port with --port or FLAGD_PORT"
                ) from None
            raise CommandError(
                f"cannot listen on {host}:{port}: {exc.strerror}; check --host (FLAGD_HOST) and --port (FLAGD_PORT)"
            ) from None


async def apply_pending(settings: Settings) -> str:
    """Apply pending migrations; returns a sentence saying what was done."""
    migrations = load_migrations()
    conn = await connect(settings)
    try:
        applied = await apply_migrations(conn, migrations)
        status = await schema_status(conn, migrations)
    finally:
        await conn.close()
    if applied:
        names = ", ".join(m.label for m in applied)
        return f"applied {len(applied)} migration(s): {names}; schema is at version {status.current}"
    return f"schema is up to date at version {status.current}"
