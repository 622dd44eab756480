"""The `flagd` command line, run as a user runs it: in a child process."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from flagd.storage.migrations import load_migrations
from tests.support import FlagdProcess, flagd_env, free_port


def run_flagd(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flagd", *args],
        env=env if env is not None else flagd_env(),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_should_list_commands_in_help() -> None:
    result = run_flagd("--help")
    assert result.returncode == 0
    for command in ("serve", "migrate", "keys", "apply", "export", "experiments", "schedules", "events"):
        assert f"    {command} " in result.stdout, command
    assert run_flagd("-v", "--help", "keys").stdout == result.stdout


def test_should_load_only_the_module_of_the_command_it_runs() -> None:
    # A command starts without the server's or the other commands' imports (half a second each).
    probe = (
        "import sys\n"
        "from flagd.cli import main\n"
        "main(['-v', 'keys', 'list', '--database-url', 'postgresql://nobody@127.0.0.1:1/none'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('flagd.cli.') or m in ('uvicorn', 'httpx')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=flagd_env(), check=False
    )
    assert "cannot connect to PostgreSQL" in result.stderr, result.stderr
    assert result.stdout.strip() == "['flagd.cli.common', 'flagd.cli.keys']", result.stdout


def test_should_exit_2_on_unknown_option() -> None:
    result = run_flagd("serve", "--no-such-option")
    assert result.returncode == 2
    assert "unrecognized arguments: --no-such-option" in result.stderr


def test_should_exit_1_with_the_variable_name_on_a_bad_setting() -> None:
    result = run_flagd("migrate", env=flagd_env(FLAGD_PORT="eighty"))
    assert result.returncode == 1
    assert result.stderr.strip() == "flagd: error: FLAGD_PORT must be a valid int, got 'eighty'"


def test_should_report_an_unreachable_database_without_leaking_its_password() -> None:
    url = f"postgresql://flagd:s3cret@127.0.0.1:{free_port()}/flagd"
    result = run_flagd("migrate", "--database-url", url)
    assert result.returncode == 1
    assert "flagd: error: cannot connect to PostgreSQL at postgresql://flagd:***@127.0.0.1" in result.stderr
    assert "s3cret" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_should_migrate_and_check_an_external_database(empty_database_url: str) -> None:
    before = run_flagd("migrate", "--check", "--database-url", empty_database_url)
    applied = run_flagd("migrate", "--database-url", empty_database_url)
    again = run_flagd("migrate", "--database-url", empty_database_url)
    after = run_flagd("migrate", "--check", "--database-url", empty_database_url)
    assert (before.returncode, applied.returncode, again.returncode, after.returncode) == (1, 0, 0, 0)
    migrations = load_migrations()
    latest = migrations[-1].version
    assert f"{len(migrations)} migration(s) pending" in before.stdout
    assert (
        f"applied {len(migrations)} migration(s): {', '.join(m.label for m in migrations)}" in applied.stdout
    )
    assert f"schema is up to date at version {latest}" in again.stdout
    assert "INFO" not in applied.stderr + again.stderr  # commands print no log lines unless -v
    assert f"schema is up to date at version {latest}" in after.stdout


def test_should_serve_with_two_workers_and_json_logs(database_url: str, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = flagd_env(DATABASE_URL=database_url, FLAGD_LOG_FORMAT="json")
    server = FlagdProcess(["serve", "--port", str(port), "--workers", "2"], env, tmp_path / "out.log")
    try:
        server.wait_ready(base)
        for _ in range(4):
            assert httpx.get(f"{base}/healthz").status_code == 200
    finally:
        code = server.stop()
    assert code == 0
    records = [orjson.loads(line) for line in server.output.splitlines() if line.startswith("{")]
    assert records, server.output
    assert all({"time", "level", "logger", "message"} <= r.keys() for r in records)
    access = [r for r in records if r["logger"] == "flagd.access" and r["path"] == "/healthz"]
    assert len(access) == 4
    assert {r["status"] for r in access} == {200}
    worker_starts = [r for r in records if r["message"].startswith("Started server process")]
    assert len(worker_starts) == 2


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not under pytest's tmp_path: with two test processes, pytest's numbered directories are private to root,
    # and the embedded PostgreSQL (run as its own user) was refused them once.
    directory = Path(tempfile.mkdtemp(prefix="flagd-test-data-"))
    yield directory / "data"
    shutil.rmtree(directory, ignore_errors=True)


def test_should_refuse_a_second_server_on_the_same_data_directory(data_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    first = FlagdProcess(
        ["serve", "--port", str(port), "--data-dir", str(data_dir)], flagd_env(), tmp_path / "1.log"
    )
    try:
        first.wait_ready(f"http://127.0.0.1:{port}")
        second = run_flagd("serve", "--port", str(free_port()), "--data-dir", str(data_dir))
        still_ready = httpx.get(f"http://127.0.0.1:{port}/readyz")
    finally:
        first.stop()
    assert second.returncode == 1
    assert (
        f"the data directory {data_dir.resolve()} is in use by another flagd process (pid {first.process.pid})"
        in (second.stderr)
    )
    assert still_ready.status_code == 200


def test_should_keep_data_across_a_restart_and_stop_postgres_on_shutdown(
    data_dir: Path, tmp_path: Path
) -> None:
    instance_ids = []
    for attempt in range(2):
        port = free_port()
        server = FlagdProcess(
            ["serve", "--port", str(port), "--data-dir", str(data_dir)],
            flagd_env(),
            tmp_path / f"{attempt}.log",
        )
        try:
            instance_ids.append(server.wait_ready(f"http://127.0.0.1:{port}").json()["instanceId"])
        finally:
            code = server.stop()
        assert code == 0, server.output
        assert "stopping embedded PostgreSQL" in server.output
        assert not (data_dir / "pgdata" / "postmaster.pid").exists(), (
            "PostgreSQL still running after shutdown"
        )
    assert instance_ids[0] == instance_ids[1]
    assert "initialising embedded PostgreSQL" in (tmp_path / "0.log").read_text()
    assert "initialising embedded PostgreSQL" not in (tmp_path / "1.log").read_text()


def test_should_let_commands_use_a_running_servers_embedded_postgres(data_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = FlagdProcess(
        ["serve", "--port", str(port), "--data-dir", str(data_dir)], flagd_env(), tmp_path / "s.log"
    )
    try:
        server.wait_ready(base)
        created = run_flagd("-v", "keys", "create", "--scope", "sdk", "--data-dir", str(data_dir))
        listed = run_flagd("keys", "list", "--data-dir", str(data_dir))
        accepted = httpx.get(
            f"{base}/v1/flags", headers={"Authorization": f"Bearer {created.stdout.strip()}"}
        )
    finally:
        code = server.stop()
    assert created.returncode == 0, created.stderr
    assert "using the embedded PostgreSQL of the flagd server running in" in created.stderr  # -v
    assert listed.returncode == 0
    assert listed.stderr == ""  # without -v, a command prints no progress lines
    assert accepted.status_code == 200
    assert code == 0
    assert not (data_dir / "postgres.url").exists()


READ_AND_WRITE_COMMANDS = [
    ("keys", "list"),
    ("keys", "create", "--scope", "results", "pm"),
    ("keys", "revoke", "1"),
    ("apply", "-"),
    ("export",),
    ("experiments", "list"),
    ("experiments", "start", "one-page-checkout"),
    ("events", "prune", "--before", "2020-01-01"),
    ("events", "tail", "--limit", "1"),
    ("migrate", "--check"),
]


@pytest.mark.parametrize("command", READ_AND_WRITE_COMMANDS, ids=" ".join)
def test_should_refuse_a_command_outside_a_data_directory_in_one_line_and_create_nothing(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [sys.executable, "-m", "flagd", *command],
        env=flagd_env(),
        cwd=elsewhere,
        input='{"flags": {}}',
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"flagd: error: there is no flagd data directory at {elsewhere.resolve() / '.flagd'}; point at one with "
        "--data-dir or FLAGD_DATA_DIR, or at a PostgreSQL with --database-url or DATABASE_URL, "
        "or run `flagd serve` there first to create one"
    ]
    assert list(elsewhere.iterdir()) == []


def test_should_refuse_a_directory_that_is_not_a_data_directory_and_write_nothing_in_it(
    tmp_path: Path,
) -> None:
    result = run_flagd("keys", "list", "--data-dir", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"flagd: error: {tmp_path.resolve()} is not a flagd data directory (it has no pgdata/PG_VERSION); "
        "point at one with --data-dir or FLAGD_DATA_DIR, or at a PostgreSQL with --database-url or "
        "DATABASE_URL, or run `flagd serve` there first to create one"
    ]
    assert list(tmp_path.iterdir()) == []


def test_should_say_to_migrate_a_database_without_the_schema(empty_database_url: str) -> None:
    result = run_flagd("keys", "list", "--database-url", empty_database_url)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "flagd: error: the database has no flagd tables yet; run `flagd migrate` with the same --data-dir or "
        "--database-url first (or start `flagd serve`, which migrates)"
    ]


@pytest.mark.parametrize("command", [("keys", "list"), ("apply", "-"), ("experiments", "list")], ids=" ".join)
def test_should_report_an_unreachable_database_in_one_line(command: tuple[str, ...]) -> None:
    url = f"postgresql://flagd@127.0.0.1:{free_port()}/flagd"
    result = subprocess.run(
        [sys.executable, "-m", "flagd", *command, "--database-url", url],
        env=flagd_env(),
        input='{"flags": {}}',
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"flagd: error: cannot connect to PostgreSQL at {url}")
