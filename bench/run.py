"""Runs Vahana's benchmark: prints a table of figures and writes them as JSON.

    .venv/bin/python -m bench.run                # short (< ~3 min on 2 cores)
    .venv/bin/python -m bench.run --full         # larger runs
    .venv/bin/python -m bench.run --only dispatch_latency --out /tmp/latency.json
    .venv/bin/python -m bench.run --only end_to_end_throughput --profile

Figures, never assertions: nothing here passes or fails on a number.
"""

from __future__ import annotations

import argparse
import compileall
import cProfile
import io
import json
import os
import pstats
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # `python bench/run.py` from the repo root
    _root = Path(__file__).resolve().parent.parent
    _venv_python = _root / ".venv" / "bin" / "python"
    try:
        import vahana  # noqa: F401
    except ImportError:
        if _venv_python.exists() and Path(sys.executable) != _venv_python:
            os.execv(str(_venv_python), [str(_venv_python), "-m", "bench.run", *sys.argv[1:]])
        raise
    sys.path.insert(0, str(_root))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench import (  # noqa: E402
    common,
    dashboard,
    idle,
    logstream,
    queues,
    scale,
    scenarios,
    sidebyside,
    submission,
    userrun,
)

SCENARIOS = {
    **sidebyside.SCENARIOS,
    **userrun.SCENARIOS,
    **scenarios.SCENARIOS,
    **idle.SCENARIOS,
    **scale.SCENARIOS,
    **submission.SCENARIOS,
    **dashboard.SCENARIOS,
    **logstream.SCENARIOS,
    **queues.SCENARIOS,
}

DEFAULT_OUT = Path(__file__).resolve().parent / "results.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--full", action="store_true", help="larger runs (several minutes)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file to write")
    names = [*SCENARIOS, *scenarios.ALIASES]
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        choices=names,
        help=f"run only this scenario (repeatable): {', '.join(names)}",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile the benchmark process (the scheduler's thread) and "
        "print the top functions to stderr",
    )
    return parser.parse_args(argv)


def selected(only: list[str] | None, full: bool = False) -> list[str]:
    """The scenarios to run: --only's, or all (those marked `full_only` only with --full)."""
    if not only:
        return [n for n, f in SCENARIOS.items() if full or not getattr(f, "full_only", False)]
    chosen: list[str] = []
    for name in only:
        target = scenarios.ALIASES.get(name, name)
        for item in (target,) if isinstance(target, str) else target:
            if item not in chosen:
                chosen.append(item)
    return chosen


def table(results: list[common.Result], mode: str) -> Table:
    grid = Table(title=f"Vahana benchmark ({mode}, {os.cpu_count()} cores)", title_justify="left")
    grid.add_column("figure")
    grid.add_column("value", justify="right")
    grid.add_column("unit")
    grid.add_column("compared with / detail")
    for result in results:
        grid.add_row(result.name, f"{result.value:,.1f}", result.unit, summary(result))
    return grid


def summary(result: common.Result) -> str:
    d, c = result.detail, result.comparison or {}
    if "skipped" in d:
        return f"skipped: {d['skipped']}"
    if "runner" in d:
        return side_by_side_summary(d, c)
    if "slowest_view" in d:
        return (
            f"budget {c['budget_ms']:,.0f} ms; slowest: {d['slowest_view']} over "
            f"{d['queued_tasks']:,} queued; GET /api/config {c['api_config_ms']:.1f} ms"
        )
    if "whole_process_s_each" in d:
        firsts = ", ".join(f"{x:.2f}" for x in d["each_s"])
        walls = ", ".join(f"{x:.2f}" for x in d["whole_process_s_each"])
        return f"goal ≤ {c['goal_s']} s; runs {firsts} s; whole process {walls} s"
    if "largest_process_peak_rss_mib" in d:
        return (
            f"goal ≤ {c['goal_mib']} MiB; {d['tasks']:,} tasks in {d['seconds']:.0f} s "
            f"({d['tasks_per_s_whole']:,.0f}/s whole, exit {d['exit_status']}); CPU "
            f"{d['cpu_ms_per_task']:.2f} ms/task; largest process "
            f"{d['largest_process_peak_rss_mib']:.0f} MiB"
        )
    if "listener_us_per_call" in d:
        return (
            f"{d['page']} open; scheduler CPU/task with {c['scheduler_cpu_us_per_task_with']:,.0f}"
            f" vs without {c['scheduler_cpu_us_per_task_without']:,.0f} µs "
            f"({c['difference_percent']:+.1f} %); listener {d['listener_us_per_call']:.2f} µs/call"
        )
    if "sbatch_seconds" in d:
        return (
            f"pilots {d['pilots_seconds']:.1f}s vs sbatch {d['sbatch_seconds']:.1f}s for "
            f"{d['tasks']} tasks (with pilot start-up {d['ratio_with_pilot_startup']:.1f}×)"
        )
    if "bulk_tasks" in d:
        before = f"before: p50 {c['before_p50_ms']:.1f} ms p99 {c['before_p99_ms']:.1f} ms"
        spread = (
            f"p50 {d['heartbeat_p50_ms']:.1f} ms"
            if "heartbeat_p50_ms" in d
            else f"p99 {d['dispatch_p99_ms']:.1f} ms, n={d['samples_during']}"
        )
        return (
            f"{spread} during {d['bulk_tasks']:,} tasks committed in "
            f"{d['submission_seconds']:.1f} s; {before}"
        )
    if "heartbeat_p99_ms" in d:
        return (
            f"{d['workers']:,} workers, {d['heartbeats_per_s']:.0f} hb/s; p50 "
            f"{d['heartbeat_p50_ms']:.1f} ms p99 {d['heartbeat_p99_ms']:.1f} ms; RSS "
            f"{d['scheduler_rss_mib']:.0f} MiB"
        )
    if "queued_tasks" in d:
        return (
            f"{d['queued_tasks']:,} queued; idle {d['rss_idle_mib']:.0f} MiB; "
            f"{d['kib_per_queued_task']:.2f} KiB/task; submit {d['submit_tasks_per_s']:,.0f}/s"
        )
    if "bound_s" in c:
        runs = ", ".join(f"{x:.2f}" for x in d["seconds_each"])
        return (
            f"bound {c['bound_s']:g} s (interval × missed + 1); runs {runs} s; "
            f"retry backoff 0: {d['with_zero_backoff_s']:.2f} s"
        )
    if "xargs_tasks_per_s" in c:
        return (
            f"xargs -P{d['workers'] * d['tasks_per_worker']}: {c['xargs_tasks_per_s']:,.0f} "
            f"tasks/s → ratio {c['ratio_vahana_over_xargs']:.2f}; {d['tasks']} tasks in "
            f"{d['seconds']:.1f}s"
        )
    if "workers_and_tasks_cpu_us_per_task" in c:
        return (
            f"{d['scheduler_cpu_share_of_one_core']:.0%} of a core; workers+tasks "
            f"{c['workers_and_tasks_cpu_us_per_task']:,.0f} µs/task"
        )
    if "with_4_idle_workers_cpu_ms" in c:
        return (
            f"4 idle workers: {c['with_4_idle_workers_cpu_ms']:.2f} ms; submit→COMPLETED p50 "
            f"{d['submit_to_completed_p50_ms_200']:.1f} ms (4: "
            f"{d['submit_to_completed_p50_ms_4']:.1f}); polls woken per task "
            f"{d['polls_woken_per_task_200']:.1f} (4: {d['polls_woken_per_task_4']:.1f})"
        )
    if "submit_to_running_p99_ms" in d:
        return (
            f"p99 {d['submit_to_running_p99_ms']:.1f} ms; submit→ASSIGNED p50 "
            f"{d['submit_to_assigned_p50_ms']:.1f} ms; n={d['samples']}"
        )
    if "plain_tasks_per_s" in c:
        return (
            f"{d['instances']:,} instances: {d['cpu_us_per_instance']:,.0f} µs each; plain tasks "
            f"{c['plain_tasks_per_s']:,.0f}/s ({c['plain_cpu_us_per_task']:,.0f} µs); "
            f"expand {d['expand_seconds'] * 1000:.0f} ms"
        )
    if "one_queue_cpu_us_per_task" in c:
        return (
            f"1 queue {c['one_queue_cpu_us_per_task']:,.0f} µs/task: 10 queues "
            f"{c['ten_queues_difference_percent']:+.1f} %, with quotas "
            f"{c['with_quotas_difference_percent']:+.1f} % ({d['store']} store)"
        )
    if "null_store_tasks_per_s" in c:
        return (
            f"null store {c['null_store_tasks_per_s']:,.0f} tasks/s (SQLite "
            f"{c['sqlite_share_of_time']:.0%} of time); {d['cpu_us_per_task']:,.0f} µs/task"
        )
    if "scheduler_cpu_us_per_task" in d:
        return (
            f"scheduler {d['scheduler_cpu_us_per_task']:,.0f} µs/task CPU "
            f"({d['scheduler_cpu_share_of_one_core']:.0%} core); "
            f"max_tasks={d['max_tasks_per_poll']}"
        )
    return ""


def side_by_side_summary(d: dict[str, Any], c: dict[str, Any]) -> str:
    rate = d.get("tasks_per_s_excluding_startup")
    parts = [
        f"{d['runner']}: {d['tasks_per_s_whole']:,.0f} tasks/s whole",
        f"{rate:,.0f} without start-up" if rate else "start-up not separable",
        f"CPU {d['cpu_ms_per_task']:.2f} ms/task"
        + (f" ({c['cpu_per_task_vs_xargs']:.2f}× xargs's)" if "cpu_per_task_vs_xargs" in c else ""),
    ]
    if "whole_process_speed_vs_xargs" in c:
        versus = f"vs xargs: whole {c['whole_process_speed_vs_xargs']:.2f}×"
        if "rate_excluding_startup_vs_xargs" in c:
            versus += f", rate {c['rate_excluding_startup_vs_xargs']:.2f}×"
        parts.append(versus)
    if "whole_process_speed_vs_hyperqueue" in c:
        parts.append(f"vs HyperQueue: whole {c['whole_process_speed_vs_hyperqueue']:.2f}×")
    return "; ".join(parts)


def compile_bytecode() -> None:
    """Writes the bytecode of both packages before anything is timed: an installed package
    has it, and a shell with PYTHONDONTWRITEBYTECODE set would otherwise have every process of
    the run compile the modules that changed since the last write (tens of ms per start)."""
    import vahana
    import vahana_worker

    for package in (vahana, vahana_worker):
        compileall.compile_dir(Path(package.__file__).parent, quiet=1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    compile_bytecode()
    mode = "full" if args.full else "short"
    console = Console() if sys.stdout.isatty() else Console(width=150)
    info = common.machine()
    results: list[common.Result] = []
    timings: dict[str, float] = {}
    profiler = cProfile.Profile() if args.profile else None
    for name in selected(args.only, args.full):
        console.print(f"[bold]{name}[/bold]")
        started = time.perf_counter()
        if profiler:
            profiler.enable()
        try:
            results.extend(SCENARIOS[name](args.full))
        except Exception as error:  # one broken scenario must not hide the others' figures
            console.print(f"[red]{name} failed: {error!r}[/red]")
            results.append(common.Result(name, float("nan"), "error", {"error": repr(error)}))
        finally:
            if profiler:
                profiler.disable()
        timings[name] = time.perf_counter() - started
        strays = common.stray_processes(r"vahana-bench-|bench\.simworkers")
        if strays:
            console.print(f"[red]stray processes after {name}:[/red] " + "; ".join(strays))
    console.print(table(results, mode))
    data = {
        "machine": info,
        "mode": mode,
        "seconds_per_scenario": {k: round(v, 1) for k, v in timings.items()},
        "note": "figures, not assertions; other work on the machine makes them noisy",
        "results": [r.to_json() for r in results],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    console.print(f"wrote {args.out} ({sum(timings.values()):.0f}s)")
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(30)
        print(text.getvalue(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
