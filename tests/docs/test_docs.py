"""The documentation, run: every `sh` and `python` block of README.md, docs/ and sdk/README.md, in order,
against a live server started as `make run` starts it (`flagd serve` on its embedded PostgreSQL, in a
fresh directory that has the checkout's `examples/` and `.venv`). A block that stops working fails here.

How blocks are read and run is in tests/docs/markdown.py.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs.markdown import Block, blocks, script
from tests.support import FlagdProcess, flagd_env, free_port

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted([ROOT / "README.md", ROOT / "sdk" / "README.md", *(ROOT / "docs").glob("*.md")])
VENV = Path(sys.prefix)
DOCUMENT_TIMEOUT = 180.0
_LINK = re.compile(r"\]\((?!https?://|mailto:|#)(?P<target>[^)#\s]+)(?:#[^)]*)?\)")


def _runnable(document: Path) -> list[Block]:
    return [block for block in blocks(document) if block.runs]


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Short and outside the checkout: the embedded PostgreSQL's socket path must stay under 107 bytes,
    # and a document's blocks write files (its quickstart programs) where the reader would.
    directory = Path(tempfile.mkdtemp(prefix="flagd-doc-"))
    (directory / "examples").symlink_to(ROOT / "examples")
    (directory / ".venv").symlink_to(VENV)
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize(
    "document", [d for d in DOCUMENTS if _runnable(d)], ids=lambda path: str(path.relative_to(ROOT))
)
def test_every_block_of_the_document_runs(document: Path, workdir: Path) -> None:
    port = free_port()
    # FLAGD_URL is what the example programs read (default http://127.0.0.1:8080, which blocks say and
    # tests/docs/markdown.py rewrites to this port).
    env = flagd_env(
        FLAGD_PORT=str(port), FLAGD_URL=f"http://127.0.0.1:{port}", PATH=_without_venv(os.environ["PATH"])
    )
    env.pop("VIRTUAL_ENV", None)
    server = FlagdProcess(["serve"], env, workdir / "server.log", cwd=workdir)
    try:
        server.wait_ready(f"http://127.0.0.1:{port}", timeout=120)
        (workdir / "doc.sh").write_text(script(blocks(document), port), encoding="utf-8")
        output = _run(workdir, env)
    finally:
        server.stop()
    if "@@done" not in output.stderr:
        started = [line for line in output.stderr.splitlines() if line.startswith("@@block ")]
        failed = started[-1].removeprefix("@@block ") if started else "before the first block"
        pytest.fail(
            f"the block at {failed} failed (exit {output.returncode}):\n"
            f"--- stdout (tail)\n{output.stdout[-3000:]}\n--- stderr (tail)\n{output.stderr[-4000:]}\n"
            f"--- server log (tail)\n{server.output[-2000:]}"
        )


def _run(workdir: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The document's script in its own process group, which is ended afterwards: the blocks may leave
    an example app running in the background, as a reader's terminal would."""
    process = subprocess.Popen(
        ["bash", str(workdir / "doc.sh")],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=DOCUMENT_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        stderr += f"\n(the document's blocks did not finish within {DOCUMENT_TIMEOUT:.0f} s)"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def _without_venv(path: str) -> str:
    """PATH as a new user's shell has it: the venv is active only once a block activates it."""
    return os.pathsep.join(part for part in path.split(os.pathsep) if Path(part) != VENV / "bin")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: str(path.relative_to(ROOT)))
def test_links_point_at_files_a_reader_has(document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    assert "../shared" not in text, f"{document.name} points at ../shared, which a user does not have"
    for match in _LINK.finditer(text):
        target = (document.parent / match["target"]).resolve()
        assert target.exists(), f"{document.name} links to {match['target']}, which does not exist"
        assert target.is_relative_to(ROOT), f"{document.name} links outside the repository: {match['target']}"


def test_the_readme_is_for_a_newcomer() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; reference belongs in docs/"


def test_skipped_blocks_are_few_and_say_why() -> None:
    skipped = [block for document in DOCUMENTS for block in blocks(document) if block.skip is not None]
    for block in skipped:
        assert block.lang in {"sh", "python"}, f"{block.where()}: only runnable blocks can be skipped"
    runnable = sum(len(_runnable(document)) for document in DOCUMENTS)
    assert len(skipped) * 4 <= runnable, (
        f"{len(skipped)} skipped blocks against {runnable} run: "
        + ", ".join(f"{b.where()} ({b.skip})" for b in skipped)
    )
