"""The chain end to end, then the tamper matrix: real buildah, registry, syft, grype, cosign, OPA.

One session-scoped chain (tests/support/chain.py: build, sbom, scan, compliance, provenance, keys, sign) runs against a
registry of its own on a free loopback port. Each tamper case then changes one thing —
with the real cosign, against the real registry — and `verify` must fail naming it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tasks.policy import rego
from tests.support.chain import PASSWORD, Chain, copy_image, sh, variant
from tests.support.project import REPO, pinned

pytestmark = pytest.mark.slow


def cosign(chain: Chain, *args: str | Path) -> str:
    return sh(
        pinned("cosign"), *args, "--allow-insecure-registry", "--allow-http-registry", env={"COSIGN_PASSWORD": PASSWORD}
    )


def predicate(chain: Chain, kind: str) -> Path:
    return {
        "spdxjson": chain.out / "sbom" / "image.spdx.json",
        "slsaprovenance1": chain.out / "provenance" / "image.predicate.json",
        "vuln": chain.out / "sign" / "vuln.predicate.json",
        "compliance": chain.out / "compliance" / "openscap-result.predicate.json",
    }[kind]


def edited(chain: Chain, kind: str, name: str, change: Any) -> Path:
    data = json.loads(predicate(chain, kind).read_text())
    change(data)
    path = chain.workdir / f"{name}.{kind}.json"
    path.write_text(json.dumps(data))
    return path


def sign_fully(
    chain: Chain,
    ref: str,
    *,
    key: Path | None = None,
    skip: tuple[str, ...] = (),
    replace: dict[str, Path] | None = None,
) -> None:
    key = key or chain.keys / "cosign.key"
    cosign(chain, "sign", "--yes", "--key", key, "--tlog-upload=false", ref)
    for kind in ("spdxjson", "slsaprovenance1", "vuln", "compliance"):
        if kind in skip:
            continue
        path = (replace or {}).get(kind, predicate(chain, kind))
        kind_type = rego.cosign_type(kind)  # the project's own types by their predicate type URI
        cosign(
            chain, "attest", "--yes", "--key", key, "--tlog-upload=false", "--type", kind_type, "--predicate", path, ref
        )


def failed(report: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["detail"] for c in report.get("checks", []) if not c["passed"]}


# --- the untouched chain ----------------------------------------------------------------


def test_untouched_image_passes(chain: Chain) -> None:
    code, report, output = chain.verify()
    assert code == 0, output
    assert report["passed"] is True
    names = {c["name"] for c in report["checks"]}
    assert {"signature", "attestation slsaprovenance1", "attestation spdxjson", "attestation vuln"} <= names


def test_provenance_matches_schema_and_evidence(chain: Chain) -> None:
    statement = json.loads((chain.out / "provenance" / "image.provenance.json").read_text())
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    assert "sha256:" + statement["subject"][0]["digest"]["sha256"] == chain.ref.split("@")[1]
    deps = {d.get("name", d["uri"]) for d in statement["predicate"]["buildDefinition"]["resolvedDependencies"]}
    assert {"base-image", "app/requirements.lock", "tools.lock", "buildah"} <= deps
    assert statement["predicate"]["runDetails"]["builder"]["id"] == "urn:secure-iot:builder:local-nox"


def test_blob_bundles_verify_offline_with_the_key(chain: Chain) -> None:
    sbom = chain.out / "sbom" / "image.spdx.json"
    bundle = sbom.with_name(sbom.name + ".sigstore.json")
    assert json.loads(bundle.read_text())["mediaType"].startswith("application/vnd.dev.sigstore.bundle")
    trusted_root = REPO / "infra/policies/sigstore/trusted-root-keymode.json"
    verify = [
        pinned("cosign"),
        "verify-blob",
        "--key",
        chain.keys / "cosign.pub",
        "--bundle",
        bundle,
        "--new-bundle-format",
        "--trusted-root",
        trusted_root,
        "--insecure-ignore-tlog=true",
    ]
    sh(*verify, sbom)
    tampered = chain.workdir / "tampered.spdx.json"
    tampered.write_bytes(sbom.read_bytes() + b" ")
    proc = subprocess.run([str(a) for a in (*verify, tampered)], capture_output=True, text=True, check=False)
    assert proc.returncode != 0 and "invalid signature" in proc.stderr


def test_keys_are_private_and_never_overwritten(chain: Chain) -> None:
    key = chain.keys / "cosign.key"
    assert key.stat().st_mode & 0o777 == 0o600
    before = hashlib.sha256(key.read_bytes()).hexdigest()
    code, output = chain.run("keys")
    assert code == 0 and "kept" in output
    assert hashlib.sha256(key.read_bytes()).hexdigest() == before


def test_compliance_gate_runs_on_the_image(chain: Chain, tmp_path: Path) -> None:
    compliance = json.loads((chain.out / "evidence.json").read_text())["stages"]["compliance"]  # the chain ran it
    details = compliance["details"]
    assert compliance["verdict"] == "pass" and details["required_failed"] == [] and details["blocking_rules"] == []
    assert len(details["waived"]) == details["results"]["fail"]  # every failing rule by its own waiver
    signed = json.loads((chain.out / "compliance" / "openscap-result.predicate.json").read_text())
    assert set(signed["waived"]) == {r for r, v in signed["results"].items() if v == "fail"}
    rule = "xccdf_org.ssgproject.content_rule_partition_for_tmp"
    data = yaml.safe_load((REPO / "security-policy.yaml").read_text())
    data["waivers"] = [w for w in data["waivers"] if w["id"] != rule]
    strict = tmp_path / "policy.yaml"
    strict.write_text(yaml.safe_dump(data, sort_keys=False))
    # on a copy of the chain's evidence: the chain's passing result stays what sign attested
    code, output = chain.run("compliance", env={**copied(chain, tmp_path), "SECURE_IOT_POLICY": str(strict)})
    assert code == 1 and f"1 blocking compliance rule(s) on the image: {rule} (image: fail)" in output


# --- the tamper matrix ------------------------------------------------------------------


def test_1_other_content_under_the_same_tag(chain: Chain) -> None:
    other = variant(chain, "retag")
    copy_image(other, f"{chain.repository}:{chain.tag}")
    try:
        code, report, _ = chain.verify()
        assert code == 1
        assert "now names" in failed(report)[f"tag {chain.tag}"]
    finally:
        copy_image(chain.ref, f"{chain.repository}:{chain.tag}")


def test_2_unsigned_image(chain: Chain) -> None:
    code, report, _ = chain.verify(variant(chain, "unsigned"))
    assert code == 1
    assert "signature" in failed(report) and "attestation spdxjson" in failed(report)


def test_3_signed_by_another_key(chain: Chain) -> None:
    other = chain.workdir / "other"
    other.mkdir()
    sh(
        pinned("cosign"),
        "generate-key-pair",
        "--output-key-prefix",
        other / "cosign",
        env={"COSIGN_PASSWORD": PASSWORD},
    )
    ref = variant(chain, "otherkey")
    sign_fully(chain, ref, key=other / "cosign.key")
    code, report, _ = chain.verify(ref)
    assert code == 1
    assert failed(report)["signature"].startswith("not verified")
    assert "does not verify with the expected key" in failed(report)["attestation slsaprovenance1"]


def test_4_sbom_attestation_missing(chain: Chain) -> None:
    ref = variant(chain, "nosbom")
    sign_fully(chain, ref, skip=("spdxjson",))
    code, report, _ = chain.verify(ref)
    assert code == 1
    assert set(failed(report)) == {"attestation spdxjson"}
    assert failed(report)["attestation spdxjson"].startswith("missing")


def test_5_provenance_for_another_digest(chain: Chain) -> None:
    ref = variant(chain, "othersubject")
    sign_fully(chain, ref, skip=("slsaprovenance1",))
    blob = chain.workdir / "some-other-artifact.bin"
    blob.write_bytes(b"not the image")
    envelope = chain.workdir / "othersubject.intoto.json"
    sh(
        pinned("cosign"),
        "attest-blob",
        "--yes",
        "--key",
        chain.keys / "cosign.key",
        "--tlog-upload=false",
        "--type",
        "slsaprovenance1",
        "--predicate",
        predicate(chain, "slsaprovenance1"),
        "--output-signature",  # the signed DSSE envelope
        envelope,
        blob,
        env={"COSIGN_PASSWORD": PASSWORD},
    )
    cosign(chain, "attach", "attestation", "--attestation", envelope, ref)
    code, report, _ = chain.verify(ref)
    assert code == 1
    detail = failed(report)["attestation slsaprovenance1"]
    assert "not the image digest" in detail, detail


def test_6_builder_not_allowed(chain: Chain) -> None:
    ref = variant(chain, "builder")

    def evil(p: dict[str, Any]) -> None:
        p["runDetails"]["builder"]["id"] = "https://ci.evil.example/builder"

    sign_fully(chain, ref, replace={"slsaprovenance1": edited(chain, "slsaprovenance1", "builder", evil)})
    code, report, _ = chain.verify(ref)
    assert code == 1
    assert (
        "builder https://ci.evil.example/builder is not on the allowed list"
        in failed(report)["attestation slsaprovenance1"]
    )


def test_7_vuln_attestation_with_blocking_finding(chain: Chain) -> None:
    ref = variant(chain, "vulnerable")

    def critical(p: dict[str, Any]) -> None:
        p["scanner"]["result"]["matches"] = [
            {
                "vulnerability": {"id": "GHSA-8q59-q68h-6hv4", "severity": "Critical"},
                "artifact": {"name": "PyYAML", "version": "5.3.1"},
            }
        ]

    sign_fully(chain, ref, replace={"vuln": edited(chain, "vuln", "vulnerable", critical)})
    code, report, _ = chain.verify(ref)
    assert code == 1
    assert "GHSA-8q59-q68h-6hv4 (Critical) in PyYAML@5.3.1" in failed(report)["attestation vuln"]


def test_8_attestation_payload_altered_after_signing(chain: Chain) -> None:
    ref = variant(chain, "altered")
    sign_fully(chain, ref)
    digest = ref.split("@")[1]
    layout = chain.workdir / "altered-att"
    att_tag = f"docker://{chain.repository}:{digest.replace(':', '-')}.att"
    sh(pinned("skopeo"), "copy", "--quiet", "--src-tls-verify=false", att_tag, f"dir:{layout}")
    manifest = json.loads((layout / "manifest.json").read_text())
    for layer in manifest["layers"]:
        blob = layout / layer["digest"].split(":")[1]
        envelope = json.loads(blob.read_text())
        statement = json.loads(base64.b64decode(envelope["payload"]))
        if statement["predicateType"] != "https://slsa.dev/provenance/v1":
            continue
        statement["predicate"]["buildDefinition"]["externalParameters"]["commit"] = "0" * 40
        envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
        data = json.dumps(envelope).encode()
        blob.unlink()
        new_digest = hashlib.sha256(data).hexdigest()
        (layout / new_digest).write_bytes(data)
        layer["digest"], layer["size"] = f"sha256:{new_digest}", len(data)
    (layout / "manifest.json").write_text(json.dumps(manifest))
    sh(pinned("skopeo"), "copy", "--quiet", "--dest-tls-verify=false", f"dir:{layout}", att_tag)
    code, report, _ = chain.verify(ref)
    assert code == 1
    assert "signature does not verify" in failed(report)["attestation slsaprovenance1"]


def test_9_vuln_database_too_old(chain: Chain) -> None:
    ref = variant(chain, "olddb")
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def stale(p: dict[str, Any]) -> None:
        p["scanner"]["db"]["version"] = old

    sign_fully(chain, ref, replace={"vuln": edited(chain, "vuln", "olddb", stale)})
    code, report, _ = chain.verify(ref)
    assert code == 1
    assert f"database was built {old}" in failed(report)["attestation vuln"]
    assert "older than 120h" in failed(report)["attestation vuln"]


def test_10_signature_copied_from_another_image(chain: Chain) -> None:
    ref = variant(chain, "copiedsig")
    source_digest = chain.ref.split("@")[1].replace(":", "-")
    target_digest = ref.split("@")[1].replace(":", "-")
    copy_image(f"{chain.repository}:{source_digest}.sig", f"{chain.repository}:{target_digest}.sig")
    code, report, _ = chain.verify(ref)
    assert code == 1
    assert failed(report)["signature"].startswith("not verified")


# --- chain of custody: sign refuses inputs that are not the image's ---------------------


def copied(chain: Chain, tmp_path: Path) -> dict[str, str]:
    """The chain's evidence and outputs, copied, so a test can break them without harm."""
    out = tmp_path / "out"
    shutil.copytree(chain.out, out, symlinks=True)
    text = (out / "evidence.json").read_text().replace(str(chain.out), str(out))
    (out / "evidence.json").write_text(text)
    return {**chain.env, "SECURE_IOT_OUT": str(out)}


def test_sign_refuses_an_output_changed_after_its_stage(chain: Chain, tmp_path: Path) -> None:
    env = copied(chain, tmp_path)
    predicate_file = Path(env["SECURE_IOT_OUT"]) / "provenance" / "image.predicate.json"
    predicate_file.write_text(predicate_file.read_text().replace("local-nox", "local-nox-edited"))
    code, output = chain.run("sign", env=env)
    assert code == 2
    assert "image.predicate.json: changed since its stage recorded it" in output


def test_sign_refuses_sboms_of_another_image(chain: Chain, tmp_path: Path) -> None:
    env = copied(chain, tmp_path)
    evidence = Path(env["SECURE_IOT_OUT"]) / "evidence.json"
    data = json.loads(evidence.read_text())
    other = "sha256:" + "0" * 64
    for output in data["stages"]["build"]["outputs"]:
        if output["kind"] == "oci":
            output["name"], output["digest"] = f"{chain.repository}@{other}", other
    evidence.write_text(json.dumps(data))
    code, output = chain.run("sign", env=env)
    assert code == 2
    assert f"not the image being signed ({other})" in output
