"""Admission control (talk 09/10) with the real helm and gator: the chart, the Gatekeeper
suites, the rendered chart against the constraints, and the deliberately bad manifest."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks import admission, toolchain
from tasks.context import Context
from tasks.core.evidence import EvidenceStore, StageRecord
from tasks.core.media_types import MANIFEST_MEDIA_TYPE
from tasks.core.runner import Tool
from tests.support.project import REPO, pinned, run_tasks

CHART = REPO / admission.CHART
GATEKEEPER = REPO / admission.GATEKEEPER
SUITES = sorted(p.parent.name for p in GATEKEEPER.glob("*/suite.yaml"))
DIGEST = "sha256:" + "ab" * 32
REPOSITORY = "127.0.0.1:5000/secure-iot-server"


def _run(tool: str, *args: str | Path, cwd: Path = REPO, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if home is not None:  # helm: no user configuration, repositories or plugins
        env.update({f"HELM_{d}_HOME": str(home / d.lower()) for d in ("CACHE", "CONFIG", "DATA")})
    return subprocess.run(
        [str(pinned(tool)), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def helm_template(tmp_path: Path, *values: str) -> subprocess.CompletedProcess[str]:
    sets = [arg for v in values for arg in ("--set-string", v)]
    return _run("helm", "template", "secure-iot", CHART, "--namespace", "secure", *sets, home=tmp_path / "helm")


def rendered(tmp_path: Path, *values: str) -> dict[str, dict[str, Any]]:
    done = helm_template(tmp_path, f"image.repository={REPOSITORY}", f"image.digest={DIGEST}", *values)
    assert done.returncode == 0, done.stderr
    return {doc["kind"]: doc for doc in yaml.safe_load_all(done.stdout) if doc}


@pytest.fixture
def policy_root(tmp_path: Path) -> Path:
    """A project root with a copy of the chart, the Gatekeeper policies and the tool pins."""
    root = tmp_path / "project"
    shutil.copytree(CHART, root / admission.CHART)
    shutil.copytree(GATEKEEPER, root / admission.GATEKEEPER)
    shutil.copy(REPO / "tools.lock", root / "tools.lock")
    return root


def pinned_tool(name: str) -> Tool:
    return toolchain.resolve(name, REPO, StageRecord(stage="tools", root=REPO))


def context(root: Path) -> tuple[Context, StageRecord]:
    rec = StageRecord(stage="policy", root=root)
    return Context.create(root=root, out=root / "out").bind(rec), rec


# --- the chart ---------------------------------------------------------------------------


def test_chart_renders_the_image_by_digest_with_restricted_security(tmp_path: Path) -> None:
    docs = rendered(tmp_path)
    assert set(docs) == {"Deployment", "Service", "ServiceAccount", "NetworkPolicy"}
    pod = docs["Deployment"]["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["image"] == f"{REPOSITORY}@{DIGEST}"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["spec"]["securityContext"]["runAsUser"] == 10001
    assert pod["spec"]["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert docs["ServiceAccount"]["automountServiceAccountToken"] is False
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/var/lib/secure-iot", "/tmp"}
    assert all("emptyDir" in v for v in pod["spec"]["volumes"])
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {e["name"]: e["value"] for e in container["env"]} == {
        "SECURE_IOT_HOST": "0.0.0.0",  # noqa: S104 - inside the pod, behind the NetworkPolicy
        "SECURE_IOT_PORT": "8080",
        "SECURE_IOT_DB": "/var/lib/secure-iot/devices.db",
    }
    assert set(container["resources"]) == {"requests", "limits"}
    assert docs["Service"]["spec"]["type"] == "ClusterIP"
    for doc in docs.values():
        labels = doc["metadata"]["labels"]
        for key in ("name", "instance", "version", "part-of"):
            assert labels[f"app.kubernetes.io/{key}"], (doc["kind"], key)


def test_network_policy_denies_all_but_ingress_on_the_app_port(tmp_path: Path) -> None:
    policy = rendered(tmp_path)["NetworkPolicy"]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["egress"] == []
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    assert rule["from"], "ingress is limited to the peers selected in values"
    dns = rendered(tmp_path, "networkPolicy.allowDNS=true")["NetworkPolicy"]["spec"]["egress"]
    assert [p["port"] for p in dns[0]["ports"]] == [53, 53]


def test_mesh_options_are_off_by_default_and_strict_when_on(tmp_path: Path) -> None:
    plain = rendered(tmp_path)
    assert "PeerAuthentication" not in plain
    assert "annotations" not in plain["Deployment"]["spec"]["template"]["metadata"]
    meshed = rendered(tmp_path, "mesh.linkerd.enabled=true", "mesh.istio.enabled=true")
    annotations = meshed["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["linkerd.io/inject"] == "enabled"
    assert annotations["config.linkerd.io/default-inbound-policy"] == "all-authenticated"
    assert meshed["PeerAuthentication"]["spec"]["mtls"] == {"mode": "STRICT"}


def test_chart_refuses_a_tag_only_image(tmp_path: Path) -> None:
    done = helm_template(tmp_path, f"image.repository={REPOSITORY}", "image.tag=latest")
    assert done.returncode != 0
    assert 'image.tag="latest" is not allowed: images are deployed by digest only' in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ((), "image.digest is required: deploy by digest"),
        (("image.digest=sha256:abc",), 'image.digest="sha256:abc" is malformed'),
        (("image.digest=" + DIGEST.upper(),), "is malformed: expected sha256: followed by 64 lowercase hex"),
        ((f"image.digest={DIGEST}", "image.tag=1.0.0"), 'image.tag="1.0.0" is not allowed'),
        ((f"image.digest={DIGEST}", f"image.repository={REPOSITORY}:1.0.0"), "must name a repository only"),
        ((f"image.digest={DIGEST}", f"image.repository={REPOSITORY}@{DIGEST}"), "must name a repository only"),
    ],
)
def test_chart_refuses_anything_but_a_well_formed_digest(tmp_path: Path, values: tuple[str, ...], message: str) -> None:
    done = helm_template(tmp_path, *values)
    assert done.returncode != 0
    assert message in done.stderr


def test_helm_lint_is_clean(tmp_path: Path) -> None:
    for values in ((), ("--set-string", f"image.digest={DIGEST}")):
        done = _run("helm", "lint", "--strict", CHART, *values, home=tmp_path / "helm")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "0 chart(s) failed" in done.stdout
        assert "[WARNING]" not in done.stdout and "[ERROR]" not in done.stdout


def test_kind_cluster_uses_the_containerd_hosts_directory() -> None:
    config = yaml.safe_load((REPO / "infra/kind/cluster.yaml").read_text())
    assert config["kind"] == "Cluster" and config["apiVersion"] == "kind.x-k8s.io/v1alpha4"
    assert [n["role"] for n in config["nodes"]] == ["control-plane", "worker"]
    (patch,) = config["containerdConfigPatches"]
    assert 'config_path = "/etc/containerd/certs.d"' in patch


# --- the Gatekeeper policies ---------------------------------------------------------------


def test_templates_are_rego_v1() -> None:
    for template in GATEKEEPER.glob("*/template.yaml"):
        doc = yaml.safe_load(template.read_text())
        (code,) = doc["spec"]["targets"][0]["code"]
        assert code["engine"] == "Rego" and code["source"]["version"] == "v1", template
        rego = code["source"]["rego"]
        assert "violation contains {" in rego and " if {" in rego, template
        assert not re.search(r"^violation\[", rego, re.MULTILINE), template


def test_gator_still_rejects_the_rego_v1_import(tmp_path: Path) -> None:
    """Tripwire: gator 3.23 refuses `import rego.v1`, so the templates omit it (v1 implies it).
    When this fails, gator accepts the import: add it back to the templates."""
    bundle = tmp_path / "k8simagedigests"
    shutil.copytree(GATEKEEPER / "k8simagedigests", bundle)
    template = bundle / "template.yaml"
    text = template.read_text()
    template.write_text(
        text.replace("package k8simagedigests\n", "package k8simagedigests\n\n              import rego.v1\n")
    )
    done = _run("gator", "verify", bundle / "suite.yaml")
    assert done.returncode != 0
    assert 'bad import: "rego.v1"' in done.stdout + done.stderr


@pytest.mark.parametrize("suite", SUITES)
def test_gator_suite_passes(suite: str) -> None:
    done = _run("gator", "verify", "--verbose", GATEKEEPER / suite / "suite.yaml")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "--- PASS" in done.stdout and "--- FAIL" not in done.stdout


def test_every_suite_has_allowed_and_disallowed_cases() -> None:
    assert len(SUITES) == 5
    for suite in SUITES:
        data = yaml.safe_load((GATEKEEPER / suite / "suite.yaml").read_text())
        cases = [c for t in data["tests"] for c in t["cases"]]
        denied = [c for c in cases if any(a.get("violations") not in ("no", 0, False) for a in c["assertions"])]
        assert denied and len(denied) < len(cases), suite
        assert all(any("message" in a for a in c["assertions"]) for c in denied if c["name"] != "pod-without-labels")


def test_a_weakened_policy_fails_its_suite(policy_root: Path) -> None:
    """Prove the suites can fail: accept tags in the digest policy, the disallowed cases fail."""
    template = policy_root / admission.GATEKEEPER / "k8simagedigests" / "template.yaml"
    text = template.read_text()
    assert "@sha256:[a-f0-9]{64}$" in text
    template.write_text(text.replace("@sha256:[a-f0-9]{64}$", "(@sha256:[a-f0-9]{64}|:[^/]+)$"))
    done = _run("gator", "verify", "--verbose", template.parent / "suite.yaml")
    assert done.returncode != 0
    assert "--- FAIL: pod-with-tag" in done.stdout
    assert "--- FAIL: cronjob-with-tag" in done.stdout
    assert "--- PASS: pod-with-truncated-digest" in done.stdout


def test_a_wrong_expectation_fails_its_suite(policy_root: Path) -> None:
    suite = policy_root / admission.GATEKEEPER / "k8snoprivilegedhostaccess" / "suite.yaml"
    suite.write_text(suite.read_text().replace("hostNetwork is true", "hostNetwork is fine"))
    done = _run("gator", "verify", suite)
    assert done.returncode != 0
    assert 'got 0 violations containing "hostNetwork is fine"' in done.stdout


# --- rendered chart and bad manifest against all constraints --------------------------------


def test_rendered_chart_in_protected_namespace_is_admitted(tmp_path: Path) -> None:
    ctx, rec = context(REPO)
    manifest = tmp_path / "rendered.yaml"
    done = helm_template(tmp_path, f"image.repository={REPOSITORY}", f"image.digest={DIGEST}")
    manifest.write_text(done.stdout)
    namespace = REPO / admission.PROTECTED_NAMESPACE
    bundles = admission.policy_bundles(ctx)
    assert (
        admission.gator_test(ctx, rec, pinned_tool("gator"), bundles, [manifest, namespace], tmp_path / "a.json") == []
    )
    # Without the protected Namespace object, the sigstore-namespace policy fails closed.
    unknown = admission.gator_test(ctx, rec, pinned_tool("gator"), bundles, [manifest], tmp_path / "b.json")
    assert [(v.constraint_kind, v.subject) for v in unknown] == [
        ("K8sRequireSigstoreNamespace", "Deployment secure/secure-iot-secure-iot-server")
    ]
    assert 'namespace "secure" is not known to Gatekeeper' in unknown[0].message


def test_bad_manifest_is_rejected_for_the_expected_reasons(tmp_path: Path) -> None:
    ctx, rec = context(REPO)
    bundles = admission.policy_bundles(ctx)
    out = tmp_path / "bad.json"
    violations = admission.gator_test(ctx, rec, pinned_tool("gator"), bundles, [REPO / admission.BAD_MANIFEST], out)
    by_kind = {v.constraint_kind: v for v in violations}
    assert sorted(by_kind) == sorted(admission.BAD_MANIFEST_REASONS)
    assert len(violations) == len(by_kind)
    for kind, pattern in admission.BAD_MANIFEST_REASONS.items():
        assert re.search(pattern, by_kind[kind].message), (kind, by_kind[kind].message)
        assert by_kind[kind].subject == "Deployment unprotected/bad-secure-iot"
        assert by_kind[kind].enforcement_action == "deny"
    assert json.loads(out.read_text())[0]["violatingObject"]["kind"] == "Deployment"


# --- the stage, end to end -------------------------------------------------------------------


def _checks(root: Path) -> dict[str, dict[str, Any]]:
    data = json.loads((root / "out" / "policy" / "checks.json").read_text())
    return {c["name"]: c for c in data["checks"]}


def test_policy_stage_passes_with_a_test_digest_and_says_so(policy_root: Path) -> None:
    result = run_tasks("policy", root=policy_root)
    assert result.returncode == 0, result.output
    assert "fixed test digest" in result.output
    checks = _checks(policy_root)
    assert len(checks) == 14 and all(c["passed"] for c in checks.values())
    evidence = json.loads((policy_root / "out" / "evidence.json").read_text())["stages"]["policy"]
    assert evidence["verdict"] == "pass"
    assert evidence["details"]["image"]["ref"] == f"{REPOSITORY}@{admission.TEST_DIGEST}"
    assert "fixed test digest" in evidence["details"]["image"]["source"]
    outputs = {o["name"] for o in evidence["outputs"]}
    assert {"out/policy/rendered/secure-iot.yaml", "out/policy/gator-bad-manifest.json"} <= outputs
    assert {c["tool"] for c in evidence["commands"]} == {"gator", "helm"}


def test_policy_stage_uses_the_digest_from_build_evidence(policy_root: Path) -> None:
    store = EvidenceStore(policy_root / "out" / "evidence.json")
    build = StageRecord(stage="build", root=policy_root, verdict="pass")
    build.add_oci(f"{REPOSITORY}@{DIGEST}", DIGEST, MANIFEST_MEDIA_TYPE)
    store.record(build)
    result = run_tasks("policy", root=policy_root)
    assert result.returncode == 0, result.output
    assert "fixed test digest" not in result.output
    rendered_chart = (policy_root / "out" / "policy" / "rendered" / "secure-iot.yaml").read_text()
    assert f'image: "{REPOSITORY}@{DIGEST}"' in rendered_chart
    evidence = json.loads(store.path.read_text())["stages"]["policy"]
    assert {
        "name": f"{REPOSITORY}@{DIGEST}",
        "digest": DIGEST,
        "media_type": MANIFEST_MEDIA_TYPE,
        "kind": "oci",
    } in (evidence["inputs"])


def test_policy_stage_fails_when_the_bad_manifest_is_admitted(policy_root: Path) -> None:
    """If the bad manifest stops being bad for one reason, the stage says which and fails."""
    bad = policy_root / admission.BAD_MANIFEST
    bad.write_text(bad.read_text().replace("privileged: true", "privileged: false"))
    result = run_tasks("policy", root=policy_root)
    assert result.returncode == 1, result.output
    checks = _checks(policy_root)
    failed = {name for name, c in checks.items() if not c["passed"]}
    assert failed == {"bad manifest: K8sNoPrivilegedHostAccess"}
    assert checks["bad manifest: K8sNoPrivilegedHostAccess"]["detail"] == "NOT denied"
    evidence = json.loads((policy_root / "out" / "evidence.json").read_text())["stages"]["policy"]
    assert evidence["verdict"] == "fail"
    assert "bad manifest: K8sNoPrivilegedHostAccess" in evidence["reason"]


def test_policy_stage_fails_when_the_chart_would_be_denied(policy_root: Path) -> None:
    """A chart regression (a privileged container) is caught before any cluster sees it."""
    deployment = policy_root / admission.CHART / "templates" / "deployment.yaml"
    deployment.write_text(
        deployment.read_text().replace(
            "          securityContext:\n", "          securityContext:\n            privileged: true\n", 1
        )
    )
    result = run_tasks("policy", root=policy_root)
    assert result.returncode == 1, result.output
    checks = _checks(policy_root)
    admitted = checks["rendered chart admitted"]
    assert not admitted["passed"]
    assert (
        'K8sNoPrivilegedHostAccess: Deployment secure-iot-secure-iot-server: containers "server" is privileged'
        in (admitted["detail"])
    )


def test_policy_stage_fails_when_the_chart_does_not_render(policy_root: Path) -> None:
    values = policy_root / admission.CHART / "values.yaml"
    values.write_text(values.read_text().replace('  tag: ""', '  tag: "latest"'))
    result = run_tasks("policy", root=policy_root)
    assert result.returncode == 1, result.output
    checks = _checks(policy_root)
    assert 'image.tag="latest" is not allowed' in checks["chart renders by digest"]["detail"]
    assert checks["rendered chart admitted"]["detail"] == "not tested: the chart did not render"
    assert checks["bad manifest: K8sImageDigests"]["passed"]


def test_policy_stage_fails_closed_without_policies(policy_root: Path) -> None:
    shutil.rmtree(policy_root / admission.GATEKEEPER / "k8srequiredlabels" / "samples")
    (policy_root / admission.GATEKEEPER / "k8srequiredlabels" / "suite.yaml").unlink()
    result = run_tasks("policy", root=policy_root)
    assert result.returncode == 2
    assert "k8srequiredlabels: suite.yaml missing next to template.yaml" in result.output
