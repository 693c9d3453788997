"""Moves one file between the worker's disk and storage named by a URL: `s3://bucket/key` on
any S3-compatible endpoint (obstore) and `sftp://[user@]host[:port]/path` (asyncssh).

Why these clients (docs/data.md has the measured comparison): obstore is one compiled abi3
wheel per platform (manylinux2014 and up, macOS, Windows), imports in milliseconds and streams
with bounded buffers; boto3 is 24 MiB of pure Python that adds 0.3-0.4 s to every worker
start. asyncssh moved files faster than paramiko here and needs only `cryptography`
(paramiko adds bcrypt and PyNaCl). Both are imported on first use, so workers that never see a
storage URL pay nothing.

Every transfer streams through a fixed-size buffer, lands under a temporary name and is renamed
once complete, and is verified: the size always, the MD5 where S3 gives one (a single-part
ETag). A transient failure (the store unreachable, a connection dropped) is retried with
exponential backoff; what remains is a `TransferError` whose `infrastructure` says whether the
store could not be reached (not the task's fault) or the object is missing or refused.

Credentials come from the worker's settings (its environment, set by its pool), never from a
task: a task names only the URL.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import hashlib
import os
import posixpath
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from obstore.store import ClientConfig, RetryConfig

SCHEMES = ("s3", "sftp")
CHUNK = 8 << 20
"""Bytes per S3 multipart part and per streamed read; with UPLOAD_CONCURRENCY it bounds the
memory one transfer holds."""
UPLOAD_CONCURRENCY = 2
"""S3 parts in flight at once for one upload."""

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class StorageConfig:
    """Where the worker's storage is and how it authenticates; from the worker's settings."""

    s3_endpoint: str = ""
    """http(s)://host:port of an S3-compatible service; empty: AWS's for the region."""
    s3_region: str = "us-east-1"
    s3_access_key_id: str = dataclasses.field(default="", repr=False)
    s3_secret_access_key: str = dataclasses.field(default="", repr=False)
    sftp_user: str = ""
    """Login for sftp:// URLs that name none; empty: the worker's user."""
    sftp_key: str = dataclasses.field(default="", repr=False)
    """PEM private key for sftp://; empty: sftp_key_file, else ~/.ssh's keys."""
    sftp_key_file: str = ""
    sftp_known_hosts: str = ""
    """known_hosts lines for sftp:// hosts; empty: sftp_known_hosts_file, else ~/.ssh's."""
    sftp_known_hosts_file: str = ""
    attempts: int = 3
    """Tries per transfer on transient failures (the store unreachable, a dropped connection)."""
    backoff: float = 0.5
    """Seconds before the second try; doubled before each next one."""
    timeout: float = 3600.0
    """Seconds one transfer may take."""
    connect_timeout: float = 10.0
    """Seconds to wait for a connection to the store."""


class TransferError(Exception):
    """A transfer failed; the message says why (the caller adds the URL)."""

    def __init__(self, message: str, *, infrastructure: bool, transient: bool = False) -> None:
        super().__init__(message)
        self.infrastructure = infrastructure
        """The store could not be reached: not the task's fault."""
        self.transient = transient
        """Worth trying again."""


@dataclasses.dataclass(frozen=True)
class Location:
    scheme: str
    host: str
    """The bucket for s3://, the host for sftp://."""
    path: str
    """The object key for s3://; the remote path for sftp:// (absolute, or relative to the
    login's home after `/~/`)."""
    port: int = 0
    user: str = ""


def is_storage_url(text: str) -> bool:
    return urllib.parse.urlparse(text).scheme in SCHEMES


def parse(url: str) -> Location:
    """A storage URL as a Location; ValueError names what is wrong with it."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in SCHEMES:
        raise ValueError(f"unsupported scheme {parsed.scheme!r} (expected s3 or sftp)")
    if parsed.query or parsed.fragment:
        raise ValueError("storage URLs take no ?query or #fragment")
    path = urllib.parse.unquote(parsed.path)
    if ".." in path.split("/"):
        raise ValueError("'..' is not allowed in storage paths")
    if parsed.scheme == "s3":
        if not parsed.hostname or parsed.username or parsed.port:
            raise ValueError("expected s3://bucket/key (the endpoint is the worker's setting)")
        key = path.lstrip("/")
        return Location("s3", parsed.netloc, key)
    if not parsed.hostname:
        raise ValueError("expected sftp://[user@]host[:port]/path")
    if path.startswith("/~/"):
        path = path[3:]  # relative to the login's home directory
    elif not path.startswith("/") or path == "/":
        raise ValueError("expected sftp://[user@]host[:port]/path with a path")
    return Location(
        "sftp", parsed.hostname, path, port=parsed.port or 0, user=parsed.username or ""
    )


def _retrying(action: Callable[[], T], config: StorageConfig, sleep: Callable[[float], None]) -> T:
    delay = config.backoff
    for attempt in range(1, max(1, config.attempts) + 1):
        try:
            return action()
        except TransferError as error:
            if not error.transient or attempt >= config.attempts:
                raise
        sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")


def download(
    url: str,
    destination: Path,
    config: StorageConfig,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Streams the object at `url` into `destination` (replaced once complete, verified);
    returns its size. TransferError when it cannot."""
    location = parse(url)
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.part")
    fetch = _s3_download if location.scheme == "s3" else _sftp_download
    try:
        size = _retrying(lambda: fetch(location, partial, config), config, sleep)
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)
    return size


def upload(
    source: Path, url: str, config: StorageConfig, *, sleep: Callable[[float], None] = time.sleep
) -> int:
    """Streams the local file `source` to `url`, verified; returns its size."""
    location = parse(url)
    if not location.path or location.path.endswith("/"):
        raise TransferError(
            "no object name: name a file, or give a directory ending in '/'", infrastructure=False
        )
    send = _s3_upload if location.scheme == "s3" else _sftp_upload
    return _retrying(lambda: send(source, location, config), config, sleep)


# -- S3 ----------------------------------------------------------------------------------


def _s3_store(bucket: str, config: StorageConfig) -> Any:
    from obstore.store import S3Store

    options: ClientConfig = {
        "connect_timeout": f"{config.connect_timeout:g}s",
        "timeout": f"{config.timeout:g}s",
    }
    kwargs: dict[str, Any] = {"region": config.s3_region or "us-east-1"}
    if config.s3_endpoint:
        kwargs["endpoint"] = config.s3_endpoint
        kwargs["virtual_hosted_style_request"] = False
        options["allow_http"] = config.s3_endpoint.startswith("http://")
    if config.s3_access_key_id:
        kwargs["access_key_id"] = config.s3_access_key_id
        kwargs["secret_access_key"] = config.s3_secret_access_key
    # A few quick retries per request inside obstore (a multipart part, a 503); the
    # transfer as a whole is retried by _retrying.
    retry: RetryConfig = {
        "max_retries": 2,
        "retry_timeout": datetime.timedelta(seconds=30),
        "backoff": {"init_backoff": datetime.timedelta(milliseconds=100), "base": 2},
    }
    return S3Store(bucket, client_options=options, retry_config=retry, **kwargs)


def _s3_error(error: Exception, *, local: str) -> TransferError:
    """obstore's error as a TransferError; `local` names the local side, blamed for an OSError
    that is not obstore's (obstore's NotFoundError is an OSError too)."""
    from obstore import exceptions

    text = _first_line(error)
    # obstore raises the built-in FileNotFoundError for a missing object or bucket.
    if isinstance(error, (exceptions.NotFoundError, FileNotFoundError)):
        return TransferError("not found", infrastructure=False)
    if isinstance(error, (exceptions.PermissionDeniedError, exceptions.UnauthenticatedError)):
        return TransferError(f"access denied: {text}", infrastructure=False)
    if isinstance(error, (exceptions.InvalidPathError, exceptions.UnknownConfigurationKeyError)):
        return TransferError(text, infrastructure=False)
    if isinstance(error, exceptions.GenericError) and _looks_unreachable(str(error)):
        return TransferError(
            f"the store is unreachable: {text}", infrastructure=True, transient=True
        )
    if isinstance(error, exceptions.BaseError):
        return TransferError(text, infrastructure=False)
    if isinstance(error, OSError):  # the local side: a full disk, an unreadable file
        return TransferError(f"{local}: {error}", infrastructure=True)
    return TransferError(f"the store is unreachable: {text}", infrastructure=True, transient=True)


def _looks_unreachable(text: str) -> bool:
    # Whole words: the text holds the endpoint's URL, and a port such as 40475 is no 404.
    # Else: connection refused, reset, timed out, DNS, 5xx after obstore's own retries.
    return _REFUSED_BY_SERVER.search(text) is None


_REFUSED_BY_SERVER = re.compile(
    r"\b(403|404|forbidden|accessdenied|nosuchbucket|nosuchkey)\b", re.IGNORECASE
)


def _first_line(error: BaseException) -> str:
    """The gist of a client's error: its first line, without obstore's debug dump or the
    server's XML body."""
    text = str(error).strip() or type(error).__name__
    text = text.split("Debug source:")[0].split("<?xml")[0].strip().rstrip(":").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (" ".join(lines[:2]) or type(error).__name__)[:300]


def _plain_md5(etag: str | None) -> str | None:
    """The MD5 an ETag states: single-part uploads only (multipart ETags end in -N)."""
    value = (etag or "").strip('"').lower()
    return value if len(value) == 32 and all(c in "0123456789abcdef" for c in value) else None


def _s3_download(location: Location, partial: Path, config: StorageConfig) -> int:
    import obstore

    store = _s3_store(location.host, config)
    digest = hashlib.md5(usedforsecurity=False)
    written = 0
    try:
        result = obstore.get(store, location.path)
        expected = int(result.meta["size"])
        with open(partial, "wb") as out:
            for chunk in result.stream(min_chunk_size=1 << 20):
                view = memoryview(chunk)
                out.write(view)
                digest.update(view)
                written += len(view)
    except Exception as error:
        raise _s3_error(error, local=f"writing {partial.name}") from error
    if written != expected:
        raise TransferError(
            f"got {written} bytes of {expected}", infrastructure=True, transient=True
        )
    md5 = _plain_md5(result.meta.get("e_tag"))
    if md5 is not None and md5 != digest.hexdigest():
        raise TransferError(
            f"checksum mismatch: MD5 {digest.hexdigest()} but the store says {md5}",
            infrastructure=True,
            transient=True,
        )
    return written


def _chunks(path: Path, digest: Any, counter: list[int]) -> Iterator[bytes]:
    with open(path, "rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            counter[0] += len(chunk)
            yield chunk


def _s3_upload(source: Path, location: Location, config: StorageConfig) -> int:
    import obstore

    store = _s3_store(location.host, config)
    digest = hashlib.md5(usedforsecurity=False)
    sent = [0]
    try:
        result = obstore.put(
            store,
            location.path,
            _chunks(source, digest, sent),
            chunk_size=CHUNK,
            max_concurrency=UPLOAD_CONCURRENCY,
        )
        stored = obstore.head(store, location.path)
    except Exception as error:
        raise _s3_error(error, local=f"reading {source.name}") from error
    if int(stored["size"]) != sent[0]:
        raise TransferError(
            f"the store holds {stored['size']} bytes of {sent[0]} sent",
            infrastructure=True,
            transient=True,
        )
    md5 = _plain_md5(result.get("e_tag"))
    if md5 is not None and md5 != digest.hexdigest():
        raise TransferError(
            f"checksum mismatch: sent MD5 {digest.hexdigest()}, the store says {md5}",
            infrastructure=True,
            transient=True,
        )
    return sent[0]


# -- SFTP --------------------------------------------------------------------------------


def _sftp_connect_options(location: Location, config: StorageConfig) -> dict[str, Any]:
    import asyncssh

    options: dict[str, Any] = {
        "port": location.port or 22,
        "connect_timeout": config.connect_timeout,
    }
    user = location.user or config.sftp_user
    if user:
        options["username"] = user
    if config.sftp_key:
        options["client_keys"] = [asyncssh.import_private_key(config.sftp_key)]
    elif config.sftp_key_file:
        options["client_keys"] = [config.sftp_key_file]
    if config.sftp_known_hosts:
        options["known_hosts"] = asyncssh.import_known_hosts(config.sftp_known_hosts)
    elif config.sftp_known_hosts_file:
        options["known_hosts"] = config.sftp_known_hosts_file
    options["agent_path"] = None  # only the configured key: no agent of the worker's user
    return options


def _sftp_error(error: BaseException) -> TransferError:
    import asyncssh

    text = _first_line(error)
    if isinstance(error, asyncssh.SFTPNoSuchFile):
        return TransferError("not found", infrastructure=False)
    if isinstance(error, asyncssh.SFTPPermissionDenied):
        return TransferError(f"access denied: {text}", infrastructure=False)
    if isinstance(error, asyncssh.PermissionDenied):
        return TransferError(f"login refused: {text}", infrastructure=False)
    if isinstance(error, asyncssh.HostKeyNotVerifiable):
        return TransferError(f"host key not verifiable: {text}", infrastructure=False)
    if isinstance(error, asyncssh.SFTPError):
        return TransferError(text, infrastructure=False)
    if isinstance(error, (OSError, asyncssh.Error, asyncio.TimeoutError, EOFError)):
        return TransferError(
            f"the store is unreachable: {text}", infrastructure=True, transient=True
        )
    return TransferError(text, infrastructure=True, transient=True)


def _run_sftp(location: Location, config: StorageConfig, work: Callable[[Any], Any]) -> Any:
    import asyncssh

    async def session() -> Any:
        options = _sftp_connect_options(location, config)
        async with (
            asyncssh.connect(location.host, **options) as connection,
            connection.start_sftp_client() as sftp,
        ):
            return await asyncio.wait_for(work(sftp), config.timeout)

    try:
        return asyncio.run(session())
    except TransferError:
        raise
    except Exception as error:
        raise _sftp_error(error) from error


def _sftp_download(location: Location, partial: Path, config: StorageConfig) -> int:
    async def fetch(sftp: Any) -> int:
        attributes = await sftp.stat(location.path)
        if attributes.type == 2:  # FILEXFER_TYPE_DIRECTORY
            raise TransferError("is a directory; name a file", infrastructure=False)
        await sftp.get(location.path, str(partial))
        return int(attributes.size or 0)

    expected = _run_sftp(location, config, fetch)
    written = partial.stat().st_size
    if written != expected:
        raise TransferError(
            f"got {written} bytes of {expected}", infrastructure=True, transient=True
        )
    return int(written)


def _sftp_upload(source: Path, location: Location, config: StorageConfig) -> int:
    import asyncssh

    size = source.stat().st_size
    parent, name = posixpath.split(location.path)
    partial = posixpath.join(parent, f".{name}.part")

    async def send(sftp: Any) -> int:
        if parent:
            await sftp.makedirs(parent, exist_ok=True)
        await sftp.put(str(source), partial)
        stored = (await sftp.stat(partial)).size
        if stored != size:
            await sftp.remove(partial)
            raise TransferError(
                f"the store holds {stored} bytes of {size} sent",
                infrastructure=True,
                transient=True,
            )
        try:
            await sftp.posix_rename(partial, location.path)  # replaces atomically
        except asyncssh.SFTPOpUnsupported:
            if await sftp.exists(location.path):
                await sftp.remove(location.path)
            await sftp.rename(partial, location.path)
        return size

    return int(_run_sftp(location, config, send))
