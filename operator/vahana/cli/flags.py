"""The settings flags of `run`, `server` and `operator`, made from the settings' fields.

Each flag's name, help, choices and the command it belongs to are in its field's `Flag`
(core/options.py, app/settings.py); its default and environment variable are the field's. Here
they become argparse arguments whose --help says `(default …) [VAHANA_…]`, and the parsed
options become `settings.load` overrides. A flag not given is None, so the environment and the
defaults apply below it.
"""

from __future__ import annotations

import argparse
from typing import Any

from vahana.app import settings as settings_module


def add(parser: argparse.ArgumentParser, command: str) -> None:
    """Adds every settings flag of `command` to its parser."""
    groups: dict[str, Any] = {}
    for item in settings_module.described():
        flag = item.flag
        if flag is None or command not in flag.commands:
            continue
        target: Any = parser
        if flag.group:
            if flag.group not in groups:
                groups[flag.group] = parser.add_argument_group(flag.group)
            target = groups[flag.group]
        shown = dict(flag.shown).get(command, _shown(item.default))
        options: dict[str, Any] = {
            "dest": flag.dest,
            "default": None,
            "help": f"{flag.help} (default {shown}) [{item.env}]".replace("%", "%%"),
        }
        if item.kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["type"] = str if flag.repeat else item.kind
            if flag.repeat:
                options["action"] = "append"
            if flag.metavar:
                options["metavar"] = flag.metavar
            if flag.choices:
                options["choices"] = list(flag.choices)
        target.add_argument(flag.name, **options)


def overrides(options: argparse.Namespace, command: str) -> dict[str, Any]:
    """The settings given as flags: dotted path → value (None where not given)."""
    found: dict[str, Any] = {}
    for item in settings_module.described():
        flag = item.flag
        if flag is None or command not in flag.commands:
            continue
        value = getattr(options, flag.dest, None)
        if flag.repeat and value is not None:
            value = ",".join(value)
        found[item.path] = value
    return found


def _shown(default: Any) -> str:
    if isinstance(default, bool):
        return "on" if default else "off"
    return str(default) if default != "" else "none"
