"""Which store errors are worth another try: the server's refusals are not, the rest are."""

from __future__ import annotations

import pytest
from vahana_worker import storage


@pytest.mark.parametrize(
    "text",
    [
        "Error performing GET http://127.0.0.1:40475/b/k after 2 retries: tcp connect error",
        "Error performing GET http://store:9000/b/k: connection reset by peer",
        "Server returned non-2xx status code: 503 Service Unavailable",
    ],
)
def test_an_unreachable_store_is_transient_whatever_its_port(text: str) -> None:
    assert storage._looks_unreachable(text)


@pytest.mark.parametrize(
    "text",
    [
        "Server returned non-2xx status code: 403 Forbidden",
        "Client error with status 404 Not Found: NoSuchKey",
        "AccessDenied: the key may not read this bucket",
    ],
)
def test_a_refusal_by_the_server_is_not(text: str) -> None:
    assert not storage._looks_unreachable(text)
