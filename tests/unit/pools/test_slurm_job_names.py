"""A slurm pool recognises its own jobs only: no pool takes (or scancels) another's."""

from __future__ import annotations

from pathlib import Path

from vahana.core import models
from vahana.manifests import pools as pool_manifests
from vahana.pools import base, slurm


def pool(key: str, tmp_path: Path) -> slurm.SlurmPool:
    namespace, name = key.split("/")
    context = base.PoolContext(
        namespace=namespace,
        name=name,
        uid=key,
        key=key,
        spec=pool_manifests.with_defaults(
            {"type": "slurm", "maxWorkers": 2, "slurm": {"partition": "debug"}}
        ),
        capacity=models.Resources(1),
        server_address="127.0.0.1:1",
        heartbeat_interval_seconds=30,
        state_dir=tmp_path / name,
        worker_binary_url="http://x/w.pyz",
        worker_binary_sha256="0" * 64,
    )
    adapter = slurm.factory()(context, None)
    assert isinstance(adapter, slurm.SlurmPool)
    return adapter


def test_pools_with_overlapping_names_never_claim_each_others_jobs(tmp_path: Path) -> None:
    pools = [pool(key, tmp_path) for key in ("default/gpu", "default/gpu-big", "a/b-c", "a-b/c")]
    for owner in pools:
        job = f"worker_{owner._stem}-0123abcd"
        claimants = [p for p in pools if p._own_job.match(job)]
        assert claimants == [owner], job
