"""`flagd apply` with a rollouts: section and `flagd rollouts`: from a shell, on a real database."""

from __future__ import annotations

from pathlib import Path

from tests.flagd.test_cli_flags import flagd

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "rollout.yaml"


def test_should_start_move_and_list_rollouts_from_the_command_line(database_url: str, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(EXAMPLE.read_text().replace("variant: one-page ", "variant: two-page "))
    refused = flagd("apply", str(broken), database_url=database_url)
    assert refused.returncode == 1
    assert "rollouts.one-page-release.variant" in refused.stderr
    dry = flagd("apply", "--dry-run", str(EXAMPLE), database_url=database_url)
    assert "rollout one-page-release: would start" in dry.stderr, dry.stderr
    applied = flagd("apply", str(EXAMPLE), database_url=database_url)
    assert "rollout one-page-release: started" in applied.stderr, applied.stderr
    advanced = flagd(
        "rollouts", "advance", "one-page-release", "--reason", "pilot fine", database_url=database_url
    )
    assert advanced.returncode == 0, advanced.stderr
    assert "is running at 10% (stage 2)" in advanced.stderr
    listed = flagd("rollouts", "list", database_url=database_url)
    assert "one-page-release" in listed.stdout
    assert "10%" in listed.stdout
    rolled = flagd("rollouts", "rollback", "one-page-release", database_url=database_url)
    assert "is rolled back at 0%" in rolled.stderr
    refused = flagd("rollouts", "resume", "one-page-release", database_url=database_url)
    assert refused.returncode == 1
    assert "is rolled back" in refused.stderr
