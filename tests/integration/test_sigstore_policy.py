"""The ClusterImagePolicy (talk 10): rendered from the one Rego source, then judged by the real
policy-tester (sigstore policy-controller's own verification code) against real signed,
unsigned and partly attested images in a registry on 127.0.0.1."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tasks.admission import cluster_image_policy
from tasks.core.errors import InputError, PolicyError
from tasks.policy import rego as attestation_policy
from tasks.policy import security_policy as policy_mod
from tasks.policy.security_policy import Policy
from tests.support.chain import admit, rendered
from tests.support.project import REPO, pinned, run_tasks

POLICY = REPO / "security-policy.yaml"
GLOB = "127.0.0.1:5000/**"
IDENTITY = "^https://github.com/secure-iot/secure-iot/.github/workflows/release.yml@refs/tags/v.*$"


def pem() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    raw = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return raw.decode()


@pytest.fixture
def public_key(tmp_path: Path) -> Path:
    path = tmp_path / "cosign.pub"
    path.write_text(pem())
    return path


def edited_policy(tmp_path: Path, change: Any) -> Policy:
    """A copy of security-policy.yaml with gates.verify changed, schema-validated on load."""
    data = yaml.safe_load(POLICY.read_text())
    change(data["gates"]["verify"])
    path = tmp_path / "security-policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return policy_mod.load(path)


def real_policy() -> Policy:
    return policy_mod.load(POLICY)


def authorities(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in doc["spec"]["authorities"]}


# --- rendering ---------------------------------------------------------------------------


def test_key_policy_embeds_the_public_key_and_no_transparency_log(public_key: Path) -> None:
    doc = cluster_image_policy.render(REPO, real_policy(), "key", image_glob=GLOB, public_key=public_key)
    assert doc["apiVersion"] == "policy.sigstore.dev/v1beta1" and doc["kind"] == "ClusterImagePolicy"
    assert doc["spec"]["mode"] == "enforce"
    assert doc["spec"]["images"] == [{"glob": GLOB}]
    found = authorities(doc)
    assert set(found) == {"signature", "attestations"}
    for authority in found.values():
        assert authority["key"] == {"hashAlgorithm": "sha256", "data": public_key.read_text()}
        # key-mode signatures are made with --tlog-upload=false: no ctlog, so policy-controller ignores the tlog
        assert "ctlog" not in authority and "keyless" not in authority
        assert "source" not in authority  # offline: signatures next to the image
    assert "attestations" not in found["signature"]  # an authority with attestations checks only those
    assert "${" not in cluster_image_policy.dump(doc)


def test_attestation_rego_is_exactly_what_verify_evaluates(public_key: Path) -> None:
    policy = real_policy()
    doc = cluster_image_policy.render(REPO, policy, "key", image_glob=GLOB, public_key=public_key)
    wanted = authorities(doc)["attestations"]["attestations"]
    required = policy.gate("verify").settings["required_attestations"]
    timed = attestation_policy.evaluation(policy)[0]
    signed = [k + cluster_image_policy.SIGNED_SUFFIX for k in required if k in timed]
    assert [a["name"] for a in wanted if a["name"] not in signed] == required
    values = attestation_policy.params(policy)  # image_digest "": policy-controller binds the image
    assert values["image_digest"] == ""
    for entry in wanted:
        if entry["name"] in signed:  # every signed statement of a time-dependent type, unjudged
            kind = entry["name"].removesuffix(cluster_image_policy.SIGNED_SUFFIX)
            assert "policy" not in entry and entry["predicateType"] == attestation_policy.KINDS[kind][0]
            continue
        kind = entry["name"]
        assert entry["predicateType"] == attestation_policy.KINDS[kind][0]
        assert entry["policy"] == {"type": "rego", "data": attestation_policy.render(REPO, kind, values)}


def test_one_source_a_changed_parameter_shows_in_the_policy(tmp_path: Path, public_key: Path) -> None:
    def stricter(verify: dict[str, Any]) -> None:
        verify["fail_on"] = "medium"
        verify["allowed_builders"] = ["urn:secure-iot:builder:only-this-one"]

    policy = edited_policy(tmp_path, stricter)
    doc = cluster_image_policy.render(REPO, policy, "key", image_glob=GLOB, public_key=public_key)
    rego = {a["name"]: a["policy"]["data"] for a in authorities(doc)["attestations"]["attestations"] if "policy" in a}
    assert rego["vuln"] == attestation_policy.render(REPO, "vuln", attestation_policy.params(policy))
    assert '"fail_on": "medium"' in rego["vuln"]
    assert '"allowed_builders": ["urn:secure-iot:builder:only-this-one"]' in rego["slsaprovenance1"]
    default = cluster_image_policy.render(REPO, real_policy(), "key", image_glob=GLOB, public_key=public_key)
    assert default != doc


def test_one_source_a_changed_rego_module_shows_in_the_policy(tmp_path: Path, public_key: Path) -> None:
    root = tmp_path / "project"
    shutil.copytree(REPO / cluster_image_policy.SIGSTORE, root / cluster_image_policy.SIGSTORE)
    sbom = root / attestation_policy.REGO_DIR / "sbom.rego"
    sbom.write_text(sbom.read_text() + '\nviolations contains "sbom: a rule added in one place" if false\n')
    doc = cluster_image_policy.render(root, real_policy(), "key", image_glob=GLOB, public_key=public_key)
    rego = {a["name"]: a["policy"]["data"] for a in authorities(doc)["attestations"]["attestations"] if "policy" in a}
    assert "a rule added in one place" in rego["spdxjson"]
    assert "a rule added in one place" not in rego["vuln"]


def test_required_attestations_decide_what_the_policy_requires(tmp_path: Path, public_key: Path) -> None:
    policy = edited_policy(tmp_path, lambda v: v.update(required_attestations=["spdxjson", "cyclonedx"]))
    doc = cluster_image_policy.render(REPO, policy, "key", image_glob=GLOB, public_key=public_key)
    wanted = {a["name"]: a for a in authorities(doc)["attestations"]["attestations"]}
    assert set(wanted) == {"spdxjson", "cyclonedx"}
    assert "policy" not in wanted["cyclonedx"]  # no content policy for it: presence only
    none = edited_policy(tmp_path, lambda v: v.update(required_attestations=[]))
    with pytest.raises(PolicyError, match="required_attestations is empty"):
        cluster_image_policy.render(REPO, none, "key", image_glob=GLOB, public_key=public_key)


def test_both_authorities_are_required_by_the_policy_level_rego(public_key: Path, tmp_path: Path) -> None:
    """The CIP-level Rego, evaluated with the pinned OPA on the shape policy-controller feeds it."""
    doc = cluster_image_policy.render(REPO, real_policy(), "key", image_glob=GLOB, public_key=public_key)
    assert doc["spec"]["policy"]["type"] == "rego"
    module = tmp_path / "authorities.rego"
    module.write_text(doc["spec"]["policy"]["data"])
    signature = {"signatures": [{"id": "x"}]}
    attested = {"attestations": {"spdxjson": [{"id": "y"}]}}
    # vuln: policy-controller lists the compliant statements; vuln-signed lists all of them
    # (all with one id: policy-controller derives it from a signature annotation attestations lack)
    newest_fails = {"attestations": {"vuln": [{"id": "e3b0"}], "vuln-signed": [{"id": "e3b0"}, {"id": "e3b0"}]}}
    all_comply = {"attestations": {"vuln": [{"id": "e3b0"}] * 2, "vuln-signed": [{"id": "e3b0"}] * 2}}
    cases = [
        ({"signature": signature, "attestations": attested}, True),
        ({"signature": signature, "attestations": all_comply}, True),
        ({"signature": signature, "attestations": newest_fails}, False),
        ({"signature": signature}, False),
        ({"attestations": attested}, False),
        ({}, False),
    ]
    for matches, compliant in cases:
        data = tmp_path / "input.json"
        data.write_text(json.dumps({"authorityMatches": matches}))
        done = subprocess.run(
            [str(pinned("opa")), "eval", "-f", "json", "-d", str(module), "-i", str(data), "data.sigstore.isCompliant"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(done.stdout)["result"][0]["expressions"][0]["value"] is compliant, matches


def test_dump_round_trips_with_readable_rego(public_key: Path) -> None:
    doc = cluster_image_policy.render(REPO, real_policy(), "key", image_glob=GLOB, public_key=public_key)
    text = cluster_image_policy.dump(doc)
    assert yaml.safe_load(text) == doc
    assert "data: |" in text and "\tinput.predicateType" in text  # block scalars, tabs kept


def test_keyless_policy_takes_the_identity_from_the_security_policy(tmp_path: Path) -> None:
    def keyless(verify: dict[str, Any]) -> None:
        verify["keyless_identity"] = IDENTITY
        verify["keyless_issuer"] = "https://token.actions.githubusercontent.com"

    policy = edited_policy(tmp_path, keyless)  # the schema accepts both settings
    doc = cluster_image_policy.render(REPO, policy, "keyless", image_glob="ghcr.io/secure-iot/**")
    for authority in authorities(doc).values():
        assert authority["keyless"]["identities"] == [
            {"issuer": "https://token.actions.githubusercontent.com", "subjectRegExp": IDENTITY}
        ]
        assert authority["ctlog"] == {"url": "https://rekor.sigstore.dev"}
        assert "key" not in authority

    def unset(verify: dict[str, Any]) -> None:
        verify.pop("keyless_identity", None)

    with pytest.raises(PolicyError, match="keyless_identity is not set"):
        cluster_image_policy.render(REPO, edited_policy(tmp_path, unset), "keyless", image_glob="**")


def test_keyless_identity_is_pinned_to_this_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_REPOSITORY", raising=False)
    monkeypatch.delenv("SECURE_IOT_SOURCE_REPOSITORY", raising=False)
    with pytest.raises(PolicyError, match="set GITHUB_REPOSITORY"):
        cluster_image_policy.render(REPO, real_policy(), "keyless", image_glob="**")
    monkeypatch.setenv("GITHUB_REPOSITORY", "acme/secure-iot")
    doc = cluster_image_policy.render(REPO, real_policy(), "keyless", image_glob="**")
    regexp = next(iter(authorities(doc).values()))["keyless"]["identities"][0]["subjectRegExp"]
    assert re.match(regexp, "https://github.com/acme/secure-iot/.github/workflows/ci.yml@refs/heads/main")
    assert not re.match(regexp, "https://github.com/evil/secure-iot/.github/workflows/ci.yml@refs/heads/main")
    assert not re.match(regexp, "https://github.com/acme/secure-iot/.github/workflows/other.yml@refs/heads/main")


def test_cluster_sources_are_set_on_every_authority(public_key: Path) -> None:
    source = "172.18.0.2:5000/secure-iot-server"
    doc = cluster_image_policy.render(
        REPO, real_policy(), "key", image_glob=GLOB, public_key=public_key, sources=[source]
    )
    for authority in authorities(doc).values():
        assert authority["source"] == [{"oci": source}]


def test_templates_fail_closed_on_placeholders(tmp_path: Path, public_key: Path) -> None:
    root = tmp_path / "project"
    shutil.copytree(REPO / cluster_image_policy.SIGSTORE, root / cluster_image_policy.SIGSTORE)
    template = root / cluster_image_policy.TEMPLATES["key"]
    original = template.read_text()
    template.write_text(original.replace("glob: ${image_glob}", "glob: ${image_globs}"))
    with pytest.raises(InputError, match=r"placeholder \$\{image_globs\} is not one"):
        cluster_image_policy.render(root, real_policy(), "key", image_glob=GLOB, public_key=public_key)
    template.write_text(original.replace("glob: ${image_glob}", "glob: 127.0.0.1:5000/**"))
    with pytest.raises(InputError, match="no placeholder for image_glob"):
        cluster_image_policy.render(root, real_policy(), "key", image_glob=GLOB, public_key=public_key)
    template.write_text(original.replace("glob: ${image_glob}", "glob: ${image_glob}/x"))
    with pytest.raises(InputError, match="must be a whole value"):
        cluster_image_policy.render(root, real_policy(), "key", image_glob=GLOB, public_key=public_key)


# --- policy-tester against real images ---------------------------------------------------


@pytest.mark.slow
def test_policy_stage_runs_policy_tester_on_signed_unsigned_and_partial_images(chain: Any) -> None:
    code, output = chain.run("policy")
    assert code == 0, output[-4000:]
    checks = {c["name"]: c for c in json.loads((chain.out / "policy" / "checks.json").read_text())["checks"]}
    tested = {name: c for name, c in checks.items() if name.startswith("policy-tester: ")}
    assert set(tested) == {
        "policy-tester: signed and attested image (build evidence)",
        "policy-tester: unsigned image",
        "policy-tester: attested but not signed",
        "policy-tester: signed, no spdxjson attestation",
        "policy-tester: signed, provenance from an unlisted builder",
        "policy-tester: signed, required OpenSCAP rule file_owner_etc_passwd failed",
    }
    assert all(c["passed"] for c in tested.values()), tested
    assert tested["policy-tester: signed and attested image (build evidence)"]["detail"] == "admitted"
    assert "no signatures found" in tested["policy-tester: attested but not signed"]["detail"]
    assert (
        "no matching attestations with type https://spdx.dev/Document"
        in tested["policy-tester: signed, no spdxjson attestation"]["detail"]
    )
    assert (
        "failed evaluating rego policy for type slsaprovenance1"
        in tested["policy-tester: signed, provenance from an unlisted builder"]["detail"]
    )
    assert (
        "compliance: required rule file_owner_etc_passwd: fail"
        in tested["policy-tester: signed, required OpenSCAP rule file_owner_etc_passwd failed"]["detail"]
    )
    cip = yaml.safe_load((chain.out / "policy" / "cip-key.yaml").read_text())
    assert cip["spec"]["authorities"][0]["key"]["data"] == (chain.keys / "cosign.pub").read_text()
    evidence = json.loads((chain.out / "evidence.json").read_text())["stages"]["policy"]
    assert evidence["details"]["policy_controller"]["run"] is True
    assert "policy-tester" in {c["tool"] for c in evidence["commands"]}
    outputs = [o["name"] for o in evidence["outputs"]]
    for name in ("policy/cip-key.yaml", "policy/policy-tester.json"):
        assert any(o.endswith(name) for o in outputs), outputs


@pytest.mark.slow
def test_the_signed_image_is_admitted_and_a_changed_parameter_denies_it(chain: Any, tmp_path: Path) -> None:
    code, result = admit(rendered(chain, tmp_path), chain.ref)
    assert code == 0, result
    strict = edited_policy(tmp_path, lambda v: v.update(allowed_builders=["urn:secure-iot:builder:someone-else"]))
    code, result = admit(rendered(chain, tmp_path, strict), chain.ref)
    assert code == 1
    assert "failed evaluating rego policy for type slsaprovenance1" in result["errors"][0]


@pytest.mark.slow
def test_another_key_is_denied(chain: Any, tmp_path: Path, public_key: Path) -> None:
    code, result = admit(rendered(chain, tmp_path, public_key=public_key), chain.ref)
    assert code == 1
    assert "key validation failed for authority" in result["errors"][0]


@pytest.mark.slow
def test_signatures_can_be_read_from_another_repository(chain: Any, tmp_path: Path) -> None:
    """What the cluster relies on: source.oci points policy-controller at the registry container."""
    host = chain.repository.split("/")[0]
    mirror = f"{host}/mirror-of-secure-iot-server"
    subprocess.run(
        [str(pinned("cosign")), "copy", "--force", chain.ref, mirror],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    code, result = admit(rendered(chain, tmp_path, sources=[mirror]), chain.ref)
    assert code == 0, result
    empty = f"{host}/no-signatures-here"
    code, result = admit(rendered(chain, tmp_path, sources=[empty]), chain.ref)
    assert code == 1
    assert re.search(r"no signatures found|no matching attestations", result["errors"][0]), result


def test_policy_stage_without_a_signed_build_says_so(tmp_path: Path) -> None:
    """No signed image in the evidence: the policy-controller part is not run, and that is recorded."""
    root = tmp_path / "project"
    for part in ("infra/charts/secure-iot", "infra/policies/gatekeeper"):
        shutil.copytree(REPO / part, root / part)
    shutil.copy(REPO / "tools.lock", root / "tools.lock")
    result = run_tasks("policy", root=root)
    assert result.returncode == 0, result.output
    assert "policy-controller checks not run" in result.output
    details = json.loads((root / "out" / "evidence.json").read_text())["stages"]["policy"]["details"]
    assert details["policy_controller"]["run"] is False
    assert "no built image to test" in details["policy_controller"]["reason"]
