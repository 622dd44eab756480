"""`flagd experiments`: the lifecycle from a shell, on a real database."""

from __future__ import annotations

from pathlib import Path

from tests.flagd.test_cli_flags import flagd

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "experiment.yaml"


def test_should_start_list_refuse_and_launch_from_the_command_line(database_url: str) -> None:
    assert flagd("apply", str(EXAMPLE), database_url=database_url).returncode == 0
    started = flagd("experiments", "start", "one-page-checkout", "--actor", "ana", database_url=database_url)
    assert started.returncode == 0, started.stderr
    assert "is running (phase 1)" in started.stderr
    listed = flagd("experiments", "list", database_url=database_url)
    assert "one-page-checkout" in listed.stdout
    assert "running" in listed.stdout
    again = flagd("experiments", "start", "one-page-checkout", database_url=database_url)
    assert again.returncode == 1
    assert again.stderr.startswith("flagd: error: experiment 'one-page-checkout' is running")
    missing = flagd("experiments", "stop", "nope", database_url=database_url)
    assert (missing.returncode, missing.stderr.strip()) == (
        1,
        'flagd: error: experiment "nope" does not exist',
    )
    launched = flagd("experiments", "launch", "one-page-checkout", "one-page", database_url=database_url)
    assert launched.returncode == 0, launched.stderr
    exported = flagd("export", database_url=database_url)
    assert '"defaultVariant": "one-page"' in exported.stdout
