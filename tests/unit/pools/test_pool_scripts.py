"""Generated worker scripts: every spec value arrives as data, nothing in it executes.

The scripts run for real under bash in a sandbox directory, with stub `curl` and `python3`
that record what they were given; hostile values (quotes, `$()`, backticks, newlines, `;`)
must reach the worker's argv unchanged and must not create the marker file.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
from vahana.pools import credentials, scripts

PAYLOAD = b"not really a zipapp\n"
HOSTILE = [
    "a'; touch \"$MARK\"; echo '",
    '$(touch "$MARK")',
    '`touch "$MARK"`',
    'x\ntouch "$MARK"\n',
    '; touch "$MARK" ;',
    '" ; touch "$MARK" ; "',
    "${MARK:?}$(id)",
]


def _launch(tmp: Path, value: str, python: Path) -> scripts.Launch:
    return scripts.Launch(
        worker_id="w-1",
        pool=f"default/{value}",
        server_address=f"{value}:50051",
        binary_url=f"http://127.0.0.1:1/{value}",
        binary_sha256=hashlib.sha256(PAYLOAD).hexdigest(),
        working_dir=str(tmp / "work" / value.replace("/", "_")),
        labels={"site": value},
        walltime_seconds=600,
        python=str(python),
        bootstrap_token=f"pool.{value}",
    )


def _run_keeping_stdin_open(
    text: str, *, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """As over ssh: the script on stdin, then stdin stays open (its end means "stop")."""
    process = subprocess.Popen(
        ["bash", "-s"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=env,
        text=True,
    )
    assert process.stdin is not None
    process.stdin.write(text)
    process.stdin.flush()
    try:
        process.wait(30)
    finally:
        process.stdin.close()
    assert process.stdout is not None and process.stderr is not None
    out, err = process.stdout.read(), process.stderr.read()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _sandbox(tmp: Path) -> tuple[dict[str, str], Path]:
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    curl = bin_dir / "curl"
    # stub curl: writes the payload to the -o file
    curl.write_text(
        '#!/bin/bash\nwhile [ $# -gt 0 ]; do [ "$1" = -o ] && out=$2; shift; done\n'
        "printf 'not really a zipapp\\n' > \"$out\"\n"
    )
    python = bin_dir / "fakepython"
    python.write_text(
        "#!/usr/bin/env python3\nimport json, os, sys\n"
        "open(os.environ['ARGV_OUT'], 'w').write(json.dumps(sys.argv[1:]))\n"
        "open(os.environ['ARGV_OUT'] + '.token', 'w')"
        ".write(os.environ.get('VAHANA_WORKER_BOOTSTRAP_TOKEN', ''))\n"
    )
    for tool in (curl, python):
        tool.chmod(0o755)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "MARK": str(tmp / "PWNED"),
        "ARGV_OUT": str(tmp / "argv.json"),
        "HOME": str(tmp),
    }
    return env, python


@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("kind", ["sbatch", "baremetal"])
def test_hostile_values_reach_the_worker_as_data(tmp_path: Path, value: str, kind: str) -> None:
    env, python = _sandbox(tmp_path)
    launch = _launch(tmp_path, value, python)
    if kind == "sbatch":
        text = scripts.sbatch_script(launch, partition="debug")
    else:
        text = scripts.baremetal_script(launch)
    assert subprocess.run(["bash", "-n"], input=text.encode(), check=False).returncode == 0
    if kind == "sbatch":  # sbatch runs the script as a file
        (tmp_path / "job.sh").write_text(text)
        done = subprocess.run(
            ["bash", "job.sh"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30
        )
    else:
        done = _run_keeping_stdin_open(text, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "PWNED").exists()
    argv = json.loads((tmp_path / "argv.json").read_text())
    assert argv[0] == "worker.pyz"
    expected = scripts.worker_args(launch)
    assert argv[1 : 1 + len(expected)] == expected
    assert f"--label=site={value}" in argv
    # The pool's secret reaches the worker's environment intact, never its argv or a repr.
    assert (tmp_path / "argv.json.token").read_text() == f"pool.{value}"
    assert not any(launch.bootstrap_token in arg for arg in argv)
    assert launch.bootstrap_token not in repr(launch)
    if kind == "baremetal":  # the trap removed the working dir
        assert not Path(launch.worker_dir).exists()


def test_a_download_that_does_not_match_its_sha256_is_not_run(tmp_path: Path) -> None:
    env, python = _sandbox(tmp_path)
    launch = _launch(tmp_path, "ok", python)
    launch = scripts.Launch(**{**launch.__dict__, "binary_sha256": "0" * 64})
    done = _run_keeping_stdin_open(scripts.baremetal_script(launch), cwd=tmp_path, env=env)
    assert done.returncode == 3
    assert "does not match sha256" in done.stderr
    assert not (tmp_path / "argv.json").exists()


@pytest.mark.parametrize("value", [*HOSTILE, "with space", "a#b"])
def test_sbatch_header_values_must_be_plain_words(value: str) -> None:
    launch = scripts.Launch("w1", "p", "h:1", "http://u", "a" * 64, "/tmp")
    with pytest.raises(ValueError, match="spec.slurm.partition"):
        scripts.sbatch_script(launch, partition=value)


def test_sbatch_header_has_the_seed_options() -> None:
    launch = scripts.Launch(
        "w1",
        "p",
        "h:1",
        "http://u",
        "a" * 64,
        "/tmp",
        cpu_cores=2,
        memory_bytes=2 * 2**30,
        walltime_seconds=3600,
    )
    text = scripts.sbatch_script(launch, partition="debug", account="acct", qos="normal")
    header = [line for line in text.splitlines() if line.startswith("#SBATCH")]
    assert header == [
        "#SBATCH --job-name=worker_w1",
        "#SBATCH --time=1:00:00",
        "#SBATCH --cpus-per-task=2",
        "#SBATCH --mem=2048M",
        "#SBATCH --partition=debug",
        "#SBATCH --account=acct",
        "#SBATCH --qos=normal",
    ]


def test_worker_ids_are_checked() -> None:
    with pytest.raises(ValueError):
        scripts.check_id("w;1")
    assert os.sep not in scripts.check_id("w-1.a_b")


def test_tls_files_reach_the_worker_and_a_partial_tls_section_is_refused() -> None:
    tls = credentials.worker_tls(
        {"tls": {"caFile": "/n/ca.pem", "certFile": "/n/w.pem", "keyFile": "/n/w-key.pem"}},
        "spec.slurm.tls",
        required=True,
    )
    launch = scripts.Launch(
        worker_id="w-1",
        pool="default/p",
        server_address="s:50051",
        binary_url="http://s/worker.pyz",
        binary_sha256="0" * 64,
        working_dir="/tmp/w",
        tls=tls,
    )
    assert scripts.worker_args(launch)[-3:] == [
        "--tls-ca-file=/n/ca.pem",
        "--tls-cert-file=/n/w.pem",
        "--tls-key-file=/n/w-key.pem",
    ]
    assert credentials.worker_tls({}, "spec.slurm.tls", required=False) is None
    with pytest.raises(ValueError, match=r"spec\.slurm\.tls: required — this scheduler serves"):
        credentials.worker_tls({}, "spec.slurm.tls", required=True)
    with pytest.raises(ValueError, match=r"spec\.baremetal\.tls: keyFile missing"):
        credentials.worker_tls(
            {"tls": {"caFile": "a", "certFile": "b"}}, "spec.baremetal.tls", required=False
        )
