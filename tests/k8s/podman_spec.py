"""A Pod's container as a `podman run` command line: a pure function of the Pod and its node.

What a kubelet and its container runtime would apply, and how:
- image, command (overrides the image's entrypoint), args (its cmd), workingDir, `$(VAR)`
  expansion of command and args;
- env (the caller resolves `value`/`valueFrom`/`envFrom`) plus the service variables of the
  API server (KUBERNETES_SERVICE_HOST/PORT), so in-cluster clients find it;
- volumes as bind mounts (read-only where the mount or the volume is), `subPath` included;
- securityContext of the Pod and the container (the container's wins): runAsUser/runAsGroup
  (`--user`), runAsNonRoot checked against the image's user (refused as the kubelet refuses:
  CreateContainerConfigError), fsGroup and supplementalGroups (`--group-add`),
  capabilities drop/add, allowPrivilegeEscalation: false (`no-new-privileges`), privileged,
  readOnlyRootFilesystem (`--read-only`, without podman's extra tmpfs mounts), seccomp
  Unconfined;
- resources.limits: memory (`-m`, no swap beyond it) and cpu (`--cpus`);
- the host's network (every container shares it): Service DNS names resolve to 127.0.0.1
  (`--add-host`), so a Service's port must be its container's port.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from vahana.manifests import quantity

from tests.k8s.container import POD_IP, expand
from tests.k8s.pod_volumes import HostVolume


class ContainerConfigError(ValueError):
    """The container cannot be created as specified (the kubelet's CreateContainerConfigError)."""


@dataclasses.dataclass(frozen=True)
class NodeFacts:
    """What the node knows that the Pod does not say."""

    api_port: int
    service_hosts: Sequence[str] = ()
    """DNS names of the cluster's Services (all resolve to this host)."""
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """Labels put on every container, to find them again."""


def effective(pod: dict[str, Any], container: dict[str, Any], key: str) -> Any:
    """A securityContext field: the container's, else the Pod's."""
    value = container.get("securityContext", {}).get(key)
    if value is None:
        value = pod["spec"].get("securityContext", {}).get(key)
    return value


def check_non_root(pod: dict[str, Any], container: dict[str, Any], image_user: str) -> None:
    """The kubelet's runAsNonRoot rule; ContainerConfigError when broken."""
    if not effective(pod, container, "runAsNonRoot"):
        return
    run_as = effective(pod, container, "runAsUser")
    if run_as is not None:
        if int(run_as) == 0:
            raise ContainerConfigError("container's runAsUser breaks non-root policy")
        return
    user = image_user.split(":", 1)[0]
    if user in ("", "0", "root"):
        raise ContainerConfigError("container has runAsNonRoot and image will run as root")
    if not user.isdigit():
        raise ContainerConfigError(
            f"container has runAsNonRoot and image has non-numeric user ({user}), "
            "cannot verify user is non-root"
        )


def run_args(
    pod: dict[str, Any],
    container: dict[str, Any],
    *,
    name: str,
    env: Mapping[str, str],
    volumes: Mapping[str, HostVolume],
    image_user: str,
    node: NodeFacts,
) -> list[str]:
    """`podman run -d …` for the container; ContainerConfigError if it cannot be created."""
    check_non_root(pod, container, image_user)
    args = ["run", "--detach", "--name", name, "--network", "host", "--init=false"]
    args += [f"--label={key}={value}" for key, value in sorted(node.labels.items())]
    args += _security(pod, container)
    args += _limits(container.get("resources", {}).get("limits", {}))
    for host in node.service_hosts:
        args += ["--add-host", f"{host}:{POD_IP}"]
    full_env = {
        "KUBERNETES_SERVICE_HOST": POD_IP,
        "KUBERNETES_SERVICE_PORT": str(node.api_port),
        "KUBERNETES_SERVICE_PORT_HTTPS": str(node.api_port),
        "HOSTNAME": pod["metadata"]["name"],
        **env,
    }
    for key, value in full_env.items():
        args += ["--env", f"{key}={value}"]
    for mount in container.get("volumeMounts", []):
        if mount["name"] not in volumes:
            raise ContainerConfigError(f"volumeMount {mount['name']}: no such volume")
        volume = volumes[mount["name"]]
        source = volume.path / mount["subPath"] if mount.get("subPath") else volume.path
        if mount.get("subPath") and not source.exists():
            source.mkdir(parents=True)
        read_only = volume.read_only or mount.get("readOnly", False)
        args += ["--volume", f"{source}:{mount['mountPath']}{':ro' if read_only else ''}"]
    if container.get("workingDir"):
        args += ["--workdir", container["workingDir"]]
    command = [expand(word, full_env) for word in container.get("command", [])]
    if command:
        args += ["--entrypoint", json.dumps(command)]
    args.append(container["image"])
    args += [expand(word, full_env) for word in container.get("args", [])]
    return args


def _security(pod: dict[str, Any], container: dict[str, Any]) -> list[str]:
    args: list[str] = []
    user, group = effective(pod, container, "runAsUser"), effective(pod, container, "runAsGroup")
    if user is not None:
        args += ["--user", f"{user}:{group}" if group is not None else str(user)]
    pod_context = pod["spec"].get("securityContext", {})
    groups = [pod_context.get("fsGroup"), *pod_context.get("supplementalGroups", [])]
    for extra in groups:
        if extra is not None:
            args += ["--group-add", str(extra)]
    context = container.get("securityContext", {})
    if context.get("privileged"):
        args.append("--privileged")
    capabilities = context.get("capabilities", {})
    args += [f"--cap-drop={cap}" for cap in capabilities.get("drop", [])]
    args += [f"--cap-add={cap}" for cap in capabilities.get("add", [])]
    if context.get("allowPrivilegeEscalation") is False:
        args += ["--security-opt", "no-new-privileges"]
    if context.get("readOnlyRootFilesystem"):
        args += ["--read-only", "--read-only-tmpfs=false"]
    seccomp = effective(pod, container, "seccompProfile") or {}
    if seccomp.get("type") == "Unconfined":
        args += ["--security-opt", "seccomp=unconfined"]
    return args


def _limits(limits: Mapping[str, Any]) -> list[str]:
    args: list[str] = []
    if "memory" in limits:
        size = quantity.parse_memory(limits["memory"])
        args += ["--memory", str(size), "--memory-swap", str(size)]
    if "cpu" in limits:
        args += ["--cpus", f"{quantity.parse_cpu(limits['cpu']):g}"]
    return args


def service_hosts(services: Sequence[dict[str, Any]], namespace: str) -> list[str]:
    """The DNS names a Pod in `namespace` may use for these Services."""
    names = ["kubernetes.default.svc", "kubernetes.default.svc.cluster.local"]
    for service in services:
        meta = service["metadata"]
        base = f"{meta['name']}.{meta['namespace']}"
        names += [base, f"{base}.svc", f"{base}.svc.cluster.local"]
        if meta["namespace"] == namespace:
            names.append(meta["name"])
    return list(dict.fromkeys(names))


def container_name(pod: dict[str, Any], container: dict[str, Any], restarts: int) -> str:
    meta = pod["metadata"]
    return (
        f"k8s_{container['name']}_{meta['name']}_{meta['namespace']}_{meta['uid'][:8]}_{restarts}"
    )
