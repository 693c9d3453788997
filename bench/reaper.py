"""Runs one command as a user would and measures all of it: wall time and every process's CPU.

    python -m bench.reaper [--tty] OUT_JSON -- COMMAND [ARGS...]

This process makes itself a child subreaper (Linux `PR_SET_CHILD_SUBREAPER`), so processes the
command leaves behind (a daemonised server, a worker pool started with `&`) are reparented to it
and waited for here: `getrusage(RUSAGE_CHILDREN)` then holds the CPU of the command and of every
process below it, whichever ended first. Wall time is from just before the command starts to its
exit (what a user waits for). Leftovers get `LEFTOVER_GRACE_S` to end, then SIGKILL; their
number is reported. With `--tty` the command's output goes to a pseudo-terminal (120 × 40),
read and dropped here, as a user's terminal would show it.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import pty
import resource
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36
LEFTOVER_GRACE_S = 20.0
POLL_S = 0.05
"""How often the command's peak RSS (VmHWM) is read while it runs."""


def make_subreaper() -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def children() -> list[int]:
    """Pids whose parent is this process (leftovers reparented here)."""
    me, found = str(os.getpid()), []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if stat.rsplit(")", 1)[1].split()[1] == me:
                found.append(int(entry))
    return found


def high_water_kib(pid: int) -> int:
    """VmHWM of a process: its peak resident set so far, in KiB (0 once it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def reap_all(grace: float) -> int:
    """Waits for every process below this one; kills what is left after `grace` s."""
    deadline, killed = time.monotonic() + grace, 0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return killed
        if pid:
            continue
        if time.monotonic() > deadline:
            for pid in children():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
            deadline = float("inf")
        time.sleep(0.02)


def terminal() -> tuple[int, int, threading.Thread]:
    """A pseudo-terminal: (its side for the command, the reader's side, a thread draining it)."""
    reader, writer = pty.openpty()
    fcntl.ioctl(writer, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))

    def drain() -> None:
        with contextlib.suppress(OSError):  # EIO once the last writer closed
            while os.read(reader, 65536):
                pass

    thread = threading.Thread(target=drain, daemon=True)
    thread.start()
    return writer, reader, thread


def main(argv: list[str]) -> int:
    tty = argv[0] == "--tty"
    argv = argv[1:] if tty else argv
    out, command = Path(argv[0]), argv[argv.index("--") + 1 :]
    subreaper = make_subreaper()
    output = terminal() if tty else None
    env = {**os.environ, "TERM": os.environ.get("TERM", "xterm-256color")} if tty else None
    started_at = time.time()
    started = time.perf_counter()
    child = subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=output[0] if output else None,
        stderr=output[0] if output else None,
        env=env,
    )
    if output:
        os.close(output[0])
    peaks = [0]
    ended = threading.Event()

    def watch_peak() -> None:  # the command's own high-water mark, read as it runs
        while not ended.wait(POLL_S):
            peaks.append(max(peaks[-1], high_water_kib(child.pid)))

    watcher = threading.Thread(target=watch_peak, daemon=True)
    watcher.start()
    status = child.wait()
    wall = time.perf_counter() - started
    ended.set()
    watcher.join()
    peak = peaks[-1]
    if output:
        output[2].join(5)
        os.close(output[1])
    leftovers_killed = reap_all(LEFTOVER_GRACE_S)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    out.write_text(
        json.dumps(
            {
                "status": status,
                "started_at": started_at,
                "wall_s": wall,
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "max_rss_kib": usage.ru_maxrss,  # the largest single process below this one
                "command_peak_rss_kib": peak,  # the command's own process (VmHWM)
                "subreaper": subreaper,
                "leftovers_killed": leftovers_killed,
            }
        )
    )
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
