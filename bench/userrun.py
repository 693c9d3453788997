"""`vahana run -f` as a user runs it: start-up to the first task, and a run of 100,000 tasks.

- `run_startup`: `vahana run -f` of one task that writes the time it started (`date +%s.%N`);
  value: from the command's start to that moment (imports, reading the file, the scheduler and
  its 4 local workers up, the task handed out and its process started), median of 3 runs
  (5 full). `detail` gives the whole process's time too.
- `run_100k`: `vahana run -f` of 100,000 `true` tasks on 4 local workers (`--full`, or
  `--only run_100k`): whole-process time, tasks/s, CPU per task of every process, and the peak
  RSS (VmHWM) of the `vahana run` process, which holds both the CLI and the scheduler, next to
  the goal of 500 MiB.
Each run goes through `bench.reaper` on a pseudo-terminal, as in `side_by_side`.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

from bench import sidebyside
from bench.common import Result, log

STARTUP_TASK = (
    "apiVersion: vahana.dev/v1alpha1\nkind: Task\nmetadata:\n  name: stamp\n"
    "spec:\n  command: date +%s.%N > {stamp}\n"
)
MEMORY_GOAL_MIB = 500


def _run(tmp: Path, tasks_file: Path, workers: int) -> dict[str, float]:
    vahana = str(Path(sys.executable).with_name("vahana"))
    command = [vahana, "run", "-f", str(tasks_file), "--workers", str(workers)]
    return sidebyside.reap(command, tmp, tty=True)


def run_startup(full: bool) -> list[Result]:
    runs, firsts = [], []
    with tempfile.TemporaryDirectory(prefix="vahana-bench-startup-") as name:
        tmp = Path(name)
        stamp = tmp / "stamp"
        (tmp / "one.yaml").write_text(STARTUP_TASK.format(stamp=stamp))
        for i in range(5 if full else 3):
            log(f"vahana run start-up, run {i + 1}")
            figures = _run(tmp, tmp / "one.yaml", 4)
            firsts.append(float(stamp.read_text()) - figures["started_at"])
            runs.append(figures)
    return [
        Result(
            "run_startup_to_first_task",
            statistics.median(firsts),
            "s",
            detail={
                "runs": len(runs),
                "each_s": firsts,
                "whole_process_s_each": [r["wall_s"] for r in runs],
                "workers": 4,
                "measured_with": "command start (bench.reaper) → the task's own `date +%s.%N`",
            },
            comparison={"goal_s": 0.3},
        )
    ]


def run_100k(full: bool) -> list[Result]:
    count = 100_000
    with tempfile.TemporaryDirectory(prefix="vahana-bench-100k-") as name:
        tmp = Path(name)
        sidebyside.tasks_yaml(tmp / "tasks.yaml", count)
        log(f"vahana run -f of {count:,} tasks, 4 workers")
        figures = _run(tmp, tmp / "tasks.yaml", 4)
    peak_mib = figures["command_peak_rss_kib"] / 1024
    return [
        Result(
            "run_100k_peak_rss",
            peak_mib,
            "MiB",
            detail={
                "tasks": count,
                "workers": 4,
                "exit_status": figures["status"],
                "seconds": figures["wall_s"],
                "tasks_per_s_whole": count / figures["wall_s"],
                "cpu_ms_per_task": figures["cpu_s"] / count * 1000,
                "largest_process_peak_rss_mib": figures["max_rss_kib"] / 1024,
                "measured_with": "VmHWM of the vahana run process (CLI and scheduler in one)",
            },
            comparison={"goal_mib": MEMORY_GOAL_MIB},
        )
    ]


run_100k.full_only = True  # type: ignore[attr-defined]

SCENARIOS = {"run_startup": run_startup, "run_100k": run_100k}

if __name__ == "__main__":  # a quick look: python -m bench.userrun
    print(json.dumps([r.to_json() for r in run_startup(False)], indent=2))
