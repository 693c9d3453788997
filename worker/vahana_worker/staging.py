"""Moves a task's files: inputs into its sandbox before it runs, outputs out of it afterwards.

Inputs come from a local path, a file:// URL or an http(s):// URL and land at a sandbox-relative
destination. Outputs are sandbox-relative sources copied to a local path, a directory (trailing
slash or existing) or a file:// URL. Sandbox paths must stay inside the sandbox: absolute paths,
`..` parts and symlinks leading out are refused with a StagingError that says which file and why.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path, PurePosixPath

HTTP_TIMEOUT = 60.0
"""Seconds without progress before an HTTP download is abandoned."""


class StagingError(Exception):
    """A file could not be staged; the message names the file and the reason."""


def confine(sandbox: Path, relative: str, *, what: str) -> Path:
    """Returns `sandbox/relative` if it stays inside the sandbox, else raises StagingError.

    `what` names the file in the error ("input destination 'x'").
    """
    if not relative or not relative.strip():
        raise StagingError(f"{what}: empty path")
    pure = PurePosixPath(relative)
    if pure.is_absolute() or os.path.isabs(relative):
        raise StagingError(f"{what}: absolute paths are not allowed, use a sandbox-relative path")
    if ".." in pure.parts:
        raise StagingError(f"{what}: '..' is not allowed in sandbox paths")
    root = sandbox.resolve()
    resolved = (root / pure).resolve()
    if resolved != root and not resolved.is_relative_to(root):
        raise StagingError(f"{what}: leads outside the sandbox through a symlink")
    return root / pure


def _source_name(source: str) -> str:
    parsed = urllib.parse.urlparse(source)
    path = parsed.path if parsed.scheme else source
    return posixpath.basename(path.rstrip("/")) or "download"


def _local_path_of(location: str, *, what: str) -> Path:
    """A local filesystem path from a plain path or a file:// URL."""
    parsed = urllib.parse.urlparse(location)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise StagingError(f"{what}: file:// URLs must not name a remote host")
        return Path(urllib.request.url2pathname(parsed.path))
    if parsed.scheme and len(parsed.scheme) > 1:  # one letter would be a Windows drive
        raise StagingError(f"{what}: unsupported URL scheme {parsed.scheme!r}")
    return Path(location)


def _copy(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    if source.is_dir():
        shutil.copytree(source, destination, dirs_exist_ok=True)
    else:
        shutil.copyfile(source, destination)


def _download(url: str, destination: Path, *, what: str) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        with (
            urllib.request.urlopen(url, timeout=HTTP_TIMEOUT) as response,
            open(destination, "wb") as out,
        ):
            shutil.copyfileobj(response, out, 1 << 20)
    except urllib.error.HTTPError as exc:
        raise StagingError(f"{what}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise StagingError(f"{what}: download failed: {reason}") from exc


def stage_input(sandbox: Path, source: str, destination: str) -> Path:
    """Puts `source` at the sandbox-relative `destination` (default: the source's base name)."""
    what = f"input {source!r}"
    if not source:
        raise StagingError("input: empty source")
    if not destination or destination.endswith("/"):
        destination = destination + _source_name(source)
    target = confine(sandbox, destination, what=f"{what} destination {destination!r}")
    scheme = urllib.parse.urlparse(source).scheme
    if scheme in ("http", "https"):
        _download(source, target, what=what)
    else:
        path = _local_path_of(source, what=what)
        if not path.exists():
            raise StagingError(f"{what}: not found")
        try:
            _copy(path, target)
        except OSError as exc:
            raise StagingError(f"{what}: copy failed: {exc}") from exc
    # Re-check once the parents exist: a staged file must not have planted a symlink outside.
    confine(sandbox, destination, what=f"{what} destination {destination!r}")
    return target


def collect_output(sandbox: Path, source: str, destination: str) -> str:
    """Copies the sandbox-relative `source` to `destination`; returns where it went."""
    what = f"output {source!r}"
    path = confine(sandbox, source, what=what)
    if not path.exists():
        raise StagingError(f"{what}: not found in the sandbox")
    if not destination:
        raise StagingError(f"{what}: no destination given")
    if urllib.parse.urlparse(destination).scheme in ("http", "https"):
        raise StagingError(f"{what}: uploading to http(s) destinations is not supported")
    target = _local_path_of(destination, what=f"{what} destination {destination!r}")
    if destination.endswith("/") or target.is_dir():
        target = target / path.name
    try:
        _copy(path, target)
    except OSError as exc:
        raise StagingError(f"{what}: copy to {str(target)!r} failed: {exc}") from exc
    return str(target)
