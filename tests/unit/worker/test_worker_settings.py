"""Settings: flags win over the environment, which wins over the defaults; errors name fields."""

import pytest
from vahana_worker import cli, settings


def load(argv: list[str], env: dict[str, str] | None = None) -> settings.Settings:
    namespace = cli.build_parser().parse_args(argv)
    return settings.load(vars(namespace), env or {}, now=lambda: 1000.0)


def test_defaults() -> None:
    config = load([])
    assert config.server_address == "localhost:50051"
    assert config.working_dir == "/tmp/vahana-worker"
    assert config.heartbeat_interval == 30.0
    assert config.task_timeout == 3600.0
    assert config.log_level == "info"
    assert config.max_tasks == 1
    assert config.output_limit == 65536
    assert config.poll_wait == 20.0
    assert config.drain_timeout == 30.0
    assert config.grpc_keepalive_time == 30.0
    assert config.grpc_keepalive_timeout == 10.0
    assert config.grpc_keepalive_permit_without_streams is True
    assert config.keep_sandboxes is False
    assert config.allocation_ends_at is None
    assert config.cpu_cores > 0
    assert config.memory_bytes > 0
    host, _, suffix = config.worker_id.rpartition("-")
    assert host and len(suffix) == 8 and int(suffix, 16) >= 0


def test_environment_overrides_defaults() -> None:
    env = {
        "SERVER_ADDRESS": "sched:7000",
        "WORKER_ID": "w-env",
        "WORKING_DIR": "/scratch/w",
        "HEARTBEAT_INTERVAL": "5s",
        "TASK_TIMEOUT": "2h",
        "LOG_LEVEL": "debug",
        "EXPERIMENT_ID": "exp",
        "COMPUTE_RESOURCE_ID": "cr",
        "GRPC_KEEPALIVE_TIME": "1m",
        "GRPC_KEEPALIVE_TIMEOUT": "3s",
        "GRPC_KEEPALIVE_PERMIT_WITHOUT_STREAMS": "false",
        "VAHANA_WORKER_MAX_TASKS": "4",
        "VAHANA_WORKER_MEMORY": "2Gi",
        "VAHANA_WORKER_LABELS": "zone=a, disk=ssd",
        "VAHANA_WORKER_KEEP_SANDBOXES": "yes",
    }
    config = load([], env)
    assert config.server_address == "sched:7000"
    assert config.worker_id == "w-env"
    assert config.working_dir == "/scratch/w"
    assert config.heartbeat_interval == 5.0
    assert config.task_timeout == 7200.0
    assert config.log_level == "debug"
    assert (config.experiment_id, config.compute_resource_id) == ("exp", "cr")
    assert config.grpc_keepalive_time == 60.0
    assert config.grpc_keepalive_timeout == 3.0
    assert config.grpc_keepalive_permit_without_streams is False
    assert config.max_tasks == 4
    assert config.memory_bytes == 2 * 2**30
    assert dict(config.labels) == {"zone": "a", "disk": "ssd"}
    assert config.keep_sandboxes is True


def test_flags_override_environment() -> None:
    env = {
        "SERVER_ADDRESS": "env:1",
        "VAHANA_WORKER_MAX_TASKS": "4",
        "VAHANA_WORKER_LABELS": "zone=env",
    }
    config = load(
        [
            "--server-address",
            "flag:2",
            "--max-tasks",
            "8",
            "--label",
            "zone=flag",
            "--label",
            "gpu=a100",
            "--heartbeat-interval",
            "1h30m",
            "--keep-sandboxes",
            "--output-limit",
            "1Ki",
            "--walltime",
            "2h",
        ],
        env,
    )
    assert config.server_address == "flag:2"
    assert config.max_tasks == 8
    assert dict(config.labels) == {"zone": "flag", "gpu": "a100"}
    assert config.heartbeat_interval == 5400.0
    assert config.keep_sandboxes is True
    assert config.output_limit == 1024
    assert config.allocation_ends_at == 1000.0 + 7200.0


def test_allocation_end_as_rfc3339() -> None:
    config = load(["--allocation-ends-at", "1970-01-01T01:00:00Z"])
    assert config.allocation_ends_at == 3600.0


def test_every_error_names_its_field() -> None:
    with pytest.raises(settings.SettingsError) as caught:
        load(
            ["--heartbeat-interval", "soon", "--max-tasks", "0", "--memory", "lots"],
            {"LOG_LEVEL": "chatty", "VAHANA_WORKER_LABELS": "novalue"},
        )
    fields = {error.split(":")[0] for error in caught.value.errors}
    assert fields == {"heartbeat_interval", "max_tasks", "memory_bytes", "log_level", "labels"}
    assert any("--heartbeat-interval" in e for e in caught.value.errors)


def test_walltime_and_allocation_end_exclude_each_other() -> None:
    with pytest.raises(settings.SettingsError, match="walltime"):
        load(["--walltime", "1h", "--allocation-ends-at", "5000"])


def test_cli_exits_2_on_bad_flags(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        cli.parse_settings(["--task-timeout", "never"])
    assert caught.value.code == 2
    assert "task_timeout" in capsys.readouterr().err


def test_help_names_every_env_var(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.parse_settings(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for option in settings.OPTIONS:
        assert option.env in text
        if option.flag:
            assert option.flag in text


def test_slots_and_prefetch_together_stay_within_what_one_call_may_ask_for() -> None:
    with pytest.raises(settings.SettingsError) as caught:
        settings.load({"max_tasks": 8, "prefetch": 993}, {})
    assert caught.value.errors == [
        "prefetch: max_tasks + prefetch must be at most 1000"
        " (the most one call to the scheduler may ask for)"
    ]
    assert settings.load({"max_tasks": 8, "prefetch": 992}, {}).prefetch == 992
    with pytest.raises(settings.SettingsError, match="prefetch: must be >= 0"):
        settings.load({"prefetch": -1}, {})
    with pytest.raises(settings.SettingsError, match="cgroups: must be auto or off"):
        settings.load({"cgroups": "v3"}, {})


def test_kill_grace_is_a_duration_and_never_negative() -> None:
    assert load([]).kill_grace == 2.0
    assert load(["--kill-grace=500ms"]).kill_grace == 0.5
    assert load([], {"VAHANA_WORKER_KILL_GRACE": "10s"}).kill_grace == 10.0
    with pytest.raises(settings.SettingsError) as raised:
        load(["--kill-grace=-1"])
    assert raised.value.errors[0].startswith("kill_grace: invalid duration")
