"""Every scheduler setting is declared once, in its field: the parsers of `run`, `server` and
`operator`, their --help and the environment all come from it and agree."""

from __future__ import annotations

import argparse
import pathlib
import re
from typing import Any

import pytest
from vahana.app import settings
from vahana.cli import flags, main

COMMANDS = ("run", "server", "operator")
EXAMPLE = {bool: True, int: 4242, float: 2.5, str: "some-value"}


def subparser(command: str) -> argparse.ArgumentParser:
    parser = main.build_parser()
    [choices] = [a.choices for a in parser._actions if isinstance(a.choices, dict)]
    found: argparse.ArgumentParser = choices[command]
    return found


def options_of(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {name: action for action in parser._actions for name in action.option_strings}


def flagged(command: str) -> list[settings.Described]:
    return [d for d in settings.described() if d.flag and command in d.flag.commands]


@pytest.mark.parametrize("command", COMMANDS)
def test_each_settings_flag_is_in_the_parser_with_its_default_and_variable(command: str) -> None:
    actions = options_of(subparser(command))
    for item in flagged(command):
        assert item.flag is not None
        action = actions[item.flag.name]
        shown = dict(item.flag.shown).get(command, flags._shown(item.default))
        assert action.help == f"{item.flag.help} (default {shown}) [{item.env}]".replace("%", "%%")
        assert action.default is None  # not given: the environment, then the field's default


@pytest.mark.parametrize("command", COMMANDS)
def test_a_flag_sets_its_field_and_only_variables_of_real_settings_are_named(command: str) -> None:
    parser = main.build_parser()
    known = {item.env for item in settings.described()}
    helps = " ".join(a.help or "" for a in subparser(command)._actions)
    assert set(re.findall(r"VAHANA_[A-Z_]+", helps)) <= known
    for item in flagged(command):
        assert item.flag is not None
        value: Any = EXAMPLE[item.kind]
        if item.flag.choices:
            value = item.flag.choices[0]
        argv = [command, *(["-f", "x.yaml"] if command == "run" else [])]
        if item.kind is bool:
            argv.append(item.flag.name)
        else:
            argv += [item.flag.name, str(value)]
        given = flags.overrides(parser.parse_args(argv), command)
        loaded = settings.load({k: v for k, v in given.items() if v is not None}, environ={})
        section, _, name = item.path.rpartition(".")
        got = getattr(getattr(loaded, section), name) if section else getattr(loaded, name)
        assert got == value, item.path


def test_the_environment_applies_below_the_flags() -> None:
    loaded = settings.load({}, environ={"VAHANA_SERVER_PORT": "7000", "VAHANA_UI_ENABLED": "no"})
    assert loaded.server.port == 7000 and loaded.ui.enabled is False
    assert settings.load({"server.port": 7001}, {"VAHANA_SERVER_PORT": "7000"}).server.port == 7001


def test_no_two_settings_share_a_flag_or_a_variable() -> None:
    items = settings.described()
    names = [item.flag.name for item in items if item.flag]
    assert len(names) == len(set(names))
    assert len({item.env for item in items}) == len(items)


def test_the_readmes_settings_table_agrees_with_the_settings() -> None:
    readme = (pathlib.Path(__file__).resolve().parents[3] / "README.md").read_text()
    table = readme[readme.index("## Configuration") : readme.index("## Troubleshooting")]
    by_flag = {item.flag.name: item for item in settings.described() if item.flag}
    rows = [line for line in table.splitlines() if line.startswith("| ") and "`--" in line]
    assert len(rows) >= 10
    for row in rows:
        _, flag, env, default = (cell.strip() for cell in row.strip("|").split("|"))
        item = by_flag[flag.split("`")[1]]
        assert env == f"`{item.env}`", row
        literal = default.split("`")[1] if default.startswith("`") else None
        if literal is not None and not literal.startswith(("sqlite", "true", "false")):
            assert item.kind(literal) == item.default, row
