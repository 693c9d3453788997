"""How a setting is given on the command line, written once: in the setting's field.

A settings dataclass declares a field with `setting(default, Flag(...))`; the CLI builds each
command's flags, their `--help` (with the default and the environment variable) and the
overrides from these fields (vahana/cli/flags.py), and the environment name is derived from the
field's path (`VAHANA_<SECTION>_<FIELD>`, app/settings.py). Nothing else repeats a flag's name,
default or variable.
"""

from __future__ import annotations

import dataclasses
from typing import Any

COMMANDS = frozenset({"run", "server", "operator"})
"""The commands that run a scheduler and so take settings flags."""


@dataclasses.dataclass(frozen=True)
class Flag:
    name: str
    """The flag, e.g. `--port`; its argparse dest is the name without dashes (`port`)."""
    help: str
    """What the setting does; the default and the environment variable are added to it."""
    commands: frozenset[str] = COMMANDS
    shown: tuple[tuple[str, str], ...] = ()
    """(command, default as said in --help) where a command's default is not the field's."""
    metavar: str | None = None
    choices: tuple[str, ...] = ()
    group: str = ""
    """Title of the --help section the flag is listed in; empty: the command's own."""
    repeat: bool = False
    """The flag may be given several times; the values are joined with commas."""

    @property
    def dest(self) -> str:
        return self.name.removeprefix("--").replace("-", "_")


def setting(default: Any, flag: Flag | None = None) -> Any:
    """A settings field with its default and, when it has one, its command-line flag."""
    return dataclasses.field(default=default, metadata={"flag": flag} if flag else {})


def flag_of(field: dataclasses.Field[Any]) -> Flag | None:
    found = field.metadata.get("flag")
    return found if isinstance(found, Flag) else None
