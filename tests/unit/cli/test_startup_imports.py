"""What `vahana` loads before it does anything: a command imports what it needs, no more.

Each import is paid on every start, before `vahana run` binds its port: the pool types' adapters,
the metrics, TLS, the operator's and the dashboard's libraries load only when asked for.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

NOT_FOR_RUN = (
    # libraries of other commands and options
    "kopf",  # vahana operator
    "kubernetes",  # the operator, kubernetes pools
    "cryptography",  # TLS, vahana certs
    "prometheus_client",  # metrics.port
    "aiohttp",  # the dashboard
    "jsonschema",  # describing a refused object only
    "psycopg",  # a PostgreSQL store
    "paramiko",  # (ssh is the ssh command, never a library)
    "asyncssh",
    "http.server",  # the worker download of remote pools, /metrics
    # vahana's modules of other commands and options
    "vahana.app.operator",
    "vahana.app.embedded_pools",  # --pool-file
    "vahana.app.distribution",
    "vahana.k8s",
    "vahana.web",
    "vahana.observability",
    "vahana.scheduling.pool_manager",
    "vahana.pools.slurm",
    "vahana.pools.baremetal",
    "vahana.pools.ssh",
    "vahana.pools.kubernetes",
    "vahana.pools.stores",
    "vahana.manifests.pools",
    "vahana.manifests.queues",
)
"""Modules `vahana run -f FILE` (local workers, no options) never loads, nor any below them."""

SCHEDULER = (
    "vahana.app.service",
    "vahana.rpc.server",
    "vahana.scheduling.scheduler",
    "vahana.store.sqlite",
    "grpc_health.v1.health",
)
"""What only `run`, `server` and `operator` load: not the client commands (`get`, `submit`…)."""

TASKS = (
    "apiVersion: vahana.dev/v1alpha1\nkind: Task\nmetadata: {name: a}\nspec: {command: 'true'}\n"
)


def loaded(code: str, *args: str) -> list[str]:
    """The modules loaded by `code` in a fresh interpreter (which prints them)."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    modules: list[str] = json.loads(done.stdout)
    return modules


def under(modules: list[str], names: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == n or m.startswith(n + ".") for n in names)]


def test_run_loads_none_of_what_other_commands_and_options_need(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks.yaml"
    tasks.write_text(TASKS)
    modules = loaded(
        "import json, sys, pathlib\n"
        "from vahana.cli import main, run\n"  # run: the scheduler `vahana run` starts
        "main._read_tasks(pathlib.Path(sys.argv[1]))\n"
        "print(json.dumps(sorted(sys.modules)))\n",
        str(tasks),
    )
    assert "vahana.app.service" in modules and "fastjsonschema" in modules  # the check works
    assert under(modules, NOT_FOR_RUN) == []


def test_the_client_commands_do_not_load_the_scheduler() -> None:
    modules = loaded(
        "import json, sys\nimport vahana.cli.main\nprint(json.dumps(sorted(sys.modules)))"
    )
    assert under(modules, NOT_FOR_RUN + SCHEDULER) == []


READING = (
    "yaml",
    "fastjsonschema",
    "rich.table",
    "rich.progress",
    "vahana.cli.client",
    "vahana.cli.render",
    "vahana.manifests.tasks",
)
"""What reads a task file and shows the run: `vahana run` loads it once its local workers are
forked (their start-up is what the first task waits for)."""


def test_the_command_line_and_run_load_what_reads_a_file_only_when_it_reads_one() -> None:
    modules = loaded(
        "import json, sys\nimport vahana.cli.main, vahana.cli.run\n"
        "print(json.dumps(sorted(sys.modules)))"
    )
    assert "vahana.app.settings" in modules  # the check works
    assert under(modules, READING) == []
