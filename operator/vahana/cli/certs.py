"""`vahana certs`: a CA, a server certificate and client certificates for a test setup.

Everything is written into one directory (keys mode 0600, each file replaced atomically):

    ca.pem ca-key.pem              the CA (reused when the directory already has one)
    server.pem server-key.pem      the scheduler's certificate, with the given hosts as SANs
    client.pem client-key.pem      for the CLI (vahana submit/get … --tls-*)
    worker-N.pem worker-N-key.pem  one per worker
    bootstrap-token client-token   random secrets (kept if they exist)

Running it again re-issues the server and client certificates from the same CA: that is also
how to rotate them (the scheduler reloads its files without a restart). Not a production PKI:
no revocation lists, keys unencrypted on disk. See docs/security.md for the openssl steps.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import tempfile
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600 if private else 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "vahana test setup"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, key: PrivateKey, days: int
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
    )


def make_ca(days: int) -> tuple[x509.Certificate, PrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name("vahana test CA")
    certificate = (
        _builder(name, name, key, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def issue(
    ca: tuple[x509.Certificate, PrivateKey],
    common_name: str,
    *,
    hosts: Sequence[str] = (),
    server: bool,
    days: int,
) -> tuple[x509.Certificate, PrivateKey]:
    """A leaf certificate signed by `ca`: for a server (SANs = hosts) or a client."""
    ca_cert, ca_key = ca
    key = ec.generate_private_key(ec.SECP256R1())
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(_name(common_name), ca_cert.subject, key, days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    names: list[x509.GeneralName] = []
    for host in hosts or ([common_name] if not server else []):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _load_ca(out: Path) -> tuple[x509.Certificate, PrivateKey] | None:
    cert_path, key_path = out / "ca.pem", out / "ca-key.pem"
    if not (cert_path.exists() and key_path.exists()):
        return None
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path}: expected an EC key as written by `vahana certs`")
    return x509.load_pem_x509_certificate(cert_path.read_bytes()), key


def make_setup(out: Path, *, hosts: Sequence[str], workers: int, days: int = 365) -> list[Path]:
    """Writes the files listed in the module docstring; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(stem: str, pair: tuple[x509.Certificate, PrivateKey]) -> None:
        _write(out / f"{stem}-key.pem", _key_pem(pair[1]), private=True)
        _write(out / f"{stem}.pem", _cert_pem(pair[0]))
        written.extend([out / f"{stem}.pem", out / f"{stem}-key.pem"])

    ca = _load_ca(out)
    if ca is None:
        ca = make_ca(days)
        save("ca", ca)
    save("server", issue(ca, hosts[0] if hosts else "vahana", hosts=hosts, server=True, days=days))
    save("client", issue(ca, "vahana-client", server=False, days=days))
    for index in range(1, workers + 1):
        save(f"worker-{index}", issue(ca, f"worker-{index}", server=False, days=days))
    for name in ("bootstrap-token", "client-token"):
        path = out / name
        if not path.exists():
            _write(path, (secrets.token_urlsafe(32) + "\n").encode(), private=True)
            written.append(path)
    return written
