"""The pool adapter factories by WorkerPool type, for the schedulers that run WorkerPools.

An adapter's module loads with the first pool of its type (`pools.base.lazy_factory`): a
scheduler with only local pools never imports the ssh, SLURM or bare-metal code.
"""

from __future__ import annotations

from vahana.pools import base, local


def _slurm() -> base.AdapterFactory:
    from vahana.pools import slurm

    return slurm.factory()


def _baremetal() -> base.AdapterFactory:
    from vahana.pools import baremetal

    return baremetal.factory()


def by_type() -> dict[str, base.AdapterFactory]:
    """The factories of the pool types that need no cluster: local, slurm and baremetal."""
    return {
        "local": local.from_pool,
        "slurm": base.lazy_factory(_slurm),
        "baremetal": base.lazy_factory(_baremetal),
    }
