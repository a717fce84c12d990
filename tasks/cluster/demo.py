"""The talk's admission demo: one step per claim, each decided by the API server's answer."""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
from pathlib import Path
from typing import Any

from tasks import admission, signing
from tasks.cluster.errors import ClusterError
from tasks.cluster.kube import Kube, poll
from tasks.container import oci_registry
from tasks.context import Context
from tasks.core import atomic, runner
from tasks.core.checks import Check
from tasks.core.errors import EvidenceError
from tasks.core.evidence import StageRecord
from tasks.core.image_ref import ImageRef
from tasks.core.media_types import MANIFEST_MEDIA_TYPE
from tasks.core.recorded import BuiltImage, ImageBuild
from tasks.core.runner import Completed

DEMO_UNPROTECTED_NAMESPACE = "secure-iot-demo-unprotected"


def built_image(ctx: Context, rec: StageRecord) -> ImageRef:
    """The image the build stage pushed (by digest), recorded as this stage's input."""
    image = BuiltImage.read(ctx.evidence).image
    rec.add_oci(str(image), image.digest, MANIFEST_MEDIA_TYPE, output=False)
    return image


def admitted_pods(kube: Kube) -> list[str]:
    """The release's pods exist (the webhooks admitted what the ReplicaSet created), or the
    FailedCreate events say why not."""
    selector = f"app.kubernetes.io/instance={admission.RELEASE}"
    found: list[str] = []

    def created() -> bool:
        done = kube.kubectl("get", "pods", "-n", admission.NAMESPACE, "-l", selector, "-o", "name", record=False)
        found[:] = done.stdout.split()
        return bool(found)

    try:
        poll(f"the ReplicaSet of {admission.RELEASE} to create its pods", 60, created)
    except ClusterError as exc:
        events = kube.kubectl(
            "get",
            "events",
            "-n",
            admission.NAMESPACE,
            "--field-selector",
            "reason=FailedCreate",
            "-o",
            "jsonpath={.items[*].message}",
            check=False,
        )
        raise ClusterError(f"{exc}; FailedCreate: {events.stdout.strip() or 'none recorded'}") from exc
    return found


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
    base = ImageBuild.read(ctx.evidence).base_image
    if str(base) == built:
        raise EvidenceError("the build evidence names no base image to use as the unsigned image: rerun `nox -s build`")
    return str(base)


# --- the full demo (both engines): policy-controller's refusals, Gatekeeper's, FailedCreate --------

POLICY_CONTROLLER_WEBHOOK = 'admission webhook "policy.sigstore.dev" denied the request'
GATEKEEPER_WEBHOOK = 'admission webhook "validation.gatekeeper.sh" denied the request'
OTHER_KEY = r"signature key validation failed|no matching signatures|no matching attestations"
# a real advisory (the one the scan tests plant): PyYAML 5.3.1, arbitrary code execution
BLOCKING_MATCH = {
    "vulnerability": {"id": "GHSA-8q59-q68h-6hv4", "severity": "Critical"},
    "artifact": {"name": "PyYAML", "version": "5.3.1", "type": "python"},
}


def image_cases(ctx: Context, rec: StageRecord, image: str) -> list[admission.Case]:
    """The images policy-controller must judge, made in the local registry: the policy stage's
    fixtures (unsigned, attested-not-signed, missing SBOM, unlisted builder) plus an image
    signed by another key and one whose vuln attestation carries a blocking finding."""
    reg = oci_registry.configured()
    signer = signing.configured(ctx)
    cosign = ctx.tool("cosign")
    out = admission.cases(ctx, rec, reg, signer, image)
    found = admission.predicates(ctx, admission.required_kinds(ctx.policy))

    other = admission.fixture(ctx, rec, reg, "other-key")
    with tempfile.TemporaryDirectory(dir=ctx.stage_dir("demo")) as tmp:
        stranger = signing.Signer("key", Path(tmp))
        runner.run(rec, cosign, ["generate-key-pair", "--output-key-prefix", Path(tmp) / "cosign"], env=stranger.env())
        admission.sign_image(rec, cosign, stranger, other)
        admission.attest(rec, cosign, stranger, other, found)
    out.append(admission.Case("signed by another key", other, admit=False, reason=OTHER_KEY))

    if "vuln" in found:
        vulnerable = admission.fixture(ctx, rec, reg, "blocking-vuln")
        predicate = json.loads(found["vuln"].read_text(encoding="utf-8"))
        predicate["scanner"]["result"]["matches"] = [*predicate["scanner"]["result"].get("matches", []), BLOCKING_MATCH]
        path = ctx.stage_dir("demo") / "blocking-vuln.predicate.json"
        atomic.write_json(path, predicate)
        admission.sign_image(rec, cosign, signer, vulnerable)
        admission.attest(rec, cosign, signer, vulnerable, {**found, "vuln": path})
        out.append(
            admission.Case(
                "signed, vuln attestation with a blocking finding",
                vulnerable,
                admit=False,
                reason=r"GHSA-8q59-q68h-6hv4 \(Critical\)",
            )
        )
    return out


def step_case(kube: Kube, number: int, case: admission.Case) -> Check:
    name = f"{case.name}: {'admitted' if case.admit else 'refused by policy-controller'}"
    done = dry_run(kube, demo_pod(f"demo-case-{number}", admission.NAMESPACE, case.image))
    message = denial(done)
    if case.admit:
        return Check(name, done.returncode == 0, case.image if done.returncode == 0 else f"rejected: {message}")
    if done.returncode == 0:
        return Check(name, False, f"ADMITTED: {case.image}")
    ok = POLICY_CONTROLLER_WEBHOOK in message and re.search(case.reason, message) is not None
    return Check(name, ok, message if ok else f"rejected, but not for /{case.reason}/: {message}")


def step_gatekeeper(kube: Kube, name: str, pod: dict[str, Any], expected: str) -> Check:
    done = dry_run(kube, pod)
    message = denial(done)
    if done.returncode == 0:
        return Check(name, False, f"ADMITTED: {pod['metadata']['name']}")
    ok = GATEKEEPER_WEBHOOK in message and re.search(expected, message) is not None
    return Check(name, ok, message if ok else f"rejected, but not for /{expected}/: {message}")


def step_privileged(kube: Kube, image: str) -> Check:
    """In a namespace without Pod Security enforcement (in `secure` the API server's own
    restricted level refuses it before any webhook is asked): Gatekeeper's constraint refuses it."""
    pod = demo_pod("demo-privileged", "default", image)
    pod["spec"]["containers"][0]["securityContext"] = {"privileged": True, "runAsNonRoot": True, "runAsUser": 10001}
    return step_gatekeeper(kube, "privileged pod refused by Gatekeeper", pod, r"is privileged")


def step_by_tag(kube: Kube, repository: str) -> Check:
    """By tag in a namespace policy-controller does not watch (there its mutating webhook would
    resolve the tag to a digest first): Gatekeeper's digest constraint refuses it."""
    pod = demo_pod("demo-by-tag", "default", f"{repository}:latest")
    return step_gatekeeper(kube, "image by tag refused by Gatekeeper", pod, r"not pinned by digest")


def step_failed_create(kube: Kube, image: str) -> Check:
    """A Deployment every webhook admits (signed image, pinned by digest, protected namespace)
    whose pod template is not `restricted`: Pod Security admission only warns on the Deployment
    and enforces on pods, so the pods its ReplicaSet creates are refused and the controller
    records FailedCreate with the API server's reason."""
    name = "controller-created pod refused: FailedCreate event"
    pod = demo_pod("demo-controller", admission.NAMESPACE, image)
    pod["spec"]["containers"][0].pop("securityContext")
    labels = {"app.kubernetes.io/name": "secure-iot-demo-controller", "app.kubernetes.io/part-of": "secure-iot"}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "demo-not-restricted", "namespace": admission.NAMESPACE, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": pod["spec"]},
        },
    }
    created = kube.kubectl("apply", "-f", "-", stdin=json.dumps(deployment), check=False)
    if created.returncode != 0:
        return Check(name, False, f"the Deployment itself was refused: {denial(created)}")
    seen: list[str] = []

    def failed() -> bool:
        done = kube.kubectl(
            "get",
            "events",
            "-n",
            admission.NAMESPACE,
            "--field-selector",
            "reason=FailedCreate",
            "-o",
            "json",
            check=False,
            record=False,
        )
        items = json.loads(done.stdout or "{}").get("items", []) if done.returncode == 0 else []
        seen[:] = [str(e.get("message", "")) for e in items if "demo-not-restricted" in str(e.get("involvedObject"))]
        return bool(seen)

    try:
        poll("a FailedCreate event for demo-not-restricted", 60, failed)
    except ClusterError as exc:
        return Check(name, False, str(exc))
    finally:
        kube.kubectl(
            "delete", "deployment", "demo-not-restricted", "-n", admission.NAMESPACE, "--wait=false", check=False
        )
    ok = any("violates PodSecurity" in m for m in seen)
    return Check(name, ok, " ".join(seen[0].split()) if seen else "no event")
