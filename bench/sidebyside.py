"""Side by side: Vahana against xargs, HyperQueue, Dask and Parsl on the same N tasks and slots.

Every runner runs N `bash -c true` on S slots (2,000 on 4 short; 2,000 on 4 full, more rounds)
in its own process under `bench.reaper`, which times the whole process and adds up the CPU of
every process below it. Rounds are interleaved (each round runs every runner once, the order
rotated from round to round) so that a quieter or busier minute of the machine falls on all of
them; each figure is the median over the rounds.

- `xargs`: `seq N | xargs -P S -I{} bash -c true`, the floor set by process creation.
- `hyperqueue`, `dask`, `parsl`, `vahana` (the benchmark's in-process harness): `bench.peers`.
- `vahana_run`: `vahana run -f tasks.yaml --workers S` as a user runs it, on a terminal (a
  pseudo-terminal here), whole process only.

Per runner: tasks/s of the whole process and without start-up (N ÷ first submit → last task
finished, from the runner's own marks), CPU per task of all its processes, and the ratios to
xargs and to each other runner (CPU per task too: as a multiple of xargs's it moves less with
the machine's speed than the absolute figure). A peer that is not installed (the `bench` extra)
is skipped.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import peers
from bench.common import Result, log

ROOT = Path(__file__).resolve().parent.parent
RUNNERS = ("xargs", "hyperqueue", "dask", "parsl", "vahana", "vahana_run")
LABELS = {
    "xargs": "xargs -P{slots} (the floor)",
    "hyperqueue": "HyperQueue LocalCluster",
    "dask": "Dask distributed LocalCluster",
    "parsl": "Parsl HighThroughputExecutor",
    "vahana": "Vahana, bench harness",
    "vahana_run": "vahana run -f --workers {slots}",
}


def tasks_yaml(path: Path, count: int) -> None:
    docs = (
        f"apiVersion: vahana.dev/v1alpha1\nkind: Task\nmetadata:\n  name: t{i}\n"
        f"spec:\n  command: 'true'\n"
        for i in range(count)
    )
    path.write_text("---\n".join(docs))


def command(runner: str, count: int, slots: int, tmp: Path) -> list[str]:
    python = sys.executable
    if runner == "xargs":
        return ["bash", "-c", f"seq {count} | xargs -P {slots} -I{{}} bash -c true"]
    if runner == "vahana_run":
        vahana = str(Path(python).with_name("vahana"))
        return [vahana, "run", "-f", str(tmp / "tasks.yaml"), "--workers", str(slots)]
    return [python, "-m", "bench.peers", runner, str(count), str(slots), str(tmp / "marks.json")]


def reap(command: list[str], tmp: Path, *, tty: bool = False) -> dict[str, Any]:
    """Runs `command` under bench.reaper; its figures, or {"skipped": why} for a missing peer."""
    (tmp / "reaper.json").unlink(missing_ok=True)
    env = dict(os.environ)
    # As with an activated venv: Parsl starts its interchange by name from PATH.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-m", "bench.reaper", *(["--tty"] if tty else [])]
        + [str(tmp / "reaper.json"), "--", *command],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    if done.returncode == peers.SKIP_EXIT and "SKIPPED" in done.stdout:
        return {"skipped": done.stdout.split("SKIPPED:", 1)[1].strip()}
    if done.returncode != 0 or not (tmp / "reaper.json").exists():
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{command[0]} exited {done.returncode}: {' | '.join(tail)}")
    figures: dict[str, Any] = json.loads((tmp / "reaper.json").read_text())
    return figures


def measure(runner: str, count: int, slots: int, tmp: Path) -> dict[str, Any]:
    """One run of one runner: the reaper's figures plus the runner's own marks."""
    (tmp / "marks.json").unlink(missing_ok=True)
    figures = reap(command(runner, count, slots, tmp), tmp, tty=runner == "vahana_run")
    if "skipped" in figures:
        return figures
    if (tmp / "marks.json").exists():
        marks = json.loads((tmp / "marks.json").read_text())
        figures["run_s"] = marks["done"] - marks["submitted"]
        figures["startup_s"] = marks["submitted"] - marks["started"]
        figures["failed"] = marks["failed"]
    elif runner == "xargs":
        figures["run_s"], figures["startup_s"], figures["failed"] = figures["wall_s"], 0.0, 0
    return figures


def side_by_side(full: bool) -> list[Result]:
    count, slots, rounds = 2000, 4, (4 if full else 2)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in RUNNERS}
    skipped: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="vahana-bench-peers-") as name:
        tmp = Path(name)
        tasks_yaml(tmp / "tasks.yaml", count)
        for round_number in range(rounds):
            shift = round_number % len(RUNNERS)
            for runner in RUNNERS[shift:] + RUNNERS[:shift]:
                if runner in skipped:
                    continue
                log(f"side by side, round {round_number + 1}/{rounds}: {runner}")
                figures = measure(runner, count, slots, tmp)
                if "skipped" in figures:
                    skipped[runner] = figures["skipped"]
                else:
                    runs[runner].append(figures)
    medians = {name: _medians(each, count) for name, each in runs.items() if each}
    return [
        _result(name, medians, count=count, slots=slots, rounds=runs[name])
        if name in medians
        else Result(f"side_by_side_{name}", float("nan"), "s", {"skipped": skipped[name]})
        for name in RUNNERS
    ]


def _medians(each: list[dict[str, Any]], count: int) -> dict[str, float | None]:
    wall = statistics.median(r["wall_s"] for r in each)
    cpu = statistics.median(r["cpu_s"] for r in each)
    run = statistics.median(r["run_s"] for r in each) if "run_s" in each[0] else None
    return {
        "wall_s": wall,
        "tasks_per_s_whole": count / wall,
        "tasks_per_s_excluding_startup": count / run if run else None,
        "cpu_ms_per_task": cpu / count * 1000,
        "startup_s": statistics.median(r["startup_s"] for r in each) if run else None,
        "max_rss_mib": max(r["max_rss_kib"] for r in each) / 1024,
        "command_peak_rss_mib": max(r["command_peak_rss_kib"] for r in each) / 1024,
    }


def _result(
    name: str,
    medians: dict[str, dict[str, float | None]],
    *,
    count: int,
    slots: int,
    rounds: list[dict[str, Any]],
) -> Result:
    mine = medians[name]
    comparison: dict[str, Any] = {}
    for other, theirs in medians.items():
        if other == name:
            continue
        # > 1: this runner is faster (whole process) / has the higher rate without start-up.
        comparison[f"whole_process_speed_vs_{other}"] = theirs["wall_s"] / mine["wall_s"]  # type: ignore[operator]
        # < 1: this runner spends less CPU per task. The machine's speed, which varies from hour
        # to hour on a shared host, moves the CPU figures of one run together.
        comparison[f"cpu_per_task_vs_{other}"] = mine["cpu_ms_per_task"] / theirs["cpu_ms_per_task"]  # type: ignore[operator]
        if mine["tasks_per_s_excluding_startup"] and theirs["tasks_per_s_excluding_startup"]:
            comparison[f"rate_excluding_startup_vs_{other}"] = (
                mine["tasks_per_s_excluding_startup"] / theirs["tasks_per_s_excluding_startup"]
            )
    return Result(
        f"side_by_side_{name}",
        mine["wall_s"],  # type: ignore[arg-type]
        "s (whole process)",
        detail={
            "runner": LABELS[name].format(slots=slots),
            "tasks": count,
            "slots": slots,
            "rounds": len(rounds),
            **{k: v for k, v in mine.items() if v is not None},
            "wall_s_each": [r["wall_s"] for r in rounds],
            "cpu_ms_per_task_each": [r["cpu_s"] / count * 1000 for r in rounds],
            "failed": max(r.get("failed", 0) for r in rounds),
            "leftovers_killed": sum(r["leftovers_killed"] for r in rounds),
            "measured_with": "bench.reaper: wall from start to exit; CPU = RUSAGE_CHILDREN "
            "of a child subreaper (every process below it)",
        },
        comparison=comparison,
    )


SCENARIOS = {"side_by_side": side_by_side}
