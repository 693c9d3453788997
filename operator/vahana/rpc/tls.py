"""Mutual TLS for the gRPC port: server credentials whose certificates reload from their files.

gRPC asks the fetcher for a new certificate configuration at every handshake; it returns one
only when a file's modification time or size changed and the new files form a usable pair (the
key matches the certificate), so a rotation takes effect for new connections without a restart,
and a half-written rotation keeps the old certificate until it is complete.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from pathlib import Path

import grpc

log = logging.getLogger(__name__)


class CertificateError(ValueError):
    """The certificate files cannot be read or do not form a usable configuration."""


@dataclasses.dataclass(frozen=True)
class CertificateFiles:
    """Where the server's certificate chain, its key and the CA of client certificates are."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path

    @property
    def paths(self) -> tuple[Path, Path, Path]:
        return (self.cert_file, self.key_file, self.client_ca_file)


def _stamp(files: CertificateFiles) -> tuple[tuple[int, int], ...]:
    stats = [os.stat(path) for path in files.paths]
    return tuple((stat.st_mtime_ns, stat.st_size) for stat in stats)


def _read(files: CertificateFiles) -> tuple[bytes, bytes, bytes]:
    """The three files' contents, checked: PEM that parses, and a key that fits the cert."""
    # Imported here: cryptography costs ~0.1 s of start-up that runs without TLS do not need.
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        chain, key, client_ca = (path.read_bytes() for path in files.paths)
    except OSError as error:
        raise CertificateError(f"cannot read {error.filename}: {error.strerror}") from error
    try:
        certificate = x509.load_pem_x509_certificate(chain)
    except ValueError as error:
        raise CertificateError(f"{files.cert_file}: not a PEM certificate ({error})") from error
    try:
        private_key = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as error:
        raise CertificateError(f"{files.key_file}: not an unencrypted PEM key ({error})") from error
    try:
        x509.load_pem_x509_certificates(client_ca)
    except ValueError as error:
        raise CertificateError(f"{files.client_ca_file}: not PEM certificates ({error})") from error
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    if certificate.public_key().public_bytes(
        encoding, public
    ) != private_key.public_key().public_bytes(encoding, public):
        raise CertificateError(f"{files.key_file} is not the key of {files.cert_file}")
    return chain, key, client_ca


def _configuration(
    chain: bytes, key: bytes, client_ca: bytes
) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=client_ca)


class ReloadingCertificates:
    """Serves the current certificate configuration; reloads it when the files change."""

    def __init__(self, files: CertificateFiles) -> None:
        self.files = files
        self._lock = threading.Lock()
        self._stamp = _stamp(files)
        self._refused: tuple[tuple[int, int], ...] | None = None
        self._initial = _configuration(*_read(files))
        self.reloads = 0
        """How many times a changed set of files was taken into use."""

    def credentials(self) -> grpc.ServerCredentials:
        """Server credentials that require a client certificate signed by the client CA."""
        return grpc.dynamic_ssl_server_credentials(
            self._initial, self.fetch, require_client_authentication=True
        )

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        """gRPC's per-handshake question: a new configuration, or None to keep the current one."""
        with self._lock:
            try:
                stamp = _stamp(self.files)
            except OSError as error:
                log.warning("certificate files unreadable, keeping the current ones: %s", error)
                return None
            if stamp in (self._stamp, self._refused):
                return None
            try:
                configuration = _configuration(*_read(self.files))
            except CertificateError as error:
                self._refused = stamp  # warn once per change, not at every handshake
                log.warning(
                    "certificate files changed but unusable, keeping the current: %s", error
                )
                return None
            self._stamp = stamp
            self.reloads += 1
            log.info("reloaded TLS certificates from %s", self.files.cert_file)
            return configuration
