"""A PostgreSQL primary on TCP and a streaming standby made from it with `pg_basebackup -R`, for tests of
several hosts and a read replica; from the binaries of the embedded PostgreSQL (pgserver)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from flagd.storage.embedded import _import_pgserver
from tests.support import free_port

REPLICATION_ROLE = "replicator"
DATABASE = "flagd"


def postgres_bin() -> Path:
    """The binaries of the embedded PostgreSQL."""
    pgserver = _import_pgserver()  # quiet about XDG_RUNTIME_DIR
    return Path(pgserver.__file__).parent / "pginstall" / "bin"


def ports(count: int) -> list[int]:
    """`count` ports: from FLAGD_TEST_PORTS (a first port, for machines that give each job a range), else
    free ones the kernel picks."""
    first = os.environ.get("FLAGD_TEST_PORTS")
    if first:
        return [int(first) + i for i in range(count)]
    return [free_port() for _ in range(count)]


@dataclass(frozen=True, slots=True)
class Replicated:
    primary_url: str
    replica_url: str
    primary_dir: Path
    replica_dir: Path


def _system_user() -> str | None:
    """PostgreSQL refuses to run as root: as root, the user pgserver runs it as (created if missing)."""
    if os.geteuid() != 0:
        return None
    _import_pgserver().utils.ensure_user_exists("pgserver")
    return "pgserver"


def _run(*args: str | os.PathLike[str]) -> None:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=60, check=False, user=_system_user()
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(map(str, args))} failed ({done.returncode}):\n{done.stdout}{done.stderr}"
        )


def _configure(data: Path, port: int, sockets: Path) -> None:
    with (data / "postgresql.conf").open("a", encoding="utf-8") as conf:
        conf.write(
            f"port = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{sockets}'\n"
            "wal_level = replica\nmax_wal_senders = 4\nhot_standby = on\nhot_standby_feedback = on\n"
            "fsync = off\nfull_page_writes = off\nmax_connections = 60\nshared_buffers = 32MB\n"
        )


def stop(data: Path) -> None:
    """Stop the server of one data directory (fast shutdown: its sessions are ended)."""
    _run(postgres_bin() / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop")


@contextmanager
def replicated_cluster(primary_port: int, replica_port: int) -> Iterator[Replicated]:
    """A primary (wal_level=replica, a replication role, pg_hba for it) and its streaming standby, both on
    127.0.0.1; stopped and removed at the end. The URLs name database `flagd` on each."""
    bin_dir = postgres_bin()
    # A short directory: Unix socket paths are limited to about 100 bytes.
    root = Path(tempfile.mkdtemp(prefix="flagd-repl-"))
    user = _system_user()
    if user is not None:
        shutil.chown(root, user, user)
    primary, replica = root / "primary", root / "replica"
    started: list[Path] = []
    try:
        _run(bin_dir / "initdb", "-D", primary, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
        _configure(primary, primary_port, root)
        with (primary / "pg_hba.conf").open("a", encoding="utf-8") as hba:
            hba.write(f"host replication {REPLICATION_ROLE} 127.0.0.1/32 trust\n")
        _run(bin_dir / "pg_ctl", "-D", primary, "-l", root / "primary.log", "-w", "start")
        started.append(primary)
        admin = f"postgresql://postgres@127.0.0.1:{primary_port}/postgres"
        _run(bin_dir / "psql", admin, "-qc", f"CREATE ROLE {REPLICATION_ROLE} REPLICATION LOGIN")
        _run(bin_dir / "psql", admin, "-qc", f"CREATE DATABASE {DATABASE}")
        _run(
            bin_dir / "pg_basebackup",
            "-h", "127.0.0.1", "-p", str(primary_port), "-U", REPLICATION_ROLE,
            "-D", replica, "-R", "-X", "stream", "-c", "fast", "--no-sync",
        )  # fmt: skip
        with (replica / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(f"port = {replica_port}\n")
        _run(bin_dir / "pg_ctl", "-D", replica, "-l", root / "replica.log", "-w", "start")
        started.append(replica)
        yield Replicated(
            primary_url=f"postgresql://postgres@127.0.0.1:{primary_port}/{DATABASE}",
            replica_url=f"postgresql://postgres@127.0.0.1:{replica_port}/{DATABASE}",
            primary_dir=primary,
            replica_dir=replica,
        )
    finally:
        for data in reversed(started):
            if not (data / "postmaster.pid").exists():
                continue
            subprocess.run(
                [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=60,
                check=False,
                user=user,
            )
        shutil.rmtree(root, ignore_errors=True)


REPLAY_SECONDS = 10.0


async def wait_replayed(primary: asyncpg.Connection, replica: asyncpg.Connection) -> None:
    """Until the replica has replayed everything the primary has written so far (at most REPLAY_SECONDS)."""
    position = await primary.fetchval("SELECT pg_current_wal_lsn()::text")
    deadline = time.monotonic() + REPLAY_SECONDS
    while not await replica.fetchval("SELECT pg_last_wal_replay_lsn() >= $1::text::pg_lsn", position):
        if time.monotonic() > deadline:
            raise AssertionError(f"the replica did not replay to {position} within {REPLAY_SECONDS} s")
        await asyncio.sleep(0.01)
