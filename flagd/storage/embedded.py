"""An embedded PostgreSQL cluster in the data directory, for a first run with no setup.

The cluster comes from the `pgserver` package (PostgreSQL binaries shipped in a wheel),
so it needs nothing installed on the machine. It lives in `<data_dir>/pgdata`, listens
only on a Unix socket, is reused by the next start, and is stopped on shutdown.

One flagd process owns a data directory at a time: an exclusive lock on
`<data_dir>/flagd.lock` is taken before the cluster is touched, so a second
`flagd serve` on the same directory fails with a clear message instead of sharing
(or corrupting) a cluster it does not own.

Only `flagd serve` and `flagd migrate` create a data directory (`start(create=True)`); every
other command needs one to exist already, and is refused with `NoDataDirectory` otherwise, so a
command run in the wrong directory creates nothing there.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import warnings
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import asyncpg

logger = logging.getLogger(__name__)

DATABASE_NAME = "flagd"


class EmbeddedPostgresError(RuntimeError):
    """The embedded cluster could not be started; the message says why and what to do."""


class DataDirectoryBusy(EmbeddedPostgresError):
    """Another flagd process owns the data directory (and its cluster)."""


class NoDataDirectory(EmbeddedPostgresError):
    """There is no initialised data directory where one was expected, and none may be created."""


class DataDirectoryLock:
    """An exclusive, advisory lock on a data directory, held for the life of the process."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "flagd.lock"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise DataDirectoryBusy(
                f"the data directory {self.path.parent} is in use by another flagd process (pid {holder}); "
                "stop that process, or set FLAGD_DATA_DIR to another directory, "
                "or set DATABASE_URL to use an external PostgreSQL"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


class EmbeddedPostgres:
    """Start with `start()` (returns the database URL), stop with `stop()`; or use `with`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.expanduser().resolve()
        self.pgdata = self.data_dir / "pgdata"
        self._lock = DataDirectoryLock(self.data_dir)
        self._url_file = self.data_dir / "postgres.url"
        self._server: Any = None

    @property
    def initialised(self) -> bool:
        """Whether a cluster was created here before (by `flagd serve` or `flagd migrate`)."""
        return (self.pgdata / "PG_VERSION").is_file()

    def start(self, *, create: bool = True) -> str:
        """Start the cluster and return its URL; without `create`, only one that exists (else
        `NoDataDirectory`, and nothing is written)."""
        if not create and not self.initialised:
            raise NoDataDirectory(self._missing())
        self._lock.acquire()
        try:
            return self._start_locked()
        except BaseException:
            self.stop()  # a cluster that started is stopped again; the lock is released
            raise

    def running_url(self) -> str | None:
        """The URL of the cluster another flagd process runs in this directory, if it published one."""
        try:
            return self._url_file.read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    def stop(self) -> None:
        try:
            self._url_file.unlink(missing_ok=True)
            if self._server is not None:
                logger.info("stopping embedded PostgreSQL in %s", self.pgdata)
                self._server.cleanup()
                self._server = None
        finally:
            self._lock.release()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _missing(self) -> str:
        where = (
            f"{self.data_dir} is not a flagd data directory (it has no pgdata/PG_VERSION)"
            if self.data_dir.exists()
            else f"there is no flagd data directory at {self.data_dir}"
        )
        return (
            f"{where}; point at one with --data-dir or FLAGD_DATA_DIR, or at a PostgreSQL with "
            "--database-url or DATABASE_URL, or run `flagd serve` there first to create one"
        )

    def _start_locked(self) -> str:
        pgserver = _import_pgserver()
        first_run = not self.initialised
        if first_run:
            logger.info(
                "initialising embedded PostgreSQL in %s (first run, takes a few seconds)", self.pgdata
            )
        else:
            logger.info("starting embedded PostgreSQL in %s", self.pgdata)
        # pgserver counts the processes sharing a cluster in this file and stops the cluster when
        # the last one leaves. We hold the directory lock, so any pid listed there is a leftover of
        # a process that died without cleaning up; left in place it would keep us from stopping.
        (self.pgdata / ".handle_pids.json").unlink(missing_ok=True)
        try:
            self._server = pgserver.get_server(self.pgdata, cleanup_mode="stop")
        except Exception as exc:
            raise EmbeddedPostgresError(
                f"embedded PostgreSQL failed to start in {self.pgdata}: {exc}; "
                f"its log is {self.pgdata / 'log'}"
            ) from exc
        try:
            asyncio.run(_ensure_database(self._server.get_uri(), DATABASE_NAME))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise EmbeddedPostgresError(
                f'embedded PostgreSQL in {self.pgdata} started but its database "{DATABASE_NAME}" cannot be '
                f"created ({exc}); its log is {self.pgdata / 'log'}"
            ) from exc
        url: str = self._server.get_uri(database=DATABASE_NAME)
        # Published so that `flagd keys`, `flagd apply` ... can work beside a running server.
        self._url_file.write_text(url + "\n", encoding="utf-8")
        logger.info("embedded PostgreSQL ready at %s", url)
        return url


def _import_pgserver() -> Any:
    # pgserver asks platformdirs for a runtime directory at import, which warns when
    # XDG_RUNTIME_DIR is unset (containers, CI); the fallback it picks is fine.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import pgserver
        except ImportError:
            # An install without the `embedded` extra (the Docker image) runs on DATABASE_URL only.
            raise EmbeddedPostgresError(
                "this installation has no embedded PostgreSQL: set DATABASE_URL (or --database-url) to a "
                "PostgreSQL server, or install the embedded one with pip install 'flagd[embedded]'"
            ) from None
    return pgserver


async def _ensure_database(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
