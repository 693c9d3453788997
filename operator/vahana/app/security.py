"""Wires the security settings: TLS credentials, the token guard, and what local workers need.

Settings are validated before this runs (settings.security_problems); here they become objects.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from vahana.app import settings as settings_module
from vahana.core import tokens
from vahana.rpc import auth, tls
from vahana.scheduling import scheduler as scheduler_module

log = logging.getLogger(__name__)


def certificates(settings: settings_module.Settings) -> tls.ReloadingCertificates | None:
    """The reloading server certificates for mutual TLS; None (and a warning) for plaintext."""
    if not settings.tls.enabled:
        # On loopback only this host's processes can connect: plaintext is the embedded
        # default there and not worth a warning on every `vahana run`.
        loopback = settings.server.host in ("127.0.0.1", "localhost", "::1")
        log.log(
            logging.INFO if loopback else logging.WARNING,
            "serving plaintext gRPC on %s: no TLS, workers and clients are not authenticated "
            "by certificate (set tls.cert_file, tls.key_file, tls.client_ca_file)",
            settings.server.host,
        )
        return None
    return tls.ReloadingCertificates(
        tls.CertificateFiles(
            cert_file=Path(settings.tls.cert_file),
            key_file=Path(settings.tls.key_file),
            client_ca_file=Path(settings.tls.client_ca_file),
        )
    )


def guard(
    settings: settings_module.Settings, sched: scheduler_module.Scheduler
) -> auth.Guard | None:
    """The guard of the gRPC services; None when neither a token nor certificate binding is
    configured.

    Worker tokens are revoked when the scheduler removes their worker.
    """
    auth_settings = settings.auth
    bind = settings.tls.enabled and settings.tls.bind_worker_certificates
    if not auth_settings.bootstrap_token_file and not auth_settings.client_token_file and not bind:
        return None
    store: tokens.TokenStore | None = None
    bootstrap: auth.FileSecret | None = None
    if auth_settings.bootstrap_token_file:
        bootstrap = auth.FileSecret(auth_settings.bootstrap_token_file)
        store = tokens.TokenStore(lifetime_seconds=auth_settings.token_lifetime_seconds)
        sched.add_removal_listener(store.revoke)
    client_secret = (
        auth.FileSecret(auth_settings.client_token_file)
        if auth_settings.client_token_file
        else None
    )
    return auth.Guard(
        tokens=store,
        bootstrap=bootstrap,
        client_secret=client_secret,
        lease_holder=sched.lease_holder,
        worker_pool=sched.worker_pool,
        bind_certificates=bind,
    )


def client_token_check(settings: settings_module.Settings) -> Callable[[str], bool] | None:
    """Whether a presented token is the client token (reread when its file changes); None
    when no client token is configured (the dashboard is then read-only)."""
    if not settings.auth.client_token_file:
        return None
    return auth.FileSecret(settings.auth.client_token_file).matches


def pool_secrets(settings: settings_module.Settings) -> Callable[[str], str]:
    """pool key → the bootstrap secret its remote workers register with; empty when workers
    need none. Read from the master file at each call, so a rotated master reaches new pilots."""
    if not settings.auth.bootstrap_token_file:
        return lambda _pool: ""
    master = auth.FileSecret(settings.auth.bootstrap_token_file)
    return lambda pool: tokens.pool_secret(master.value(), pool)


def local_worker_args(settings: settings_module.Settings) -> tuple[str, ...]:
    """Flags a local worker process needs to authenticate (the bootstrap secret's file)."""
    if settings.auth.bootstrap_token_file:
        path = Path(settings.auth.bootstrap_token_file).resolve()
        return (f"--bootstrap-token-file={path}",)
    return ()
