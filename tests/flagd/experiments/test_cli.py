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


def _applied(database_url: str, *, start: bool = False) -> None:
    """The example applied, and its experiment started when asked."""
    assert flagd("apply", str(EXAMPLE), database_url=database_url).returncode == 0
    if start:
        assert flagd("experiments", "start", "one-page-checkout", database_url=database_url).returncode == 0


def _reweighted(directory: Path) -> Path:
    """A copy of the example with the experiment's weights changed from 50/50 to 30/70."""
    changed = directory / "experiment.yaml"
    text = EXAMPLE.read_text()
    assert "variants: {classic: 50, one-page: 50}" in text
    changed.write_text(
        text.replace("variants: {classic: 50, one-page: 50}", "variants: {classic: 30, one-page: 70}")
    )
    return changed


def test_should_start_a_new_phase_with_the_changed_file_the_refusal_names(
    database_url: str, tmp_path: Path
) -> None:
    _applied(database_url, start=True)
    changed = _reweighted(tmp_path)
    refused = flagd("apply", str(changed), database_url=database_url)
    assert refused.returncode == 1
    assert "`flagd experiments new-phase one-page-checkout --file FILE`" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1

    phased = flagd(
        "experiments", "new-phase", "one-page-checkout", "--file", str(changed), database_url=database_url
    )
    assert phased.returncode == 0, phased.stderr
    assert phased.stderr.startswith(
        f"experiment one-page-checkout is running (phase 2), with its definition from {changed}; config version"
    )
    again = flagd("apply", str(changed), database_url=database_url)
    assert again.returncode == 0, again.stderr
    assert "= nothing to change" in again.stdout
    listed = flagd("experiments", "list", database_url=database_url)
    assert "running       2  checkout-page" in listed.stdout


def test_should_read_the_new_phase_from_standard_input_and_refuse_a_file_without_it(
    database_url: str, tmp_path: Path
) -> None:
    _applied(database_url, start=True)
    other = tmp_path / "flags.json"
    other.write_text('{"flags": {}}')
    missing = flagd(
        "experiments", "new-phase", "one-page-checkout", "--file", str(other), database_url=database_url
    )
    assert (missing.returncode, missing.stderr.splitlines()) == (
        1,
        [
            f'flagd: error: {other} does not define experiment "one-page-checkout"; give the flags file whose '
            "experiments: section defines it, as `flagd apply` would read it"
        ],
    )
    piped = flagd(
        "experiments",
        "new-phase",
        "one-page-checkout",
        "--file",
        "-",
        database_url=database_url,
        stdin=EXAMPLE.read_text().replace("allocation_bp: 5000", "allocation_bp: 6000"),
    )
    assert piped.returncode == 0, piped.stderr
    assert "is running (phase 2), with its definition from -;" in piped.stderr
    exported = flagd("export", database_url=database_url)
    assert '"allocation_bp": 6000' in exported.stdout


def test_should_show_a_change_of_weights_as_one_line(database_url: str, tmp_path: Path) -> None:
    _applied(database_url)
    changed = _reweighted(tmp_path)
    dry = flagd("apply", str(changed), "--dry-run", database_url=database_url)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        "~ experiment one-page-checkout: variants classic 50/one-page 50 → classic 30/one-page 70"
    ]
