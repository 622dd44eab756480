"""Install flagd into a virtual environment, once, safely from several shells at once.

    python3 tools/install.py VENV server   # what `flagd serve` needs (make run)
    python3 tools/install.py VENV dev      # the server plus the test and lint toolchain (make test)

Only the standard library, since it runs before anything is installed. The whole install runs under
an exclusive lock on VENV.lock, so two `make run` on a fresh clone wait for each other instead of
running two pips into one environment; the second finds the first one's stamp and installs nothing.
A stamp records what was installed and is newer than both pyproject files; editing either, or
asking for more (dev after server), installs again.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
import time
import venv
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
PROJECTS = (ROOT / "pyproject.toml", ROOT / "sdk" / "pyproject.toml")
# What each kind installs, as pip arguments (editable: the checkout is the code that runs).
KINDS = {
    "server": ["-e", "./sdk", "-e", ".[embedded]"],
    "dev": ["-e", "./sdk", "-e", ".[embedded,dev]"],
}
# A kind's stamp also stands for the kinds it includes.
INCLUDES = {"server": {"server"}, "dev": {"server", "dev"}}


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 (runs before anything checks requires-python)
        print(
            "flagd: error: flagd needs Python 3.11 or newer; run make with PYTHON=python3.11", file=sys.stderr
        )
        return 1
    if len(argv) != 2 or argv[1] not in KINDS:
        print(f"usage: {Path(__file__).name} VENV {'|'.join(KINDS)}", file=sys.stderr)
        return 2
    target, kind = Path(argv[0]), argv[1]
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{target}.lock", "w") as lock:
        if not _try_lock(lock):
            print(f"flagd: another install into {target} is running; waiting for it", file=sys.stderr)
            fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed(target, kind):
            return 0
        return _install(target, kind)


def _try_lock(lock: IO[str]) -> bool:
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _stamp(target: Path, kind: str) -> Path:
    return target / f".installed-{kind}"


def _installed(target: Path, kind: str) -> bool:
    newest = max(path.stat().st_mtime for path in PROJECTS)
    for candidate in KINDS:
        stamp = _stamp(target, candidate)
        if kind in INCLUDES[candidate] and stamp.exists() and stamp.stat().st_mtime >= newest:
            return True
    return False


def _install(target: Path, kind: str) -> int:
    python = target / "bin" / "python"
    started = time.monotonic()
    if not python.exists():
        print(f"flagd: creating {target}", file=sys.stderr)
        venv.create(target, with_pip=True)
    print(f"flagd: installing the {kind} packages into {target} (once)", file=sys.stderr)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *KINDS[kind]]
    if subprocess.run(pip, cwd=ROOT).returncode != 0:
        print(f"flagd: error: installing into {target} failed (pip's message is above)", file=sys.stderr)
        return 1
    _stamp(target, kind).touch()
    print(f"flagd: installed in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
