"""Talk 09/10 and the demo — the admission policies in a real Kubernetes cluster (kind).

- `cluster`: a kind cluster (infra/kind/cluster.yaml, node image pinned here) wired to a
  registry container on the kind network as kind documents it (one hosts.toml per node,
  the `local-registry-hosting` ConfigMap); Gatekeeper and sigstore policy-controller from
  pinned Helm chart versions; the Gatekeeper templates, constraints and sync Config of
  infra/policies/gatekeeper; the protected namespace (policy.sigstore.dev/include=true);
  and the ClusterImagePolicy rendered by tasks/cluster_image_policy.py.
- `deploy`: the image of the build evidence, with its signature and attestations (cosign
  copy), into the cluster's registry; then the chart, by digest, into the protected
  namespace. policy-controller and Gatekeeper admit it, or the stage fails.
- `demo`: the talk's demo, one PASS/FAIL line per step: the signed image is admitted; an
  unsigned image is rejected by policy-controller; a pod in an unlabelled namespace is
  rejected by Gatekeeper. Server-side dry runs: the admission webhooks decide, nothing
  is left behind.
- `teardown`: deletes the kind cluster and the registry container `cluster` started (by
  the id it recorded).

Settings: SECURE_IOT_CONTAINER_ENGINE (docker or podman; default: the first installed),
SECURE_IOT_KIND_REGISTRY_PORT (where the registry container is published on 127.0.0.1 for
pushes, default 5001; the pipeline's own registry keeps 127.0.0.1:5000). State that later
sessions need (container id, its address, kubeconfig) is in out/cluster/.

Prerequisites come first, each a one-line error and exit 2, never a pretended success: a
container engine (Docker or Podman) installed AND running; kind, kubectl and helm from
tools.lock; for `cluster`, the network (chart repositories, Docker Hub and GHCR for the
node and controller images).

Inside the cluster, pods name images as the pipeline does (127.0.0.1:5000/...@sha256:...);
containerd on each node reads them from the registry container (hosts.toml). The
policy-controller webhook runs in a pod, where 127.0.0.1 is the pod itself, so the
cluster's ClusterImagePolicy reads signatures and attestations from the registry
container's address on the kind network (`source.oci`); an RFC 1918 address, which
go-containerregistry speaks plain HTTP to.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tasks.cluster.errors import ClusterError
from tasks.context import Context
from tasks.core import runner
from tasks.core.errors import ToolError
from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool

KIND_CONFIG = "infra/kind/cluster.yaml"
# kind v0.33.0's own default node image (sigs.k8s.io/kind pkg/apis/config/defaults/image.go),
# named here so the cluster does not change when kind's default does.
NODE_IMAGE = "kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5"
RFC1918 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


# --- prerequisites -----------------------------------------------------------------------


@dataclass(frozen=True)
class ContainerEngine:
    """Docker or Podman, which runs kind's nodes (not the cluster engine: tasks/cluster/engines.py)."""

    tool: Tool

    @property
    def name(self) -> str:
        return self.tool.name

    def kind_env(self) -> dict[str, str]:
        return {"KIND_EXPERIMENTAL_PROVIDER": "podman"} if self.name == "podman" else {}


def container_engine(rec: StageRecord) -> ContainerEngine:
    """Docker or Podman, installed and answering; SECURE_IOT_CONTAINER_ENGINE picks one."""
    wanted = os.environ.get("SECURE_IOT_CONTAINER_ENGINE", "")
    if wanted not in ("", "docker", "podman"):
        raise ClusterError(f"SECURE_IOT_CONTAINER_ENGINE={wanted!r}: kind runs on 'docker' or 'podman'")
    names = [wanted] if wanted else ["docker", "podman"]
    installed = [(name, Path(found)) for name in names if (found := shutil.which(name))]
    if not installed:
        raise ClusterError(
            f"container engine not found: kind runs the cluster's nodes as containers and needs "
            f"{' or '.join(names)} on PATH (Debian: apt-get install docker.io, or podman)"
        )
    failures = []
    for name, binary in installed:
        probe = Tool(name, "host", binary, route="host")
        fmt = "{{.ServerVersion}}" if name == "docker" else "{{.Version.Version}}"
        done = runner.run(rec, probe, ["info", "--format", fmt], check=False, timeout=60)
        version = done.stdout.strip()
        if done.returncode == 0 and version:
            return ContainerEngine(Tool(name, version, binary, route="host"))
        failures.append(f"`{name} info` failed: {done.tail(1) or f'exit {done.returncode}'}")
    raise ClusterError(
        f"container engine not running: {'; '.join(failures)}; start it "
        "(e.g. `sudo systemctl start docker`, or `dockerd &` as root)"
    )


def cluster_tools(ctx: Context, names: Sequence[str] = ("kind", "kubectl", "helm")) -> dict[str, Tool]:
    tools = {}
    for name in names:
        try:
            tools[name] = ctx.tool(name)
        except ToolError as exc:
            raise ClusterError(f"{name} is not installable here: {exc}") from exc
    return tools


ENGINES = ("kind", "local")
LOCAL_TOOLS = (
    "kubectl",
    "helm",
    "ip",
    "docker-registry",
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "gatekeeper",
    "policy-controller",
)


def choose_engine(rec: StageRecord, requested: str | None) -> str:
    """`--engine`, else SECURE_IOT_CLUSTER_ENGINE, else kind where a container engine runs, else local."""
    wanted = requested or os.environ.get("SECURE_IOT_CLUSTER_ENGINE", "")
    if wanted and wanted not in ENGINES:
        raise ClusterError(f"SECURE_IOT_CLUSTER_ENGINE={wanted!r}: expected one of {', '.join(ENGINES)}")
    if wanted:
        return wanted
    try:
        container_engine(rec)
    except ClusterError as exc:
        rec.details["engine_fallback"] = f"local: {exc}"
        return "local"
    return "kind"


def local_tools(ctx: Context) -> dict[str, Tool]:
    """The local engine's pinned binaries (tools.lock, profile cluster: built once, cached by pin)."""
    return cluster_tools(ctx, LOCAL_TOOLS)


# --- state -------------------------------------------------------------------------------


# --- commands ----------------------------------------------------------------------------


# --- cluster -----------------------------------------------------------------------------


# --- deploy ------------------------------------------------------------------------------


# --- demo --------------------------------------------------------------------------------


# --- teardown ----------------------------------------------------------------------------
