"""Every WorkerPool example in deploy/examples/ passes the WorkerPool schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from vahana.manifests import pools

EXAMPLES = Path(__file__).resolve().parents[3] / "deploy" / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLES.rglob("workerpool-*.yaml")), ids=lambda p: p.name)
def test_pool_example_is_valid(path: Path) -> None:
    [pool] = pools.parse_pool_documents(path.read_text(), source=str(path))
    assert pool.spec["type"] in path.stem
