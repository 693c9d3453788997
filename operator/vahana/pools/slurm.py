"""The SLURM pool: one batch job per pilot worker, submitted with sbatch locally or over ssh.

A pilot runs many tasks in one allocation. Jobs are named `worker_<worker id>` and found again
with `squeue --me --states=all` (so a restarted scheduler adopts its pool's jobs); `scancel`
stops them. A job that ends (walltime, node failure, scancel) takes its worker with it; the
scheduler notices the missing heartbeats and requeues the worker's tasks. The adapter only
translates: it never decides how many pilots there should be.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import secrets
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from vahana.pools import base, scripts, ssh

log = logging.getLogger(__name__)

COMMAND_TIMEOUT = 60.0
"""Seconds an sbatch / squeue / scancel call may take (over ssh included)."""
STARTING_STATES = {"PENDING", "CONFIGURING", "REQUEUED", "RESIZING", "SUSPENDED"}
RUNNING_STATES = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"}
_JOB_ID = re.compile(r"^\s*([0-9]+)(?:;\S+)?\s*$")


@dataclasses.dataclass(frozen=True)
class SlurmConfig:
    pool: str
    launch: scripts.Launch
    """The template of every pilot's launch (its worker_id is replaced per pilot)."""
    partition: str = ""
    account: str = ""
    qos: str = ""
    extra_args: tuple[str, ...] = ()
    login: ssh.SshTarget | None = None
    """Run sbatch/squeue/scancel there over ssh; None: on this machine."""
    log_dir: Path | None = None
    """Job output files (local submission only)."""


class SlurmPool:
    def __init__(self, config: SlurmConfig) -> None:
        self.name = config.pool
        self.config = config
        self._jobs: dict[str, str] = {}
        """worker id → SLURM job id of the jobs this adapter submitted or adopted."""
        self._cancelled: set[str] = set()
        self._forgotten: set[str] = set()
        self._last_error = ""
        self._counts = (0, 0)
        # The stem names the pool uniquely (a readable part plus a hash of the whole key), and
        # a job is this pool's only if its name is the stem plus exactly one worker suffix:
        # pools `a/gpu` and `a/gpu-big` (or `a/b-c` and `a-b/c`) never take each other's jobs.
        readable = re.sub(r"[^A-Za-z0-9.-]+", "-", config.pool).strip("-")[:40] or "slurm"
        digest = hashlib.sha256(config.pool.encode()).hexdigest()[:6]
        self._stem = f"{readable}-{digest}"
        self._own_job = re.compile(rf"^worker_{re.escape(self._stem)}-[0-9a-f]{{8}}$")

    # -- commands ------------------------------------------------------------------------
    def _run(self, argv: Sequence[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
        login = self.config.login
        command = login.command(argv) if login else list(argv)
        try:
            return subprocess.run(
                command,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise base.PoolError(f"{argv[0]}: {error}") from error

    # -- WorkerPool ----------------------------------------------------------------------
    def start_workers(self, count: int) -> list[str]:
        started = []
        for _ in range(count):
            worker_id = f"{self._stem}-{secrets.token_hex(4)}"
            launch = dataclasses.replace(self.config.launch, worker_id=worker_id)
            script = scripts.sbatch_script(
                launch,
                partition=self.config.partition,
                account=self.config.account,
                qos=self.config.qos,
            )
            argv = ["sbatch", "--parsable", f"--output={self._output(worker_id)}"]
            if self.config.login is not None:
                # SLURM opens the job's output file before the script runs (and fails the job
                # with JobLaunchFailure if its directory is missing): make the working dir,
                # where the output goes, on the login node's (shared) file system first.
                working_dir = self.config.launch.working_dir
                argv = ["sh", "-c", 'mkdir -p -- "$0" && exec "$@"', working_dir, *argv]
            done = self._run([*argv, *self.config.extra_args], stdin=script)
            match = _JOB_ID.match(done.stdout) if done.returncode == 0 else None
            if match is None:
                self._last_error = (done.stderr or done.stdout).strip() or (
                    f"sbatch exited with {done.returncode}"
                )
                raise base.PoolError(self._last_error)
            self._jobs[worker_id] = match[1]
            log.info("submitted worker_id=%s job=%s pool=%s", worker_id, match[1], self.name)
            started.append(worker_id)
        return started

    def _output(self, worker_id: str) -> str:
        if self.config.login is None and self.config.log_dir is not None:
            self.config.log_dir.mkdir(parents=True, exist_ok=True)
            return str(self.config.log_dir / f"worker_{worker_id}-%j.out")
        return f"{self.config.launch.working_dir.rstrip('/')}/worker_{worker_id}-%j.out"

    def stop_workers(self, worker_ids: Sequence[str]) -> None:
        """scancel (SLURM sends SIGTERM, the worker drains); ended jobs are forgotten."""
        ids = [self._jobs[w] for w in worker_ids if w in self._jobs]
        if ids:
            done = self._run(["scancel", *ids])
            if done.returncode != 0 and "Invalid job id" not in done.stderr:
                self._last_error = done.stderr.strip()
        for worker_id in worker_ids:
            job = self._jobs.pop(worker_id, None)
            if job is not None:
                self._cancelled.add(job)
                self._forgotten.add(job)

    def list_workers(self) -> list[base.PoolWorker]:
        done = self._run(["squeue", "--me", "--states=all", "-h", "-o", "%i|%j|%T|%r"])
        if done.returncode != 0:
            self._last_error = done.stderr.strip() or f"squeue exited with {done.returncode}"
            raise base.PoolError(self._last_error)
        seen: dict[str, base.PoolWorker] = {}
        for line in done.stdout.splitlines():
            parts = line.split("|")
            if len(parts) != 4 or not self._own_job.match(parts[1]):
                continue
            job, name, state, reason = parts
            if job in self._forgotten:
                continue
            worker_id = name.removeprefix("worker_")
            self._jobs.setdefault(worker_id, job)  # adopts the jobs of an earlier run
            seen[worker_id] = self._pool_worker(worker_id, job, state, reason)
        for worker_id, job in self._jobs.items():
            if worker_id not in seen:  # purged from squeue: it ended
                seen[worker_id] = base.PoolWorker(
                    worker_id, base.PoolWorkerState.EXITED, f"job {job} gone"
                )
        workers = list(seen.values())
        self._counts = (
            sum(1 for w in workers if w.state == base.PoolWorkerState.STARTING),
            sum(1 for w in workers if w.state == base.PoolWorkerState.RUNNING),
        )
        return workers

    def _pool_worker(self, worker_id: str, job: str, state: str, reason: str) -> base.PoolWorker:
        detail = f"job {job} {state}" + (f" ({reason})" if reason and reason != "None" else "")
        if state in STARTING_STATES:
            return base.PoolWorker(worker_id, base.PoolWorkerState.STARTING, detail)
        if state in RUNNING_STATES:
            return base.PoolWorker(worker_id, base.PoolWorkerState.RUNNING, detail)
        if state == "COMPLETED" or job in self._cancelled:
            return base.PoolWorker(worker_id, base.PoolWorkerState.EXITED, detail, 0)
        return base.PoolWorker(worker_id, base.PoolWorkerState.FAILED, detail)

    def status(self) -> base.PoolStatus:
        workers = self.list_workers()
        return base.PoolStatus(
            self.name,
            starting=self._counts[0],
            running=self._counts[1],
            failed=sum(1 for w in workers if w.state == base.PoolWorkerState.FAILED),
            last_error=self._last_error,
        )

    @property
    def allocations(self) -> tuple[int, int]:
        """(pending, running) jobs as of the last listing."""
        return self._counts

    def close(self, timeout: float = 30.0) -> None:
        """scancel every job of the pool, then wait (up to `timeout`) until squeue has none."""
        try:
            self.list_workers()  # adopts jobs submitted before a restart
        except base.PoolError as error:
            log.warning("pool=%s listing jobs on close: %s", self.name, error)
        self.stop_workers(list(self._jobs))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if not [w for w in self._listing_all() if w not in ("COMPLETED", "CANCELLED")]:
                    return
            except base.PoolError:
                return
            time.sleep(0.2)

    def _listing_all(self) -> list[str]:
        done = self._run(["squeue", "--me", "-h", "-o", "%j|%T"])
        if done.returncode != 0:
            raise base.PoolError(done.stderr.strip())
        rows = [line.split("|") for line in done.stdout.splitlines()]
        return [row[1] for row in rows if len(row) == 2 and self._own_job.match(row[0])]


def factory() -> base.AdapterFactory:
    """Adapter factory for WorkerPools of type slurm."""
    return base.reconfiguring_factory(SlurmPool, pool_config)


def pool_config(context: base.PoolContext) -> SlurmConfig:
    """The adapter's view of a WorkerPool; ValueError says what is wrong with it."""
    section = context.spec.get("slurm") or {}
    login = None
    if section.get("loginHost"):
        login = ssh.SshTarget(
            host=ssh.check_host(section["loginHost"]),
            port=int(section.get("sshPort", 22)),
            user=section.get("sshUser", ""),
            key_file=section.get("sshKeyFile", ""),
            known_hosts_file=section.get("knownHostsFile", ""),
        )
        if section.get("sshKeySecret") and not section.get("sshKeyFile"):
            raise ValueError(
                "spec.slurm.sshKeySecret: Secrets are read by the operator in a cluster; "
                "without one, give spec.slurm.sshKeyFile"
            )
    launch = scripts.launch_template(context, section.get("workingDir") or "/tmp/vahana-workers")
    config = SlurmConfig(
        pool=context.key,
        launch=launch,
        partition=section.get("partition", ""),
        account=section.get("account", ""),
        qos=section.get("qos", ""),
        extra_args=tuple(section.get("extraArgs") or ()),
        login=login,
        log_dir=context.state_dir / "logs",
    )
    scripts.sbatch_script(  # refuses values that cannot go on an #SBATCH line
        dataclasses.replace(launch, worker_id="check"),
        partition=config.partition,
        account=config.account,
        qos=config.qos,
    )
    return config
