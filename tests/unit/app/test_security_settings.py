"""Validation of the tls and auth settings: all-or-nothing TLS, explicit plaintext off loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
from vahana.app import settings


def problems(**overrides: object) -> list[str]:
    return settings.load(overrides, environ={}).security_problems()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    made = {}
    for name in ("cert", "key", "ca", "token"):
        path = tmp_path / name
        path.write_text("x\n")
        made[name] = str(path)
    return made


def test_no_tls_on_loopback_is_fine() -> None:
    assert problems() == []


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", ""])
def test_plaintext_off_loopback_needs_insecure(host: str) -> None:
    [problem] = problems(**{"server.host": host})
    assert problem.startswith("tls: serving plaintext") and "tls.insecure=true" in problem
    assert problems(**{"server.host": host, "tls.insecure": True}) == []


def test_all_three_tls_files_serve_mutual_tls_on_any_address(files: dict[str, str]) -> None:
    given = {
        "server.host": "0.0.0.0",
        "tls.cert_file": files["cert"],
        "tls.key_file": files["key"],
        "tls.client_ca_file": files["ca"],
    }
    assert problems(**given) == []


def test_partial_tls_names_each_missing_file(files: dict[str, str]) -> None:
    found = problems(**{"tls.cert_file": files["cert"]})
    assert len(found) == 2
    assert found[0].startswith("tls.key_file: required with tls.cert_file")
    assert found[1].startswith("tls.client_ca_file: required with tls.cert_file")


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    found = problems(**{"auth.bootstrap_token_file": missing, "auth.client_token_file": missing})
    assert found == [
        f"auth.bootstrap_token_file: cannot read {missing}",
        f"auth.client_token_file: cannot read {missing}",
    ]


def test_token_lifetime_must_be_positive() -> None:
    assert problems(**{"auth.token_lifetime_seconds": 0}) == [
        "auth.token_lifetime_seconds: must be > 0"
    ]


def test_environment_names_follow_the_sections(files: dict[str, str]) -> None:
    loaded = settings.load(
        {},
        environ={
            "VAHANA_TLS_CERT_FILE": files["cert"],
            "VAHANA_TLS_INSECURE": "true",
            "VAHANA_AUTH_BOOTSTRAP_TOKEN_FILE": files["token"],
            "VAHANA_AUTH_TOKEN_LIFETIME_SECONDS": "60",
        },
    )
    assert loaded.tls.cert_file == files["cert"] and loaded.tls.insecure
    assert loaded.auth.bootstrap_token_file == files["token"]
    assert loaded.auth.token_lifetime_seconds == 60.0
