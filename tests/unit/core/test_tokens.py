"""The token store: issue, identify, expire, revoke; only hashes are kept."""

from __future__ import annotations

import itertools

import pytest
from vahana.core import clock, tokens


def make_store(lifetime: float = 100.0) -> tuple[tokens.TokenStore, clock.FakeClock]:
    fake = clock.FakeClock()
    counter = itertools.count()
    store = tokens.TokenStore(
        lifetime_seconds=lifetime, clock=fake, new_secret=lambda: f"secret-{next(counter)}"
    )
    return store, fake


def test_a_token_identifies_the_worker_it_was_issued_to() -> None:
    store, fake = make_store()
    issued = store.issue("w1")
    assert issued.expires_at == fake.now + 100
    assert store.identify(issued.token) == "w1"
    assert store.identify("secret-unknown") is None
    assert store.identify("") is None


def test_only_hashes_are_kept_and_the_token_is_not_in_its_repr() -> None:
    store, _ = make_store()
    issued = store.issue("w1")
    assert issued.token not in repr(issued)
    assert issued.token not in repr(vars(store))
    assert tokens.digest(issued.token) in repr(vars(store))


def test_a_token_expires_after_its_lifetime() -> None:
    store, fake = make_store(lifetime=10)
    issued = store.issue("w1")
    fake.now += 9.9
    assert store.identify(issued.token) == "w1"
    fake.now += 0.1
    assert store.identify(issued.token) is None
    assert len(store) == 0


def test_revoking_a_worker_forgets_all_its_tokens_and_only_its() -> None:
    store, _ = make_store()
    first, second, other = store.issue("w1"), store.issue("w1"), store.issue("w2")
    assert store.revoke("w1") == 2
    assert store.identify(first.token) is None and store.identify(second.token) is None
    assert store.identify(other.token) == "w2"


def test_a_reissued_token_leaves_the_old_one_valid_for_a_short_overlap() -> None:
    store, fake = make_store(lifetime=3600)
    old = store.issue("w1")
    new = store.issue("w1")
    assert store.identify(old.token) == "w1"
    fake.now += tokens.REISSUE_OVERLAP_SECONDS
    assert store.identify(old.token) is None
    assert store.identify(new.token) == "w1"


def test_real_tokens_are_long_and_random() -> None:
    store = tokens.TokenStore(lifetime_seconds=60)
    a, b = store.issue("w"), store.issue("w")
    assert a.token != b.token and len(a.token) >= 40


def test_lifetime_must_be_positive() -> None:
    with pytest.raises(ValueError, match="lifetime_seconds"):
        tokens.TokenStore(lifetime_seconds=0)
