"""The pool of spares that task sandboxes and task cgroups share."""

from __future__ import annotations

from vahana_worker import spares


def test_spares_are_kept_up_to_the_limit_and_taken_back_last_first() -> None:
    pool: spares.Spares[str] = spares.Spares(2)
    assert pool.take() is None
    assert pool.keep("a") and not pool.full()
    assert pool.keep("b") and pool.full()
    assert not pool.keep("c")  # no room: the caller removes it
    assert pool.take() == "b"
    assert not pool.full()


def test_a_closed_pool_gives_up_its_spares_and_keeps_no_more() -> None:
    pool: spares.Spares[str] = spares.Spares(4)
    pool.keep("a")
    pool.keep("b")
    assert pool.close() == ["a", "b"]
    assert pool.full() and not pool.keep("c")
    assert pool.take() is None and pool.close() == []
