"""The talk's admission demo: one step per claim, each decided by the API server's answer."""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

from tasks import admission
from tasks.cluster.engine import cluster_tools, engine
from tasks.cluster.errors import ClusterError
from tasks.cluster.kube import Kube, poll
from tasks.cluster.state import State, recorded_state
from tasks.context import Context
from tasks.core.checks import Check
from tasks.core.errors import EvidenceError
from tasks.core.evidence import StageRecord
from tasks.core.media_types import DIGEST, MANIFEST_MEDIA_TYPE
from tasks.core.runner import Completed

DEMO_UNPROTECTED_NAMESPACE = "secure-iot-demo-unprotected"


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
