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

import contextlib
import functools
import ipaddress
import json
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tasks.admission import cluster_image_policy
from tasks.admission import gatekeeper as admission
from tasks.container import oci_registry
from tasks.container.build import IMAGE_NAME
from tasks.context import Context
from tasks.core import atomic, runner
from tasks.core.cache import cache_root
from tasks.core.checks import Check
from tasks.core.errors import EvidenceError, InputError, PipelineError, ToolError
from tasks.core.evidence import StageRecord
from tasks.core.media_types import CIP_MEDIA_TYPE, DIGEST, MANIFEST_MEDIA_TYPE, STATE_MEDIA_TYPE
from tasks.core.runner import Completed, Tool
from tasks.signing import signer as signing

KIND_CONFIG = "infra/kind/cluster.yaml"
# kind v0.33.0's own default node image (sigs.k8s.io/kind pkg/apis/config/defaults/image.go),
# named here so the cluster does not change when kind's default does.
NODE_IMAGE = "kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5"
# CNCF distribution, as kind's local-registry guide runs it; digest of the 2.8.3 index as
# pinned in public projects (it could not be pulled from here to check).
REGISTRY_IMAGE = (
    "docker.io/library/registry:2.8.3@sha256:a3d8aaa63ed8681a604f1dea0aa03f100d5895b6a58ace528858a7b332415373"
)
REGISTRY_CONTAINER = "secure-iot-kind-registry"
REGISTRY_LABEL = "io.secure-iot.kind-registry"
REGISTRY_PORT_IN_CONTAINER = 5000
KIND_NETWORK = "kind"
CERTS_D = "/etc/containerd/certs.d"
KUBE_PUBLIC_CONFIGMAP = "local-registry-hosting"
DEMO_UNPROTECTED_NAMESPACE = "secure-iot-demo-unprotected"
# Docker Hub (node, registry and Gatekeeper images) and GHCR (policy-controller's image).
IMAGE_REGISTRIES = {
    "https://registry-1.docker.io/v2/": "Docker Hub (kind node, registry and Gatekeeper images)",
    "https://ghcr.io/v2/": "GHCR (policy-controller image)",
}
RFC1918 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))


class ClusterError(PipelineError):
    """A prerequisite of the cluster sessions is missing, or the cluster did not come up."""


@dataclass(frozen=True)
class Chart:
    """A Helm chart pinned by version (and by sha256 where a published one could be read)."""

    name: str
    version: str
    repository: str
    release: str
    namespace: str
    sha256: str
    note: str
    values: tuple[str, ...] = ()

    @property
    def cached(self) -> Path:
        return cache_root() / "charts" / f"{self.name}-{self.version}.tgz"


GATEKEEPER = Chart(
    name="gatekeeper",
    version="3.23.1",
    repository="https://open-policy-agent.github.io/gatekeeper/charts",
    release="gatekeeper",
    namespace="gatekeeper-system",
    sha256="",
    note="the version of gator in tools.lock; no published checksum could be read from here, so the "
    "sha256 of the chart pulled is recorded in the evidence (and kept in the cache) instead",
    values=("--set", "replicas=1"),
)
POLICY_CONTROLLER = Chart(
    name="policy-controller",
    version="0.10.8",
    repository="https://sigstore.github.io/helm-charts",
    release="policy-controller",
    namespace="cosign-system",
    sha256="71ecc9f1168dd7ad04b2f7456c2d492b5ca3e09a31883bb71f6369213ceeb814",
    note="ships policy-controller v0.13.1, the version of policy-tester in tools.lock; sha256 of "
    "policy-controller-0.10.8.tgz as pinned in public deployments",
)
CHARTS = (GATEKEEPER, POLICY_CONTROLLER)


# --- prerequisites -----------------------------------------------------------------------


@dataclass(frozen=True)
class Engine:
    tool: Tool

    @property
    def name(self) -> str:
        return self.tool.name

    def kind_env(self) -> dict[str, str]:
        return {"KIND_EXPERIMENTAL_PROVIDER": "podman"} if self.name == "podman" else {}


def engine(rec: StageRecord) -> Engine:
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
            return Engine(Tool(name, version, binary, route="host"))
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


def unreachable(url: str) -> str | None:
    """None if ``url`` answers at all (any HTTP status), else why not."""
    if not url.startswith("https://"):
        raise ValueError(f"{url}: only https is probed")
    opener = urllib.request.OpenerDirector()  # https only: no file:, no plain http, no redirects
    for handler in (urllib.request.HTTPSHandler(), urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    try:
        with opener.open(url, timeout=15):  # the body is not read
            return None
    except urllib.error.HTTPError:
        return None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return str(getattr(exc, "reason", exc))


def network(charts: Sequence[Chart]) -> None:
    """The charts (unless cached) and the image registries the cluster pulls from."""
    needed = {f"{c.repository}/index.yaml": f"the {c.name} {c.version} chart" for c in charts if not c.cached.is_file()}
    needed.update(IMAGE_REGISTRIES)
    for url, what in needed.items():
        why = unreachable(url)
        if why is not None:
            raise ClusterError(
                f"no network: cannot reach {url} for {what} ({why}); `nox -s cluster` pulls the kind node "
                "image, the Gatekeeper and policy-controller images and charts from the internet"
            )


# --- state -------------------------------------------------------------------------------


@dataclass
class State:
    """What `cluster` created, for deploy, demo and teardown: out/cluster/state.json."""

    cluster: str
    engine: str
    kubeconfig: str
    registry_container: str = ""
    registry_ip: str = ""
    push_address: str = ""
    policy: str = ""
    charts: dict[str, str] = field(default_factory=dict)


def state_path(ctx: Context) -> Path:
    return ctx.stage_dir("cluster") / "state.json"


def save(ctx: Context, state: State) -> Path:
    path = state_path(ctx)
    atomic.write_json(path, asdict(state))
    return path


def load(ctx: Context) -> State | None:
    path = state_path(ctx)
    if not path.is_file():
        return None
    try:
        return State(**json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}: unreadable cluster state ({exc}); `nox -s teardown` then `nox -s cluster`") from exc


def recorded_state(ctx: Context) -> State:
    """The state of a `cluster` run that passed, checked against its digest in the evidence."""
    try:
        recorded = ctx.evidence.output("cluster", STATE_MEDIA_TYPE)
    except EvidenceError as exc:
        raise ClusterError(f"no cluster to use ({exc}): run `nox -s cluster` first") from exc
    try:
        ctx.unchanged(recorded.name, recorded.digest)
    except (EvidenceError, InputError) as exc:
        raise ClusterError(
            f"{recorded.name} is missing or changed since `nox -s cluster` recorded it: run it again"
        ) from exc
    state = load(ctx)
    if state is None:
        raise ClusterError(f"{recorded.name} disappeared: run `nox -s cluster` again")
    return state


def cluster_name(ctx: Context) -> str:
    config = ctx.inside(KIND_CONFIG)
    if not config.is_file():
        raise InputError(f"{KIND_CONFIG}: the kind cluster configuration is missing")
    name = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("name")
    if not isinstance(name, str) or not name:
        raise InputError(f"{KIND_CONFIG}: no cluster `name:`")
    return name


# --- commands ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Kube:
    """kubectl, helm, kind and the engine, all pointed at this cluster and nothing else."""

    ctx: Context
    rec: StageRecord
    engine: Engine
    tools: dict[str, Tool]
    cluster: str

    @property
    def kubeconfig(self) -> Path:
        return self.ctx.stage_dir("cluster") / "kubeconfig"

    def env(self) -> dict[str, str]:
        home = self.ctx.stage_dir("cluster") / "helm-home"
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
            **self.engine.kind_env(),
        }

    def run(
        self,
        tool: str,
        args: Sequence[str | Path],
        *,
        stdin: str | None = None,
        check: bool = True,
        timeout: float = 600,
        record: bool = True,
    ) -> Completed:
        binary = self.engine.tool if tool == "engine" else self.tools[tool]
        if not record:  # one try of a readiness poll; the poll's outcome is recorded by the caller
            return runner.probe(binary, args, env=self.env(), cwd=self.ctx.root, stdin=stdin, timeout=timeout)
        return runner.run(
            self.rec,
            binary,
            args,
            env=self.env(),
            cwd=self.ctx.root,
            stdin=stdin,
            check=check,
            timeout=timeout,
        )

    def kubectl(
        self, *args: str | Path, stdin: str | None = None, check: bool = True, record: bool = True
    ) -> Completed:
        return self.run("kubectl", args, stdin=stdin, check=check, record=record)

    def clusters(self) -> list[str]:
        return self.run("kind", ["get", "clusters"], timeout=120).stdout.split()

    def export_kubeconfig(self) -> None:
        self.run("kind", ["export", "kubeconfig", "--name", self.cluster, "--kubeconfig", self.kubeconfig], timeout=120)


def poll(what: str, timeout: float, probe: Callable[[], bool]) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(2)


# --- cluster -----------------------------------------------------------------------------


def fetch_chart(kube: Kube, chart: Chart) -> Path:
    """The chart archive, from the cache or `helm pull`; sha256-checked where one is pinned."""
    if not chart.cached.is_file():
        chart.cached.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=chart.cached.parent) as scratch:
            kube.run(
                "helm",
                ["pull", chart.name, "--repo", chart.repository, "--version", chart.version, "--destination", scratch],
                timeout=300,
            )
            pulled = Path(scratch) / chart.cached.name
            if not pulled.is_file():
                raise ClusterError(f"helm pull {chart.name} {chart.version} wrote no {chart.cached.name}")
            os.replace(pulled, chart.cached)
    digest = atomic.sha256_file(chart.cached)
    if chart.sha256 and digest != chart.sha256:
        chart.cached.unlink()
        raise ClusterError(
            f"{chart.name} chart {chart.version}: sha256 {digest}, pinned {chart.sha256}; the download was deleted"
        )
    kube.rec.add_input(chart.cached, "application/gzip")
    return chart.cached


def registry_container(kube: Kube, state: State, ctx: Context) -> None:
    """The registry container kind's guide runs: started once, published on 127.0.0.1 for pushes."""
    if state.registry_container:
        done = kube.run("engine", ["inspect", "--format", "{{.State.Running}}", state.registry_container], check=False)
        if done.stdout.strip() == "true":
            return
        kube.run("engine", ["rm", "--force", state.registry_container], check=False)
    port = os.environ.get("SECURE_IOT_KIND_REGISTRY_PORT", "5001")
    started = kube.run(
        "engine",
        [
            "run",
            "--detach",
            "--restart=always",
            "--name",
            REGISTRY_CONTAINER,
            "--label",
            f"{REGISTRY_LABEL}={state.cluster}",
            "--publish",
            f"{oci_registry.HOST}:{port}:{REGISTRY_PORT_IN_CONTAINER}",
            REGISTRY_IMAGE,
        ],
        timeout=600,
    )
    state.registry_container = started.stdout.strip().splitlines()[-1]
    state.push_address = f"{oci_registry.HOST}:{port}"
    save(ctx, state)


def connect_registry(kube: Kube, state: State) -> str:
    """The registry container on the kind network; its (RFC 1918) address there."""
    networks = kube.run(
        "engine", ["inspect", "--format", "{{json .NetworkSettings.Networks}}", state.registry_container]
    )
    if KIND_NETWORK not in json.loads(networks.stdout or "{}"):
        kube.run("engine", ["network", "connect", KIND_NETWORK, state.registry_container])
    done = kube.run(
        "engine",
        [
            "inspect",
            "--format",
            f"{{{{(index .NetworkSettings.Networks {json.dumps(KIND_NETWORK)}).IPAddress}}}}",
            state.registry_container,
        ],
    )
    address = done.stdout.strip()
    try:
        private = any(ipaddress.ip_address(address) in net for net in RFC1918)
    except ValueError:
        private = False
    if not private:
        raise ClusterError(
            f"the registry container's address on the {KIND_NETWORK!r} network is {address!r}, not an RFC 1918 "
            "IPv4 address: policy-controller would not reach it over plain HTTP"
        )
    return address


def wire_nodes(kube: Kube, state: State) -> int:
    """One hosts.toml per node: 127.0.0.1:<port> -> the registry container (kind's guide)."""
    local = oci_registry.configured().address
    hosts = f'[host."http://{REGISTRY_CONTAINER}:{REGISTRY_PORT_IN_CONTAINER}"]\n'
    nodes = kube.run("kind", ["get", "nodes", "--name", state.cluster]).stdout.split()
    for node in nodes:
        directory = f"{CERTS_D}/{local}"
        kube.run("engine", ["exec", node, "mkdir", "-p", directory])
        kube.run("engine", ["exec", "-i", node, "cp", "/dev/stdin", f"{directory}/hosts.toml"], stdin=hosts)
    hosting = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": KUBE_PUBLIC_CONFIGMAP, "namespace": "kube-public"},
        "data": {
            "localRegistryHosting.v1": f'host: "{state.push_address}"\n'
            'help: "https://kind.sigs.k8s.io/docs/user/local-registry/"\n'
        },
    }
    kube.kubectl("apply", "-f", "-", stdin=json.dumps(hosting))
    return len(nodes)


def install_chart(kube: Kube, chart: Chart, archive: Path) -> None:
    kube.run(
        "helm",
        [
            "upgrade",
            "--install",
            chart.release,
            archive,
            "--namespace",
            chart.namespace,
            "--create-namespace",
            "--wait",
            "--timeout",
            "10m",
            *chart.values,
        ],
        timeout=900,
    )


def gatekeeper_policies(kube: Kube) -> list[tuple[str, str]]:
    """Templates, then (once their CRDs exist) constraints and the sync Config."""
    ctx = kube.ctx
    bundles = admission.policy_bundles(ctx)
    for bundle in bundles:
        kube.kubectl("apply", "-f", admission.rel(ctx, bundle.template))
    constraints = []
    for bundle in bundles:
        template = yaml.safe_load(bundle.template.read_text(encoding="utf-8"))
        kind = str(template["spec"]["crd"]["spec"]["names"]["kind"])
        crd = f"crd/{kind.lower()}.constraints.gatekeeper.sh"
        poll(
            f"{crd} (ConstraintTemplate {bundle.name})",
            180,
            functools.partial(exists, kube, crd),
        )
        kube.kubectl("wait", "--for", "condition=established", crd, "--timeout", "120s")
        kube.kubectl("apply", "-f", admission.rel(ctx, bundle.constraint))
        name = str(yaml.safe_load(bundle.constraint.read_text(encoding="utf-8"))["metadata"]["name"])
        constraints.append((kind, name))
    kube.kubectl("apply", "-f", admission.SYNC_CONFIG)
    return constraints


def exists(kube: Kube, ref: str) -> bool:
    return kube.kubectl("get", ref, check=False, record=False).returncode == 0


def enforced(kube: Kube, kind: str, name: str) -> bool:
    done = kube.kubectl("get", kind.lower(), name, "-o", "json", check=False, record=False)
    if done.returncode != 0:
        return False
    pods = (json.loads(done.stdout).get("status") or {}).get("byPod") or []
    return bool(pods) and all(p.get("enforced") is True for p in pods)


def cluster_policy(kube: Kube, state: State) -> Path:
    """The ClusterImagePolicy for this cluster: signatures read from the registry container."""
    ctx = kube.ctx
    signer = signing.configured(ctx)
    local = oci_registry.configured()
    mode: cluster_image_policy.Mode = signer.mode
    if mode == "key":
        doc = cluster_image_policy.render(
            ctx.root,
            ctx.policy,
            "key",
            image_glob=f"{local.address}/**",
            public_key=signer.public_key,
            sources=[f"{state.registry_ip}:{REGISTRY_PORT_IN_CONTAINER}/{IMAGE_NAME}"],
        )
    else:
        target = os.environ.get("SECURE_IOT_REGISTRY", "")
        doc = cluster_image_policy.render(
            ctx.root, ctx.policy, "keyless", image_glob=f"{target}/**" if target else "**"
        )
    path = ctx.stage_dir("cluster") / f"cip-{mode}.yaml"
    cluster_image_policy.write(path, doc, cluster_image_policy.TEMPLATES[mode])
    kube.rec.add_output(path, CIP_MEDIA_TYPE)
    kube.kubectl("apply", "-f", admission.rel(ctx, path))
    return path


# --- deploy ------------------------------------------------------------------------------


def ready(ctx: Context, rec: StageRecord) -> tuple[Kube, State]:
    """deploy/demo prerequisites: engine, tools, and the cluster `cluster` made, still running."""
    eng = engine(rec)
    tools = cluster_tools(ctx)
    state = recorded_state(ctx)
    kube = Kube(ctx, rec, eng, tools, state.cluster)
    if state.cluster not in kube.clusters():
        raise ClusterError(f"no kind cluster {state.cluster!r} is running: run `nox -s cluster` first")
    running = kube.run("engine", ["inspect", "--format", "{{.State.Running}}", state.registry_container], check=False)
    if running.stdout.strip() != "true":
        raise ClusterError(
            f"the registry container {state.registry_container[:12]} is not running: run `nox -s cluster`"
        )
    kube.export_kubeconfig()
    return kube, state


def built_image(ctx: Context, rec: StageRecord) -> tuple[str, str]:
    image = ctx.evidence.output("build", MANIFEST_MEDIA_TYPE)
    if "@sha256:" not in image.name or not DIGEST.match(image.digest):
        raise EvidenceError(f"build evidence names {image.name}: not an image by digest")
    rec.add_oci(image.name, image.digest, MANIFEST_MEDIA_TYPE, output=False)
    return image.name.split("@", 1)[0], image.digest


# --- demo --------------------------------------------------------------------------------


def demo_pod(name: str, namespace: str, image: str) -> dict[str, Any]:
    """A pod every Gatekeeper constraint and the restricted Pod Security level accept."""
    restricted = {
        "allowPrivilegeEscalation": False,
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": "secure-iot-demo", "app.kubernetes.io/part-of": "secure-iot"},
        },
        "spec": {
            "automountServiceAccountToken": False,
            "containers": [{"name": "server", "image": image, "securityContext": restricted}],
        },
    }


def dry_run(kube: Kube, pod: dict[str, Any], record: bool = True) -> Completed:
    return kube.kubectl("create", "--dry-run=server", "-f", "-", stdin=json.dumps(pod), check=False, record=record)


def denial(done: Completed) -> str:
    return " ".join(done.stderr.split())


def step_signed(kube: Kube, image: str) -> Check:
    done = dry_run(kube, demo_pod("demo-signed", admission.NAMESPACE, image))
    if done.returncode == 0:
        return Check("signed image admitted", True, f"{image} in namespace {admission.NAMESPACE}")
    return Check("signed image admitted", False, f"rejected: {denial(done)}")


def step_unsigned(kube: Kube, image: str) -> Check:
    name = "unsigned image rejected by policy-controller"
    done = dry_run(kube, demo_pod("demo-unsigned", admission.NAMESPACE, image))
    message = denial(done)
    if done.returncode == 0:
        return Check(name, False, f"ADMITTED: {image}")
    ok = 'admission webhook "policy.sigstore.dev" denied the request' in message and bool(
        re.search(r"no signatures found|no matching attestations", message)
    )
    return Check(
        name, ok, message if ok else f"rejected, but not by policy-controller for a missing signature: {message}"
    )


def step_unprotected(kube: Kube, image: str) -> Check:
    name = "pod in an unlabelled namespace rejected by Gatekeeper"
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": DEMO_UNPROTECTED_NAMESPACE}}
    kube.kubectl("apply", "-f", "-", stdin=json.dumps(namespace))
    pod = demo_pod("demo-unprotected", DEMO_UNPROTECTED_NAMESPACE, image)
    expected = f'namespace "{DEMO_UNPROTECTED_NAMESPACE}" is not protected by the sigstore policy-controller'
    last: list[Completed] = []

    def decided() -> bool:  # Gatekeeper knows the new namespace once its sync has caught up
        last[:] = [dry_run(kube, pod, record=False)]
        return last[0].returncode == 0 or expected in denial(last[0])

    with contextlib.suppress(ClusterError):  # judged on the answer below either way
        poll(f"Gatekeeper to sync namespace {DEMO_UNPROTECTED_NAMESPACE}", 90, decided)
    done = dry_run(kube, pod)
    kube.kubectl("delete", "namespace", DEMO_UNPROTECTED_NAMESPACE, "--wait=false", check=False)
    message = denial(done)
    if done.returncode == 0:
        return Check(name, False, f"ADMITTED in namespace {DEMO_UNPROTECTED_NAMESPACE}")
    ok = 'admission webhook "validation.gatekeeper.sh" denied the request' in message and expected in message
    return Check(name, ok, message if ok else f"rejected, but not for the unprotected namespace: {message}")


def unsigned_image(ctx: Context, built: str) -> str:
    """The build's base image: built by the pipeline, in the registry, never signed."""
    for art in ctx.evidence.stage("build").get("inputs", []):
        if art.get("kind") == "oci" and art.get("media_type") == MANIFEST_MEDIA_TYPE and art["name"] != built:
            return str(art["name"])
    raise EvidenceError("the build evidence names no base image to use as the unsigned image")


# --- teardown ----------------------------------------------------------------------------
