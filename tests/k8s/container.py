"""How the fake kubelet turns a Pod's first container into a local command line.

The rules (also in `tests.k8s.kubelet`): `$(VAR)` expansion as in Kubernetes; env `value` and
`valueFrom` (fieldRef, configMapKeyRef, secretKeyRef; others, and missing sources, logged and
skipped — or with `strict`, a missing source that is not `optional` raises MissingEnvSource with
the kubelet's message, as the container kubelet needs); emptyDir mount
paths rewritten to per-pod dirs in command/args/env values/workingDir when a word equals the
mount path, starts with `<mountPath>/`, or is `<anything>=<such a path>`.
"""

from __future__ import annotations

import base64
import logging
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.k8s.controlplane import RestClient

log = logging.getLogger(__name__)

POD_IP = "127.0.0.1"
_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")
_FIELD_KEY = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")
_KINDS = {"secrets": "Secret", "configmaps": "ConfigMap"}


class MissingEnvSource(ValueError):
    """A Secret, ConfigMap or key the container's env names does not exist (yet)."""


def prepare(
    pod: dict[str, Any],
    workdir: Path,
    *,
    node_name: str,
    extra_env: Mapping[str, str],
    rest: RestClient,
) -> tuple[list[str], dict[str, str], Path]:
    """(argv, env, cwd) of the Pod's first container; per-pod dirs are made under `workdir`."""
    container = pod["spec"]["containers"][0]
    mounts = _empty_dirs(pod, container, workdir)

    def local(value: str) -> str:
        for mount, path in mounts:
            if value == mount or value.startswith(mount.rstrip("/") + "/"):
                return str(path) + value[len(mount.rstrip("/")) :]
        key, equals, rest = value.partition("=")
        return f"{key}={local(rest)}" if equals and rest.startswith("/") else value

    env = {name: os.environ[name] for name in ("PATH", "HOME") if name in os.environ}
    env["LANG"] = os.environ.get("LANG", "C.UTF-8")
    env |= extra_env
    for item in container.get("env", []):
        value = _env_value(pod, item, node_name, rest)
        if value is not None:
            env[item["name"]] = local(expand(value, env))
    words = [*container.get("command", []), *container.get("args", [])]
    if not words:
        raise ValueError("the fake kubelet needs command or args (it cannot read images)")
    argv = [local(expand(word, env)) for word in words]
    executable = shutil.which(argv[0], path=env.get("PATH"))
    if executable is None:
        raise FileNotFoundError(f"{argv[0]!r} is not on PATH={env.get('PATH')}")
    argv[0] = executable
    cwd = workdir / "cwd"
    cwd.mkdir(exist_ok=True)
    working_dir = container.get("workingDir")
    if working_dir and local(working_dir) != working_dir:
        cwd = Path(local(working_dir))
        cwd.mkdir(parents=True, exist_ok=True)
    return argv, env, cwd


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: defined variables are replaced, `$$` becomes `$`."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return "$"
        return env.get(name, match.group(0))

    return _REFERENCE.sub(replace, value)


def _empty_dirs(
    pod: dict[str, Any], container: dict[str, Any], workdir: Path
) -> list[tuple[str, Path]]:
    """(mountPath, local dir) of the container's emptyDir mounts, longest path first."""
    empty = {v["name"] for v in pod["spec"].get("volumes", []) if "emptyDir" in v}
    mounts = []
    for mount in container.get("volumeMounts", []):
        if mount["name"] in empty:
            path = workdir / "volumes" / mount["name"]
            path.mkdir(parents=True, exist_ok=True)
            mounts.append((mount["mountPath"], path))
    return sorted(mounts, key=lambda item: len(item[0]), reverse=True)


def container_env(
    pod: dict[str, Any],
    container: dict[str, Any],
    *,
    node_name: str,
    rest: RestClient,
    base: Mapping[str, str],
    strict: bool = False,
    pod_ip: str = POD_IP,
) -> dict[str, str]:
    """`base`, then the container's `envFrom`, then its `env` (each `$(VAR)`-expanded).
    `strict`: a missing Secret, ConfigMap or key that is not `optional` raises
    MissingEnvSource (else it is skipped)."""
    env = dict(base)
    namespace = pod["metadata"]["namespace"]
    for source in container.get("envFrom", []):
        for kind, plural in (("configMapRef", "configmaps"), ("secretRef", "secrets")):
            if kind in source:
                ref = source[kind]
                data = _object_data(rest, namespace, plural, ref["name"])
                if data is None and strict and not ref.get("optional"):
                    raise MissingEnvSource(f'{_KINDS[plural].lower()} "{ref["name"]}" not found')
                prefix = source.get("prefix", "")
                env.update({prefix + key: value for key, value in (data or {}).items()})
    for item in container.get("env", []):
        value = _env_value(pod, item, node_name, rest, strict=strict, pod_ip=pod_ip)
        if value is not None:
            env[item["name"]] = expand(value, env)
    return env


def field_value(pod: dict[str, Any], path: str, node_name: str, pod_ip: str = POD_IP) -> str:
    """A downward-API field of the Pod (fieldRef.fieldPath); ValueError if not supported."""
    meta = pod["metadata"]
    fields = {
        "metadata.name": meta["name"], "metadata.namespace": meta["namespace"],
        "metadata.uid": meta["uid"], "spec.nodeName": node_name,
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
        "status.podIP": pod_ip, "status.hostIP": pod_ip,
    }  # fmt: skip
    if path in fields:
        return str(fields[path])
    keyed = _FIELD_KEY.match(path)
    if keyed:
        return str(meta.get(keyed.group(1), {}).get(keyed.group(2), ""))
    raise ValueError(f"fieldRef {path!r} is not supported by this kubelet")


def _object_data(rest: RestClient, namespace: str, plural: str, name: str) -> dict[str, str] | None:
    code, body = rest.request("GET", f"/api/v1/namespaces/{namespace}/{plural}/{name}")
    if code != 200:
        return None
    data = body.get("data", {})
    if plural == "secrets":
        return {key: base64.b64decode(value).decode() for key, value in data.items()}
    return {key: str(value) for key, value in data.items()}


def _env_value(
    pod: dict[str, Any],
    item: dict[str, Any],
    node_name: str,
    rest: RestClient,
    *,
    strict: bool = False,
    pod_ip: str = POD_IP,
) -> str | None:
    if "valueFrom" not in item:
        return str(item.get("value", ""))
    source = item["valueFrom"]
    meta = pod["metadata"]
    if "fieldRef" in source:
        try:
            return field_value(pod, source["fieldRef"]["fieldPath"], node_name, pod_ip)
        except ValueError:
            pass
    for kind, plural in (("configMapKeyRef", "configmaps"), ("secretKeyRef", "secrets")):
        if kind in source:
            ref = source[kind]
            data = _object_data(rest, meta["namespace"], plural, ref["name"])
            value = (data or {}).get(ref["key"])
            if value is not None:
                return value
            if strict and not ref.get("optional"):
                what = _KINDS[plural]
                if data is None:
                    raise MissingEnvSource(f'{what.lower()} "{ref["name"]}" not found')
                raise MissingEnvSource(
                    f"couldn't find key {ref['key']} in {what} {meta['namespace']}/{ref['name']}"
                )
    log.warning("kubelet: %s: env %s from %s is not supported or not found; skipped",
                meta["name"], item["name"], source)  # fmt: skip
    return None
