"""Moves a task's files: inputs into its sandbox before it runs, outputs out of it afterwards.

Inputs come from a local path, a file:// URL, an http(s):// URL or storage (`s3://bucket/key`,
`sftp://host/path`, through `storage`) and land at a sandbox-relative destination. Outputs are
sandbox-relative sources — a file, a directory or a glob (`*.csv`) — sent to storage or copied
to a path, a directory (trailing slash or existing) or a file:// URL inside the worker's output
directory (`--output-dir`): relative destinations are taken from there, absolute ones must lie
inside it. Only storage outlives a pilot: its output directory goes with it.

Every path the task's spec names on the worker's side must stay where it belongs: input
destinations and output sources in the sandbox, output destinations in the output directory;
absolute paths elsewhere, `..` parts (in storage URLs too) and symlinks leading out (including
ones the task made, anywhere inside an output directory) are refused with a StagingError that
says which file and why, before anything is written.

Not covered: a task running as the worker's user can still write anywhere that user may (that
is what per-task users or containers are for), hard links it makes are not symlinks, and a
concurrent process could swap a checked directory for a symlink before the copy (no openat2).
"""

from __future__ import annotations

import contextlib
import glob
import os
import posixpath
import shutil
import stat
import urllib.parse
from pathlib import Path, PurePosixPath

from vahana_worker import storage

HTTP_TIMEOUT = 60.0
"""Seconds without progress before an HTTP download is abandoned."""


class StagingError(Exception):
    """A file could not be staged; the message names the file and the reason."""

    def __init__(self, message: str, *, infrastructure: bool = False) -> None:
        super().__init__(message)
        self.infrastructure = infrastructure
        """The store could not be reached (not the task's fault: another worker may succeed)."""


def _transfer_error(what: str, error: storage.TransferError) -> StagingError:
    return StagingError(f"{what}: {error}", infrastructure=error.infrastructure)


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


def confine_destination(root: Path, destination: str, *, what: str) -> Path:
    """An output destination (path or file:// URL) as a path inside `root`, else StagingError.

    Relative destinations are taken from `root`; absolute ones must lie inside it already.
    """
    location = _local_path_of(destination, what=what)
    if ".." in location.parts:
        raise StagingError(f"{what}: '..' is not allowed in output destinations")
    base = root.resolve()
    if location.is_absolute():
        inside = [r for r in (root.absolute(), base) if location.is_relative_to(r)]
        if not inside:
            raise StagingError(
                f"{what}: absolute paths must lie inside the worker's output directory "
                f"{str(base)!r}; give a path relative to it"
            )
        location = location.relative_to(inside[0])
    target = base / location
    resolved = target.resolve()
    if resolved != base and not resolved.is_relative_to(base):
        raise StagingError(f"{what}: leads outside the output directory through a symlink")
    return target


def _check_tree(sandbox: Path, path: Path, *, what: str) -> None:
    """Refuses a directory output holding a symlink that leads out of the sandbox."""
    root = sandbox.resolve()
    for parent, dirs, files in os.walk(path):
        for name in (*dirs, *files):
            entry = Path(parent) / name
            if entry.is_symlink():
                resolved = entry.resolve()
                if resolved != root and not resolved.is_relative_to(root):
                    inside = entry.relative_to(sandbox)
                    raise StagingError(
                        f"{what}: {str(inside)!r} is a symlink leading outside the sandbox"
                    )


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
        return Path(urllib.parse.unquote(parsed.path))  # url2pathname, on POSIX
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
    # Imported here: urllib.request (and http.client) cost every worker start 30 ms, and only
    # http(s):// inputs need them.
    import urllib.error
    import urllib.request

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


def stage_input(
    sandbox: Path,
    source: str,
    destination: str,
    *,
    reader: tuple[int, int] | None = None,
    stores: storage.StorageConfig | None = None,
) -> Path:
    """Puts `source` at the sandbox-relative `destination` (default: the source's base name).
    `stores`: how to reach s3:// and sftp:// sources.

    `reader` (uid, gid): the user the task runs as. The worker may be root, so a local source
    is copied only if that user could read it itself — else a task could have any file of the
    worker's host (keys, tokens) copied into its sandbox.
    """
    what = f"input {source!r}"
    if not source:
        raise StagingError("input: empty source")
    if not destination or destination.endswith("/"):
        destination = destination + _source_name(source)
    target = confine(sandbox, destination, what=f"{what} destination {destination!r}")
    scheme = urllib.parse.urlparse(source).scheme
    if scheme in ("http", "https"):
        _download(source, target, what=what)
    elif scheme in storage.SCHEMES:
        try:
            storage.download(source, target, stores or storage.StorageConfig())
        except ValueError as exc:
            raise StagingError(f"{what}: {exc}") from exc
        except storage.TransferError as exc:
            raise _transfer_error(what, exc) from exc
    else:
        path = _local_path_of(source, what=what)
        if not path.exists():
            raise StagingError(f"{what}: not found")
        if reader is not None and not readable_by(path, *reader):
            raise StagingError(f"{what}: the task's user (uid {reader[0]}) may not read it")
        try:
            _copy(path, target)
        except OSError as exc:
            raise StagingError(f"{what}: copy failed: {exc}") from exc
    # Re-check once the parents exist: a staged file must not have planted a symlink outside.
    confine(sandbox, destination, what=f"{what} destination {destination!r}")
    return target


GLOB_CHARACTERS = frozenset("*?[")


def _sources(sandbox: Path, source: str, *, what: str) -> list[Path]:
    """The sandbox paths an output source names: itself, or a glob's matches (sorted)."""
    if not GLOB_CHARACTERS & set(source):
        path = confine(sandbox, source, what=what)
        if not path.exists():
            raise StagingError(f"{what}: not found in the sandbox (the task did not write it)")
        return [path]
    confine(sandbox, source, what=what)  # refuses '..' and absolute patterns
    root = sandbox.resolve()
    matches = sorted(glob.glob(source, root_dir=root, recursive=True))
    if not matches:
        raise StagingError(f"{what}: no file in the sandbox matches (the task wrote none)")
    return [confine(sandbox, match, what=f"{what} match {match!r}") for match in matches]


def collect_output(
    sandbox: Path,
    source: str,
    destination: str,
    *,
    output_root: Path,
    stores: storage.StorageConfig | None = None,
) -> list[str]:
    """Sends the sandbox-relative `source` (a file, a directory or a glob) to `destination`:
    storage (`s3://`, `sftp://`) or a place inside `output_root`. Returns where each went."""
    what = f"output {source!r}"
    if not destination:
        raise StagingError(f"{what}: no destination given")
    paths = _sources(sandbox, source, what=what)
    for path in paths:
        if path.is_dir():
            _check_tree(sandbox, path, what=what)
    scheme = urllib.parse.urlparse(destination).scheme
    if scheme in ("http", "https"):
        raise StagingError(f"{what}: uploading to http(s) destinations is not supported")
    if scheme in storage.SCHEMES:
        return [
            _upload(path, destination, into=len(paths) > 1, stores=stores, what=what)
            for path in paths
        ]
    if len(paths) > 1 and not destination.endswith("/"):
        destination += "/"  # many files go into a directory
    return [_copy_out(path, destination, output_root=output_root, what=what) for path in paths]


def _copy_out(path: Path, destination: str, *, output_root: Path, what: str) -> str:
    where = f"{what} destination {destination!r}"
    target = confine_destination(output_root, destination, what=where)
    if destination.endswith("/") or target.is_dir():
        target = target / path.name
        confine_destination(output_root, str(target), what=where)
    try:
        _copy(path, target)
    except OSError as exc:
        raise StagingError(f"{what}: copy to {str(target)!r} failed: {exc}") from exc
    return str(target)


def _upload(
    path: Path,
    destination: str,
    *,
    into: bool,
    stores: storage.StorageConfig | None,
    what: str,
) -> str:
    """Uploads a file or a directory's files to a storage URL; `into`: the URL is a
    directory even without a trailing slash. Returns the URL of the file or directory."""
    base = destination
    if into or destination.endswith("/"):
        base = destination.rstrip("/") + "/" + urllib.parse.quote(path.name)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        targets = [
            (p, base + "/" + urllib.parse.quote(p.relative_to(path).as_posix())) for p in files
        ]
    else:
        targets = [(path, base)]
    config = stores or storage.StorageConfig()
    for local, url in targets:
        try:
            storage.upload(local, url, config)
        except ValueError as exc:
            raise StagingError(f"{what} destination {url!r}: {exc}") from exc
        except storage.TransferError as exc:
            raise _transfer_error(f"{what} to {url}", exc) from exc
    return base


def readable_by(path: Path, uid: int, gid: int) -> bool:
    """Whether the user could read `path` (all of it, for a directory) by its permission bits:
    every directory above it searchable, every file readable. ACLs are not consulted, so this
    may refuse what an ACL would allow, never the other way round."""
    if uid == 0:
        return True
    groups = {gid}
    with contextlib.suppress(KeyError):
        import grp
        import pwd

        name = pwd.getpwuid(uid).pw_name
        groups |= {g.gr_gid for g in grp.getgrall() if name in g.gr_mem}

    def allowed(info: os.stat_result, user_bit: int, group_bit: int, other_bit: int) -> bool:
        if info.st_uid == uid:
            return bool(info.st_mode & user_bit)
        if info.st_gid in groups:
            return bool(info.st_mode & group_bit)
        return bool(info.st_mode & other_bit)

    resolved = path.resolve()
    for parent in resolved.parents:
        if not allowed(parent.stat(), stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH):
            return False
    entries = [resolved] + (sorted(resolved.rglob("*")) if resolved.is_dir() else [])
    for entry in entries:
        info = entry.stat()
        if not allowed(info, stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH):
            return False
        if entry.is_dir() and not allowed(info, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH):
            return False
    return True
