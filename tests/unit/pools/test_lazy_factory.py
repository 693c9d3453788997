"""A pool type's adapter module loads with the first pool of that type, and once."""

from __future__ import annotations

from typing import Any

from vahana.pools import base


def test_the_adapter_is_loaded_at_the_first_build_and_only_then() -> None:
    loads: list[str] = []
    adapter: Any = object()
    context: Any = object()

    def build(given: base.PoolContext, previous: base.WorkerPool | None) -> base.WorkerPool:
        assert given is context and previous is None
        return adapter  # type: ignore[no-any-return]

    def load() -> base.AdapterFactory:
        loads.append("loaded")
        return build

    factory = base.lazy_factory(load)
    assert loads == []
    assert factory(context, None) is adapter
    assert factory(context, None) is adapter
    assert loads == ["loaded"]
