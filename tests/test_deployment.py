"""The Dockerfile and docker-compose.yml, checked statically (no Docker engine runs here): structure,
that every variable they set is a real setting, and that the commands they run exist."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from flagd.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SETTINGS_SOURCE = (ROOT / "flagd" / "settings.py").read_text(encoding="utf-8")
KNOWN = set(re.findall(r'"(FLAGD_[A-Z_]+)"', SETTINGS_SOURCE)) | {"DATABASE_URL", "PYTHONUNBUFFERED"}
LOADTEST_VARIABLES = set(re.findall(r'"(FLAGD_[A-Z_]+)"', (ROOT / "loadtests" / "locustfile.py").read_text()))


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    return loaded


def test_should_run_postgres_16_with_a_volume_and_a_health_check() -> None:
    postgres = compose()["services"]["postgres"]
    assert postgres["image"] == "postgres:16"
    assert any(volume.endswith(":/var/lib/postgresql/data") for volume in postgres["volumes"])
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert "pgdata" in compose()["volumes"]


def test_should_build_flagd_and_check_its_readiness() -> None:
    flagd = compose()["services"]["flagd"]
    assert flagd["build"] == "."
    assert "/readyz" in " ".join(flagd["healthcheck"]["test"])
    assert flagd["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert flagd["environment"]["DATABASE_URL"].startswith("postgresql://flagd:flagd@postgres:5432/")
    locust = compose()["services"]["locust"]
    assert locust["profiles"] == ["loadtest"]
    assert locust["depends_on"]["flagd"]["condition"] == "service_healthy"


def test_should_set_only_real_settings() -> None:
    for name, service in compose()["services"].items():
        known = KNOWN | (LOADTEST_VARIABLES if name == "locust" else set())
        for variable in service.get("environment", {}):
            if name == "postgres":
                assert variable.startswith("POSTGRES_")
                continue
            assert variable in known, f"{name} sets {variable}, which nothing reads"
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    env_lines = re.findall(r"^ENV (.+?)(?<!\\)$", dockerfile, flags=re.M | re.S)
    assigned = set(re.findall(r"([A-Z_]+)=", " ".join(env_lines)))
    assert assigned, "the Dockerfile sets no variable"
    assert assigned <= KNOWN, assigned - KNOWN
    values = dict(re.findall(r"(FLAGD_[A-Z_]+)=(\S+)", " ".join(env_lines)))
    parsed = Settings.from_env({k: v.rstrip("\\") for k, v in values.items()})  # every value is valid too
    assert parsed.host == "0.0.0.0"


def test_should_build_in_stages_and_run_as_a_user_that_is_not_root() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    stages = re.findall(r"^FROM (\S+)", dockerfile, flags=re.M)
    assert len(stages) >= 2
    assert "COPY --from=build" in dockerfile
    users = re.findall(r"^USER (\S+)", dockerfile, flags=re.M)
    assert users
    assert users[-1] not in ("root", "0")
    assert "/readyz" in dockerfile.split("HEALTHCHECK", 1)[1]
    assert re.search(r'^ENTRYPOINT \["flagd"\]', dockerfile, flags=re.M)


def test_should_run_commands_that_exist() -> None:
    flagd = compose()["services"]["flagd"]
    entry = subprocess.run(
        [sys.executable, "-m", "flagd", *flagd["command"], "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert entry.returncode == 0, entry.stderr
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    cmd = re.search(r'^CMD \["([^"]+)"\]', dockerfile, flags=re.M)
    assert cmd is not None
    help_text = subprocess.run(
        [sys.executable, "-m", "flagd", cmd.group(1), "--help"], capture_output=True, text=True, check=False
    )
    assert help_text.returncode == 0, help_text.stderr
    locust_args = compose()["services"]["locust"]["command"]
    assert locust_args[locust_args.index("-f") + 1] == "/loadtests/locustfile.py"
    assert (ROOT / "loadtests" / "locustfile.py").is_file()


def test_the_image_leaves_the_embedded_postgresql_out() -> None:
    """Under compose the image always has DATABASE_URL, so it installs flagd without the `embedded` extra
    (pgserver's PostgreSQL binaries)."""
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    installs = re.findall(r"pip (?:install|wheel)[^\n]*", dockerfile)
    assert installs
    assert not any("embedded" in line or "pgserver" in line for line in installs), installs
    assert "DATABASE_URL" in compose()["services"]["flagd"]["environment"]


def test_a_start_without_the_embedded_postgresql_says_what_to_set(tmp_path: Path) -> None:
    """What the image answers when DATABASE_URL is missing: one line, naming DATABASE_URL and the extra."""
    program = (
        "import sys; sys.modules['pgserver'] = None; from flagd.cli import main; sys.exit(main(['serve']))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLAGD_") and k != "DATABASE_URL"}
    env["FLAGD_PORT"] = "0"
    ran = subprocess.run(
        [sys.executable, "-c", program], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 1, ran.stderr
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1, ran.stderr
    assert lines[0].startswith("flagd: error: ")
    assert "DATABASE_URL" in lines[0]
    assert "flagd[embedded]" in lines[0]
