"""A Pod's volumes as host directories, the way a kubelet prepares them before its containers.

- emptyDir: a fresh directory of the Pod, mode 0777 as the kubelet makes it (any uid writes).
- secret, configMap, downwardAPI and projected (secret, configMap, downwardAPI and
  serviceAccountToken sources): files written from the API objects (`items` with `key`/`path`/
  `mode`, or every key; `defaultMode`, 0644 unless set). A serviceAccountToken is minted with
  the TokenRequest API, bound to the Pod, as the kubelet does for the projected
  `kube-api-access-*` volume the ServiceAccount admission plugin adds to every Pod.
- persistentVolumeClaim: the hostPath (or local path) of the PersistentVolume the claim is bound
  to; the claim must be bound (the PV controller binds it), as a scheduler would require.
- hostPath: the path itself.
A missing Secret, ConfigMap or unbound claim is waited for while the Pod lives (a kubelet
retries the mount), unless the source is `optional`. The API server of these tests (an
OpenShift build of Kubernetes) adds an `openshift-service-ca.crt` ConfigMap to the
`kube-api-access-*` volume; no service-CA operator publishes it here, so that source is optional.

With a `fsGroup` in the Pod's securityContext, volumes are handed to that group as a kubelet
does (SetVolumeOwnership): writable ones (emptyDir, claims) get group rw and setgid
directories, read-only ones (secret, configMap, projected, downwardAPI) group read.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.k8s.container import POD_IP, field_value
from tests.k8s.controlplane import RestClient

WAIT_STEP = 0.2
TOKEN_SECONDS = 3607  # what the ServiceAccount admission plugin asks for
_READ_ONLY = ("secret", "configMap", "downwardAPI", "projected")
_UNPUBLISHED = "openshift-service-ca.crt"


class VolumeNotReady(RuntimeError):
    """A source the volume needs does not exist (yet)."""


@dataclasses.dataclass(frozen=True)
class HostVolume:
    path: Path
    read_only: bool


def prepare(
    pod: dict[str, Any],
    workdir: Path,
    rest: RestClient,
    *,
    node_name: str,
    alive: Callable[[], bool],
    stopping: threading.Event,
    pod_ip: str = POD_IP,
) -> dict[str, HostVolume]:
    """The Pod's volumes by name, each a directory on this host; waits for missing sources
    while `alive()` (VolumeNotReady once it is not)."""
    volumes: dict[str, HostVolume] = {}
    fs_group = pod["spec"].get("securityContext", {}).get("fsGroup")
    for volume in pod["spec"].get("volumes", []):
        while True:
            try:
                found = _prepare_one(pod, volume, workdir, rest, (node_name, pod_ip))
                volumes[volume["name"]] = found
                break
            except VolumeNotReady:
                if not alive() or stopping.wait(WAIT_STEP):
                    raise
        found = volumes[volume["name"]]
        if fs_group is not None and not _is_host_path(volume):
            _give_to_group(found.path, int(fs_group), writable=not found.read_only)
    return volumes


def _is_host_path(volume: dict[str, Any]) -> bool:
    return "hostPath" in volume


def _prepare_one(
    pod: dict[str, Any],
    volume: dict[str, Any],
    workdir: Path,
    rest: RestClient,
    node: tuple[str, str],
) -> HostVolume:
    name = volume["name"]
    if "hostPath" in volume:
        return HostVolume(Path(volume["hostPath"]["path"]), read_only=False)
    if "persistentVolumeClaim" in volume:
        claim = volume["persistentVolumeClaim"]
        return HostVolume(
            _claimed_path(rest, pod["metadata"]["namespace"], claim["claimName"]),
            read_only=bool(claim.get("readOnly")),
        )
    target = workdir / "volumes" / name
    target.mkdir(parents=True, exist_ok=True)
    if "emptyDir" in volume:
        target.chmod(0o777)
        return HostVolume(target, read_only=False)
    kind = next((k for k in _READ_ONLY if k in volume), None)
    if kind is None:
        raise ValueError(f"volume {name}: type {sorted(volume)} is not supported by this kubelet")
    source = volume[kind]
    default_mode = int(source.get("defaultMode", 0o644))
    sources = source["sources"] if kind == "projected" else [{kind: source}]
    files: dict[str, tuple[bytes, int]] = {}
    for item in sources:
        files.update(_source_files(pod, item, rest, node, default_mode))
    for relative, (content, mode) in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        path.chmod(mode)
    return HostVolume(target, read_only=True)


def _source_files(
    pod: dict[str, Any],
    item: dict[str, Any],
    rest: RestClient,
    node: tuple[str, str],
    default_mode: int,
) -> dict[str, tuple[bytes, int]]:
    """`node`: the node's name and the Pod's IP, for the downward API."""
    namespace = pod["metadata"]["namespace"]
    if "serviceAccountToken" in item:
        token = item["serviceAccountToken"]
        minted = _mint_token(pod, rest, token.get("audience"), token.get("expirationSeconds"))
        return {token["path"]: (minted.encode(), default_mode)}
    if "downwardAPI" in item:
        return {
            entry["path"]: (
                field_value(pod, entry["fieldRef"]["fieldPath"], *node).encode(),
                int(entry.get("mode", default_mode)),
            )
            for entry in item["downwardAPI"].get("items", [])
            if "fieldRef" in entry
        }
    kind = "secret" if "secret" in item else "configMap"
    ref = item[kind]
    object_name = ref.get("secretName") or ref.get("name")
    plural = "secrets" if kind == "secret" else "configmaps"
    status, body = rest.request("GET", f"/api/v1/namespaces/{namespace}/{plural}/{object_name}")
    if status == 404 and (ref.get("optional") or object_name == _UNPUBLISHED):
        return {}
    if status != 200:
        raise VolumeNotReady(f"{kind} {namespace}/{object_name}: {status}")
    data = {key: base64.b64decode(value) for key, value in body.get("binaryData", {}).items()}
    for key, value in body.get("data", {}).items():
        data[key] = base64.b64decode(value) if kind == "secret" else value.encode()
    if "items" not in ref:
        return {key: (value, default_mode) for key, value in data.items()}
    files = {}
    for entry in ref["items"]:
        if entry["key"] not in data:
            if ref.get("optional"):
                continue
            raise VolumeNotReady(f"{kind} {namespace}/{object_name} has no key {entry['key']}")
        files[entry["path"]] = (data[entry["key"]], int(entry.get("mode", default_mode)))
    return files


def _mint_token(
    pod: dict[str, Any], rest: RestClient, audience: str | None, seconds: int | None
) -> str:
    meta = pod["metadata"]
    account = pod["spec"].get("serviceAccountName") or "default"
    request = {
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenRequest",
        "spec": {
            "audiences": [audience] if audience else [],
            "expirationSeconds": int(seconds or TOKEN_SECONDS),
            "boundObjectRef": {
                "apiVersion": "v1", "kind": "Pod", "name": meta["name"], "uid": meta["uid"],
            },
        },
    }  # fmt: skip
    path = f"/api/v1/namespaces/{meta['namespace']}/serviceaccounts/{account}/token"
    status, body = rest.request("POST", path, request)
    if status != 201:
        raise VolumeNotReady(f"token of serviceaccount {meta['namespace']}/{account}: {status}")
    return str(body["status"]["token"])


def _claimed_path(rest: RestClient, namespace: str, claim: str) -> Path:
    status, body = rest.request(
        "GET", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}"
    )
    volume = body.get("spec", {}).get("volumeName") if status == 200 else None
    if not volume or body.get("status", {}).get("phase") != "Bound":
        raise VolumeNotReady(f"claim {namespace}/{claim} is not bound")
    status, body = rest.request("GET", f"/api/v1/persistentvolumes/{volume}")
    if status != 200:
        raise VolumeNotReady(f"persistentvolume {volume}: {status}")
    spec = body["spec"]
    path = (spec.get("hostPath") or spec.get("local") or {}).get("path")
    if not path:
        raise ValueError(f"persistentvolume {volume}: only hostPath and local volumes can be used")
    Path(path).mkdir(parents=True, exist_ok=True)
    return Path(path)


def _give_to_group(root: Path, group: int, *, writable: bool) -> None:
    for directory, _, names in os.walk(root):
        paths = [Path(directory)] + [Path(directory) / name for name in names]
        for path in paths:
            os.chown(path, -1, group, follow_symlinks=False)
            mode = path.stat().st_mode & 0o7777
            if path.is_dir():
                mode |= 0o2770 if writable else 0o2550
            else:
                mode |= 0o660 if writable else 0o440
            path.chmod(mode)
