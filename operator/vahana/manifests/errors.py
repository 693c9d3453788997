"""What is wrong with a manifest: one `Problem` per mistake, all of them in one `ManifestError`."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from vahana.core import printable


@dataclasses.dataclass(frozen=True)
class Problem:
    """One mistake in a file: where it is, what is wrong, and how to fix it."""

    source: str
    """The file name (or another label of where the text came from)."""
    message: str
    """What is wrong, e.g. "must not be empty"."""
    path: str = ""
    """The field, e.g. `spec.resources.cpu`; empty for the document as a whole."""
    hint: str = ""
    """How to fix it, e.g. "give the shell command to run"."""
    document: int = 0
    """1-based index of the YAML document; 0 when the problem is not inside one."""
    item: int = 0
    """1-based index in a `kind: List`'s items; 0 outside a List."""
    task: str = ""
    """metadata.name of the object, when it has one."""
    kind: str = "task"
    """What the object is, in words ("task", "queue"), to name it."""
    line: int = 0
    """1-based line for YAML syntax errors; 0 otherwise."""

    def __str__(self) -> str:
        """One line, safe for a terminal: what came from the file is escaped and cut short."""
        shown = printable.printable
        where = [shown(self.source)]
        place = f"document {self.document}" if self.document else ""
        if self.item:
            place = f"{place}, item {self.item}" if place else f"item {self.item}"
        if self.task:
            where.append(f'{self.kind} "{shown(self.task, 80)}"' + (f" ({place})" if place else ""))
        elif place:
            where.append(place)
        if self.line:
            where.append(f"line {self.line}")
        if self.path:
            where.append(shown(self.path))
        text = ": ".join(where) + ": " + shown(self.message, 1000)
        return f"{text} — {shown(self.hint, 1000)}" if self.hint else text


class ManifestError(ValueError):
    """A manifest that cannot be used; `problems` lists every mistake found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))
