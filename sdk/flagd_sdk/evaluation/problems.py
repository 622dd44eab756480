"""Problems found in a flag set, each located by a JSON path such as `flags.checkout.targeting.if[1]`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class FlagSetError(ValueError):
    """A flag set failed validation; `problems` lists every problem found, in document order."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"the flag set has {count} problem{'s' if count != 1 else ''}:\n{lines}")


def child(path: str, key: str | int) -> str:
    """The path of a member (`a.b`) or an element (`a[0]`) of the node at `path`."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    segment = key if _is_plain(key) else f'["{key}"]'
    if not path:
        return segment
    return f"{path}{segment}" if segment.startswith("[") else f"{path}.{segment}"


def _is_plain(key: str) -> bool:
    return bool(key) and all(c.isalnum() or c in "_-$" for c in key)
