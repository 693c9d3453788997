"""The worker's options are declared once: defaults in the Settings fields, flag, variable and
help in OPTIONS; the parser and --help are made from both and agree with them."""

from __future__ import annotations

import dataclasses

from vahana_worker import cli, settings

DERIVED = {"walltime"}
"""Options that set another field when loaded (walltime → allocation_ends_at)."""


def test_every_option_is_a_field_with_one_flag_and_one_variable() -> None:
    fields = {field.name for field in dataclasses.fields(settings.Settings)}
    options = settings.OPTIONS
    assert {o.field for o in options} - DERIVED <= fields
    flags = [o.flag for o in options if o.flag]
    assert len(flags) == len(set(flags))
    assert len({o.env for o in options}) == len(options)


def test_a_default_is_shown_from_its_field_unless_it_is_worked_out_at_load() -> None:
    defaults = settings.Settings()
    for option in settings.OPTIONS:
        if option.shown is None:
            continue
        # Written out only where the field holds a placeholder (empty, zero, none).
        assert option.field in DERIVED or getattr(defaults, option.field) in ("", 0, None)


def test_the_parser_shows_each_flags_variable_and_default() -> None:
    helps = {
        name: action.help or ""
        for action in cli.build_parser()._actions
        for name in action.option_strings
    }
    for option in settings.OPTIONS:
        if option.flag:
            shown = settings.shown_default(option)
            assert helps[option.flag].endswith(f"[env {option.env}; default {shown}]")
    assert (
        settings.shown_default(next(o for o in settings.OPTIONS if o.field == "heartbeat_interval"))
        == "30s"
    )
