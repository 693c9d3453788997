"""The image built from the Dockerfile, run with podman as a user would run it.

The image is built once per test session (tests/fixtures/image.py, fixture `vahana_image`);
its size is printed at the end of the test run. The chart's operator Pod and the worker Pods
run from the same image in tests/k8s/test_containers.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import harness
from tests.integration.harness import free_port
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
# As build_worker_job and the chart describe their Pods (Pod Security Standard "restricted").
RESTRICTED = (
    "--user", "65532:65532", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
    "--read-only", "--read-only-tmpfs=false",
)  # fmt: skip


def podman(
    *args: str, timeout: float = 120, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
    return done


def run_in(image: str, script: str, *options: str) -> subprocess.CompletedProcess[str]:
    return podman("run", "--rm", "--network", "host", *options, image, "sh", "-c", script,
                  check=False)  # fmt: skip


def test_the_runtime_holds_no_pip_setuptools_or_build_tools_and_has_an_ssh_client(
    vahana_image: str,
) -> None:
    checks = {
        "pip module": "python3 -c 'import pip'",
        "pip command": "command -v pip || command -v pip3",
        "setuptools": "python3 -c 'import setuptools'",
        "wheel": "python3 -c 'import wheel'",
        "ensurepip's wheels": "python3 -m ensurepip --help >/dev/null && python3 -m venv /tmp/v",
        "a C compiler": "command -v gcc || command -v cc",
        "make": "command -v make",
    }
    for what, script in checks.items():
        done = run_in(vahana_image, script, "--tmpfs", "/tmp")
        assert done.returncode != 0, f"the image has {what}: {done.stdout}"
    present = run_in(vahana_image, "ssh -V 2>&1; id -u; id -g; echo $VAHANA_POOLS_WORKER_PYZ")
    assert present.returncode == 0, present.stderr
    ssh_version, uid, gid, pyz = present.stdout.split("\n")[:4]
    assert ssh_version.startswith("OpenSSH"), "remote pools need an ssh client"
    assert (uid, gid) == ("65532", "65532")
    assert pyz == "/opt/vahana/share/worker.pyz"
    size = json.loads(podman("image", "inspect", vahana_image).stdout)[0]["Size"]
    print(f"{vahana_image}: {size / 1e6:.0f} MB")


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["vahana", "--version"], "vahana "),
        (["vahana", "operator", "--help"], "--worker-server-address"),
        (["vahana-worker", "--help"], "--server-address"),
    ],
)
def test_both_programs_start_under_the_restricted_security_context(
    vahana_image: str, command: list[str], expected: str
) -> None:
    done = podman("run", "--rm", *RESTRICTED, vahana_image, *command, check=False)
    assert done.returncode == 0, done.stderr
    assert expected in done.stdout


def test_the_package_carries_its_crds_and_migrations_and_the_worker_zipapp_starts(
    vahana_image: str,
) -> None:
    script = (
        "import importlib.resources as r; v = r.files('vahana'); "
        "print(sorted(p.name for p in v.joinpath('crds').iterdir())); "
        "print(any(p.name.endswith('.sql') for p in v.joinpath('store', 'migrations').iterdir()))"
    )
    done = podman("run", "--rm", *RESTRICTED, vahana_image, "python3", "-c", script)
    crds, migrations = done.stdout.splitlines()
    assert crds == str(sorted(p.name for p in (ROOT / "crds").glob("*.yaml")))
    assert migrations == "True"
    # What slurm and baremetal pilots download and run with the node's python3.
    started = podman(
        "run", "--rm", *RESTRICTED, "--tmpfs", "/tmp", "-e", "SHIV_ROOT=/tmp/shiv",
        vahana_image, "sh", "-c", 'python3 "$VAHANA_POOLS_WORKER_PYZ" --help',
    )  # fmt: skip
    assert "--server-address" in started.stdout


@pytest.fixture
def state_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="vh-image-") as path:
        os.chmod(path, 0o777)  # the container's user (65532) writes the store there
        yield Path(path)


def test_the_image_serves_as_a_standalone_scheduler_with_local_workers(
    vahana_image: str, state_dir: Path
) -> None:
    port, ui_port = free_port(), free_port()
    name = f"vahana-standalone-{port}"
    podman(
        "run", "-d", "--name", name, "--network", "host", *RESTRICTED, "-m", "512m",
        "-v", f"{state_dir}:/var/lib/vahana", "--tmpfs", "/tmp", vahana_image,
        "tini", "--", "vahana", "server", "--host=127.0.0.1", f"--port={port}", "--workers=2",
        "--state-dir=/var/lib/vahana", "--metrics-port=0", f"--ui-port={ui_port}",
    )  # fmt: skip
    try:
        wait_until(
            lambda: harness.serving(f"127.0.0.1:{port}"), timeout=60,
            message="the container's scheduler serving",
        )  # fmt: skip
        submitted = subprocess.run(
            [sys.executable, "-m", "vahana.cli.main", "submit", "--wait",
             "-f", str(ROOT / "deploy" / "examples" / "hello.yaml"),
             "--server", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        listed = subprocess.run(
            [sys.executable, "-m", "vahana.cli.main", "get", "tasks", "-o", "json",
             "--server", f"127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        tasks = json.loads(listed.stdout)
        assert tasks and {task["status"] for task in tasks} == {"COMPLETED"}
        # The dashboard's pages and its chart library ship in the installed package.
        for asset in ("", "assets/js/app.js", "assets/vendor/uplot/uPlot.iife.min.js"):
            url = f"http://127.0.0.1:{ui_port}/{asset}"
            with urllib.request.urlopen(url, timeout=10) as response:
                assert response.status == 200 and response.read(), url
        # The store is on the volume, written by the container's user.
        assert (state_dir / "vahana.db").stat().st_uid == 65532
        states = podman("exec", name, "sh", "-c", "cat /proc/[0-9]*/stat").stdout
        zombies = [line for line in states.splitlines() if line.split(") ")[-1].startswith("Z")]
        assert not zombies, zombies
    finally:
        logs = podman("logs", name, check=False).stderr
        podman("rm", "-f", "-t", "5", name, check=False)
    assert "Traceback" not in logs, logs
