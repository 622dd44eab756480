"""The SDK is its own distribution: installing it must not drag in the server."""

from __future__ import annotations

import os
import shutil
import subprocess
import venv
from pathlib import Path

SDK_DIR = Path(__file__).resolve().parents[2] / "sdk"
SERVER_ONLY = {"starlette", "uvicorn", "asyncpg", "scipy", "numpy", "pgserver", "orjson", "flagd"}


def test_should_install_sdk_alone_without_server_dependencies(tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    # What the new environment sees of itself only: a PYTHONPATH pointing at the checkout would list flagd.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # From a copy: setuptools builds in the source directory, and tests must not write into the checkout.
    source = shutil.copytree(SDK_DIR, tmp_path / "sdk", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(source)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert install.returncode == 0, install.stderr
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    installed = {line.split("==")[0].lower() for line in listed.stdout.splitlines()}
    assert "flagd-sdk" in installed
    assert not installed & SERVER_ONLY, installed & SERVER_ONLY
    imported = subprocess.run(
        [str(python), "-c", "import flagd_sdk, flagd_sdk.evaluation"], capture_output=True, env=env
    )
    assert imported.returncode == 0, imported.stderr
