"""A pool whose adapter keeps failing the same way (no SLURM controller, a host down) is
retried every round; its error is logged when it changes, not every round."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from vahana.app import embedded_pools
from vahana.app import settings as settings_module


class FailingManager:
    """The part of a PoolManager that reconcile rounds use, failing with a given error."""

    def __init__(self) -> None:
        self.error = "squeue: fatal: Could not establish a configuration source"

    def keys(self) -> list[str]:
        return ["default/slurm"]

    async def reconcile(self, key: str) -> dict[str, Any]:
        if self.error:
            raise RuntimeError(self.error)
        return {"desired": 0, "lastError": ""}


def test_a_repeated_reconcile_failure_is_logged_once_per_change(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pools = embedded_pools.EmbeddedPools(
        None,  # type: ignore[arg-type]  # reconcile rounds do not reach the scheduler
        settings_module.load({}, environ={}),
        [],
        server_address="127.0.0.1:1",
    )
    manager = FailingManager()
    pools.manager = manager  # type: ignore[assignment]

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    with caplog.at_level(logging.WARNING, logger="vahana.app.embedded_pools"):
        for _ in range(3):
            asyncio.run(pools.reconcile_all())
        assert warnings() == [
            "pool=default/slurm reconcile failed: "
            "squeue: fatal: Could not establish a configuration source"
        ]
        manager.error = "squeue: error: Unable to contact slurm controller"
        asyncio.run(pools.reconcile_all())
        asyncio.run(pools.reconcile_all())
        assert len(warnings()) == 2 and warnings()[1].endswith("Unable to contact slurm controller")
        assert pools.statuses["default/slurm"]["lastError"] == manager.error
