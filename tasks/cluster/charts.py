"""The pinned Gatekeeper and policy-controller charts, installed by digest; our policies in the cluster."""

from __future__ import annotations

import functools
import json
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tasks import admission, signing
from tasks.admission import cluster_image_policy
from tasks.cluster.errors import ClusterError
from tasks.cluster.kube import Kube, exists, poll
from tasks.cluster.registry_wiring import REGISTRY_PORT_IN_CONTAINER
from tasks.cluster.state import State
from tasks.container import oci_registry
from tasks.container.build import IMAGE_NAME
from tasks.core import atomic
from tasks.core.cache import cache_root
from tasks.core.media_types import CIP_MEDIA_TYPE


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
        constraint = with_local_registry(yaml.safe_load(bundle.constraint.read_text(encoding="utf-8")))
        kube.kubectl("apply", "-f", "-", stdin=json.dumps(constraint))
        name = str(constraint["metadata"]["name"])
        constraints.append((kind, name))
    kube.kubectl("apply", "-f", admission.SYNC_CONFIG)
    return constraints


def with_local_registry(constraint: dict[str, Any]) -> dict[str, Any]:
    """The allowed-registries constraint as committed, plus the local registry this run pushes to
    (SECURE_IOT_REGISTRY_PORT may move it off 127.0.0.1:5000); every other constraint unchanged."""
    if constraint.get("kind") != "K8sAllowedRegistries":
        return constraint
    registries = constraint.setdefault("spec", {}).setdefault("parameters", {}).setdefault("registries", [])
    address = oci_registry.configured().address
    if address not in registries:
        registries.append(address)
    return constraint


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
            # kind: pods reach the registry container on the kind network; local: the same address
            sources=[f"{state.registry_ip}:{REGISTRY_PORT_IN_CONTAINER}/{IMAGE_NAME}"] if state.registry_ip else [],
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


# Docker Hub (node, registry and Gatekeeper images) and GHCR (policy-controller's image).
IMAGE_REGISTRIES = {
    "https://registry-1.docker.io/v2/": "Docker Hub (kind node, registry and Gatekeeper images)",
    "https://ghcr.io/v2/": "GHCR (policy-controller image)",
}


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
