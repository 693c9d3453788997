"""Scheduler process settings: flags > environment > defaults, and validate() naming each path."""

from __future__ import annotations

import dataclasses
import pathlib

import pytest
from vahana.app import settings as app_settings
from vahana.scheduling import records


def load(overrides=None, **environ: str) -> app_settings.Settings:
    return app_settings.load(overrides or {}, environ)


def test_defaults_without_flags_or_environment() -> None:
    loaded = load()
    assert loaded == app_settings.Settings()
    assert loaded.server.port == 50051 and loaded.log_level == "warning"
    assert loaded.scheduler == records.SchedulerSettings()


def test_environment_overrides_defaults_with_the_fields_type() -> None:
    loaded = load(
        VAHANA_SERVER_PORT="50052",
        VAHANA_SCHEDULER_HEARTBEAT_INTERVAL_SECONDS="5",
        VAHANA_SCHEDULER_MISSED_HEARTBEATS="4",
        VAHANA_LOG_LEVEL="debug",
    )
    assert loaded.server.port == 50052 and isinstance(loaded.server.port, int)
    assert loaded.scheduler.heartbeat_interval_seconds == 5.0
    assert loaded.scheduler.missed_heartbeats == 4
    assert loaded.log_level == "debug"
    assert loaded.server.host == "127.0.0.1"  # untouched fields keep their defaults


def test_flags_override_the_environment() -> None:
    loaded = load(
        {"server.port": 7000, "log_level": "error"},
        VAHANA_SERVER_PORT="50052",
        VAHANA_LOG_LEVEL="debug",
    )
    assert loaded.server.port == 7000 and loaded.log_level == "error"


def test_a_flag_given_as_none_means_not_given() -> None:
    loaded = load({"server.port": None, "log_level": None}, VAHANA_SERVER_PORT="50052")
    assert loaded.server.port == 50052 and loaded.log_level == "warning"


def test_flags_given_as_strings_are_coerced() -> None:
    loaded = load({"scheduler.removal_after_unhealthy_seconds": "90.5"})
    assert loaded.scheduler.removal_after_unhealthy_seconds == 90.5


def test_a_bad_value_names_its_variable() -> None:
    with pytest.raises(ValueError, match="VAHANA_SERVER_PORT: 'http' is not a valid int"):
        load(VAHANA_SERVER_PORT="http")


def test_unrelated_environment_is_ignored() -> None:
    assert load(VAHANA_NOT_A_SETTING="1", PATH="/bin") == app_settings.Settings()


def test_default_settings_are_valid() -> None:
    assert app_settings.Settings().validate() == []


def test_validate_reports_every_problem_with_its_path() -> None:
    bad = app_settings.Settings(
        server=app_settings.ServerSettings(port=70000),
        store=app_settings.StoreSettings(url="mysql://db"),
        scheduler=records.SchedulerSettings(heartbeat_interval_seconds=0, missed_heartbeats=0),
        local_pool=app_settings.LocalPoolSettings(tasks_per_worker=0),
        log_level="loud",
    )
    paths = [problem.split(":")[0] for problem in bad.validate()]
    assert paths == [
        "server.port",
        "store.url",
        "scheduler.heartbeat_interval_seconds",
        "scheduler.missed_heartbeats",
        "local_pool.tasks_per_worker",
        "log_level",
    ]


@pytest.mark.parametrize("url", ["sqlite:///tmp/x.db", "postgresql://u@h/db", "postgres://u@h/db"])
def test_accepted_store_urls(url: str) -> None:
    settings = app_settings.Settings(store=app_settings.StoreSettings(url=url))
    assert settings.validate() == [] and settings.store_url == url


def test_empty_store_url_means_sqlite_in_the_state_dir(tmp_path: pathlib.Path) -> None:
    settings = app_settings.Settings(store=app_settings.StoreSettings(state_dir=str(tmp_path)))
    assert settings.state_dir == tmp_path.resolve()
    assert settings.store_url == f"sqlite:///{tmp_path.resolve() / 'vahana.db'}"


def test_log_level_is_case_insensitive() -> None:
    assert app_settings.Settings(log_level="DEBUG").validate() == []


def test_scheduler_derived_limits() -> None:
    scheduler = records.SchedulerSettings(heartbeat_interval_seconds=5, missed_heartbeats=4)
    assert scheduler.silence_limit_seconds == 20
    assert scheduler.assignment_grace == 10
    assert dataclasses.replace(scheduler, assignment_grace_seconds=3).assignment_grace == 3


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        app_settings.Settings().log_level = "debug"  # type: ignore[misc]


def test_the_dashboard_is_off_unless_asked_and_its_port_is_checked() -> None:
    assert load().ui == app_settings.UiSettings(enabled=False, port=8080)
    on = load(VAHANA_UI_ENABLED="true", VAHANA_UI_PORT="9000")
    assert on.ui.enabled is True and on.ui.port == 9000
    problems = load({"ui.port": 70000, "ui.push_interval_seconds": 0}).validate()
    assert "ui.port: 70000 is not a port (0 picks a free one)" in problems
    assert "ui.push_interval_seconds: must be > 0" in problems
