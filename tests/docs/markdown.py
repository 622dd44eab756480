"""The code blocks of a Markdown document, and the one shell script that runs them as a reader would.

A block is run when its language is `sh` or `python`; `json`, `yaml`, `text` and `sql` are shown, never run.
The fence may name a file: a ```python file=shop.py``` block is saved as shop.py (the text around it tells the
reader to), and later blocks run it. `html`, `js`, `javascript` and `jsx` blocks must name one, and are saved,
never run (a later block serves them, or a test bundles or opens them in a browser). An HTML comment on the line
before the fence changes how the block is treated:

    <!-- doc-test: skip: REASON -->   not run (it starts the server the test already started, installs
                                      packages, or needs Docker); the reason is required
    <!-- doc-test: fails -->          it shows an error: it must exit non-zero

The blocks of one document run in order in one bash process (`set -Eeuo pipefail`), so a later block
uses what an earlier one exported, as in a reader's terminal. `curl` fails on an HTTP error status
(`--fail-with-body`, unless the block asks for `-f` itself): a documented request that answers 4xx or
5xx is a broken document.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

RUN = {"sh", "python"}
SAVED = {"html", "js", "javascript", "jsx"}
SHOWN = {"json", "yaml", "text", "sql"}
_FENCE = re.compile(r"^```(?P<lang>[a-z]*)(?P<attrs>[^`]*)$")
_MARKER = re.compile(r"^<!-- doc-test: (?P<what>skip|fails)(?::\s*(?P<reason>.*?))?\s*-->$")
_FILE = re.compile(r"\bfile=(?P<name>[A-Za-z0-9_.\-/]+)")
_END = "__DOC_BLOCK_END__"


@dataclass(frozen=True)
class Block:
    document: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    file: str | None = None
    skip: str | None = None  # the reason, when skipped
    fails: bool = False

    @property
    def runs(self) -> bool:
        return self.lang in RUN and self.skip is None

    def where(self) -> str:
        return f"{self.document.name}:{self.line}"


class MarkdownError(ValueError):
    """A document's blocks cannot be read as the doc tests expect (an unclosed fence, a marker without a
    reason, an unknown language)."""


def blocks(document: Path) -> list[Block]:
    lines = document.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if not line.lstrip().startswith("```"):
            index += 1
            continue
        fence = _FENCE.match(line)
        if fence is None or not fence["lang"]:
            raise MarkdownError(
                f"{document.name}:{index + 1}: a code block must start at the line's beginning and name its "
                f"language (```sh, ```python, ```json …): {line.strip()}"
            )
        start = index
        end = next((i for i in range(index + 1, len(lines)) if lines[i] == "```"), None)
        if end is None:
            raise MarkdownError(f"{document.name}:{start + 1}: the code block is never closed")
        lang, attrs = fence["lang"], fence["attrs"]
        if lang not in RUN | SAVED | SHOWN:
            known = ", ".join(sorted(RUN | SAVED | SHOWN))
            raise MarkdownError(f"{document.name}:{start + 1}: language {lang!r}; use one of {known}")
        marker = _MARKER.match(lines[start - 1].strip()) if start else None
        skip = None
        if marker is not None and marker["what"] == "skip":
            skip = marker["reason"]
            if not skip:
                raise MarkdownError(f"{document.name}:{start}: a skipped block must say why")
        named = _FILE.search(attrs)
        if lang in SAVED and named is None:
            raise MarkdownError(f"{document.name}:{start + 1}: a ```{lang} block is saved: name its file=")
        found.append(
            Block(
                document=document,
                line=start + 1,
                lang=lang,
                text="\n".join(lines[start + 1 : end]),
                file=named["name"] if named else None,
                skip=skip,
                fails=marker is not None and marker["what"] == "fails",
            )
        )
        index = end + 1
    return found


def script(document_blocks: list[Block], port: int) -> str:
    """One bash script running every runnable block in order, each announced on stderr as
    `@@block FILE:LINE` so that a failure names the block."""
    parts = [
        "set -Eeuo pipefail",
        # Unless the block already says how to fail (-f, -sf, --fail).
        'curl() { local a; for a in "$@"; do case "$a" in --fail|--fail-with-body|-[a-zA-Z]*f*) '
        'command curl "$@"; return;; esac; done; command curl --fail-with-body "$@"; }',
    ]
    for block in document_blocks:
        if block.lang in SAVED and block.skip is None:
            parts.append(_saved(block))
            continue
        if not block.runs:
            continue
        text = block.text.replace("127.0.0.1:8080", f"127.0.0.1:{port}").replace(
            "localhost:8080", f"localhost:{port}"
        )
        if _END in text:
            raise MarkdownError(f"{block.where()}: the block contains {_END}")
        parts.append(f"echo '@@block {block.where()}' >&2")
        if block.lang == "python":
            if block.file is not None:
                parts.append(f"cat > {block.file} <<'{_END}'\n{text}\n{_END}")
            else:
                parts.append(f"python - <<'{_END}'\n{text}\n{_END}")
        elif block.fails:
            parts.append(
                f"set +e\n( set -e\n{text}\n)\n__status=$?\nset -e\n"
                f"if [ $__status -eq 0 ]; then echo '@@block {block.where()} should fail but exited 0' >&2; "
                "exit 97; fi"
            )
        else:
            parts.append(text)
    parts.append("echo '@@done' >&2")
    return "\n".join(parts) + "\n"


def _saved(block: Block) -> str:
    """The shell that writes a saved block to its file as it is (no port rewritten: a page names its server
    as the reader's would, and whatever serves or opens it says where that is)."""
    if _END in block.text:
        raise MarkdownError(f"{block.where()}: the block contains {_END}")
    return f"mkdir -p \"$(dirname {block.file})\"\ncat > {block.file} <<'{_END}'\n{block.text}\n{_END}"
