"""Continuous evaluation (talk 04) with real cosign, a real loopback registry, the pinned OPA
(`nox -s verify`) and the real policy-tester (admission): the newest statement of a
time-dependent type decides, and `nox -s rescan` re-attests a signed image's attested SBOM
against today's database and VEX.

Each test works on a copy of the session's signed chain image (`cosign copy`: same digest,
so its provenance still names it) in a repository of its own; the chain stays untouched.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tasks.analysis import vulndb
from tasks.context import Context
from tasks.core.evidence import StageRecord
from tasks.core.media_types import COMPLIANCE_PREDICATE_TYPE
from tasks.policy import security_policy as policy_mod
from tests.support.chain import Chain, admit, rendered
from tests.support.project import REPO, pinned, run_tasks

pytestmark = pytest.mark.slow

CRITICAL = {
    "vulnerability": {"id": "CVE-2099-0001", "severity": "Critical"},
    "artifact": {"name": "zlib1g", "version": "1:1.2.13"},
}


def stamp(hours: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


def cosign(chain: Chain, *args: str) -> None:
    done = subprocess.run(
        [str(pinned("cosign")), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **chain.env},
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def copy_of(chain: Chain, name: str) -> str:
    """The chain image, its signature and attestations, in a repository of its own (same digest)."""
    target = f"{chain.repository.split('/')[0]}/{name}"
    cosign(chain, "copy", "--force", "--allow-http-registry", chain.ref, target)
    return f"{target}@{chain.ref.split('@', 1)[1]}"


def attest_vuln(chain: Chain, ref: str, tmp_path: Path, predicate: dict[str, Any], *, replace: bool) -> None:
    path = tmp_path / "vuln.predicate.json"
    path.write_text(json.dumps(predicate))
    key = ["--key", str(chain.keys / "cosign.key"), "--tlog-upload=false", "--yes", "--allow-http-registry"]
    cosign(chain, "attest", *key, *(["--replace"] if replace else []), "--type", "vuln", "--predicate", str(path), ref)


def scan(chain: Chain, finished: str | None, matches: list[Any], ignored: tuple[Any, ...] = ()) -> dict[str, Any]:
    """The chain's signed vuln predicate with other matches and another scanFinishedOn (None: absent)."""
    predicate: dict[str, Any] = json.loads((chain.out / "sign" / "vuln.predicate.json").read_text())
    predicate["scanner"]["result"].update(matches=matches, ignoredMatches=list(ignored))
    predicate["metadata"] = {} if finished is None else {"scanStartedOn": finished, "scanFinishedOn": finished}
    return predicate


def judged(chain: Chain, ref: str, cip: Path) -> tuple[str, str]:
    """(verify's vuln check detail or "pass", policy-tester's first error or "admitted")."""
    code, report, output = chain.verify(ref)
    rows = {c["name"]: c for c in report.get("checks", [])}
    vuln = rows.get("attestation vuln", {})
    verified = "pass" if code == 0 else str(vuln.get("detail") or output[-2000:])
    decision, result = admit(cip, ref)
    return verified, "admitted" if decision == 0 else str(result.get("errors", ["?"])[0])


def test_the_newest_scan_decides_at_verify_and_at_admission(chain: Chain, tmp_path: Path) -> None:
    ref = copy_of(chain, "continuous-eval")
    cip = rendered(chain, tmp_path)
    assert judged(chain, ref, cip) == ("pass", "admitted")

    # A newer scan of the same digest, same key, reports a Critical: the older clean one no longer counts.
    attest_vuln(chain, ref, tmp_path, scan(chain, stamp(0), [CRITICAL]), replace=False)
    verified, admitted = judged(chain, ref, cip)
    assert "CVE-2099-0001 (Critical) in zlib1g@1:1.2.13" in verified, verified
    assert "policy is not compliant" in admitted, admitted  # authorities-policy.rego: a signed statement fails
    attest_vuln(chain, ref, tmp_path, scan(chain, stamp(0), [CRITICAL]), replace=True)  # as rescan does
    verified, admitted = judged(chain, ref, cip)
    assert "CVE-2099-0001" in verified and "CVE-2099-0001" in admitted, admitted

    # A newer scan with a VEX answer for it (grype moves the match to ignoredMatches): passes again.
    attest_vuln(chain, ref, tmp_path, scan(chain, stamp(0), [], (CRITICAL,)), replace=True)
    assert judged(chain, ref, cip) == ("pass", "admitted")

    # Alone, a scan older than gates.verify.evaluation.max_age_hours (48h), one from the future,
    # one without a timestamp: each fails at verify and at admission.
    for finished, why in [
        (stamp(-49), "older than the maximum age of 48h"),
        (stamp(24), "is in the future"),
        (None, "no readable timestamp"),
    ]:
        attest_vuln(chain, ref, tmp_path, scan(chain, finished, []), replace=True)
        verified, admitted = judged(chain, ref, cip)
        assert why in verified, verified
        assert admitted != "admitted" and "failed evaluating rego policy for type vuln" in admitted, admitted


# --- nox -s rescan ----------------------------------------------------------------------

NEW_ADVISORY = "GHSA-2099-resc-an01"


def python_package(chain: Chain) -> tuple[str, str, str]:
    """(name, version, purl) of a Python package the chain's SPDX SBOM lists."""
    spdx = next((chain.out / "sbom").glob("*.spdx.json"))
    for package in json.loads(spdx.read_text())["packages"]:
        for ref in package.get("externalRefs", []):
            if ref.get("referenceLocator", "").startswith("pkg:pypi/"):
                return package["name"], package["versionInfo"], ref["referenceLocator"]
    raise AssertionError(f"{spdx}: no Python package")


def database_with_new_advisory(tmp_path: Path, name: str, version: str) -> Path:
    """The demo advisories plus one newly published Critical one for ``name`` <= ``version``."""
    workspace = tmp_path / "workspace"
    shutil.copytree(REPO / vulndb.DEMO_WORKSPACE, workspace)
    records = workspace / "github" / "results" / "github@python"
    record = json.loads((records / "ghsa-8q59-q68h-6hv4.json").read_text())
    record["identifier"] = f"github:python/{NEW_ADVISORY.lower()}"
    advisory = record["item"]["Advisory"]
    advisory.update(ghsaId=NEW_ADVISORY, CVE=[], Metadata={"CVE": []}, Summary=f"test: newly published for {name}")
    advisory["FixedIn"] = [
        {"ecosystem": "python", "identifier": "", "name": name, "namespace": "github:python", "range": f"<= {version}"}
    ]
    advisory["published"] = advisory["updated"] = stamp(-1)
    (records / f"{NEW_ADVISORY.lower()}.json").write_text(json.dumps(record, indent=2))
    ctx = Context.create(root=REPO, out=tmp_path / "out").bind(StageRecord(stage="test", root=REPO))
    out = tmp_path / "db"
    builder = vulndb.builder(ctx, StageRecord(stage="test", root=REPO)).path
    subprocess.run([str(builder), "-workspace", str(workspace), "-out", str(out), "-relist"], check=True, timeout=600)
    return out / "vulnerability-db.tar.gz"


def test_rescan_flips_verify_and_admission_and_a_newer_vex_clears_it(chain: Chain, tmp_path: Path) -> None:
    ref = copy_of(chain, "rescanned")
    name, version, purl = python_package(chain)
    database = database_with_new_advisory(tmp_path, name, version)
    project = tmp_path / "project"  # the repository, with a vex/ of its own
    for part in ("infra/policies/sigstore", "requirements/tools", "schemas"):
        shutil.copytree(REPO / part, project / part)
    for part in ("security-policy.yaml", "tools.lock"):
        shutil.copy(REPO / part, project / part)
    (project / "vex").mkdir()
    env = {**chain.env, "SECURE_IOT_OUT": str(tmp_path / "out"), "SECURE_IOT_VULNDB": str(database)}

    def rescan() -> tuple[int, str]:
        result = run_tasks("rescan", "--image", ref, root=project, env=env, timeout=900)
        return result.returncode, result.output

    cip = rendered(chain, tmp_path)
    assert judged(chain, ref, cip) == ("pass", "admitted")
    code, output = rescan()
    assert code == 1 and NEW_ADVISORY in output, output[-3000:]
    verified, admitted = judged(chain, ref, cip)
    assert NEW_ADVISORY in verified and NEW_ADVISORY in admitted, (verified, admitted)

    vex = {
        "@context": "https://openvex.dev/ns/v0.2.0",
        "@id": "urn:secure-iot:test:rescan",
        "author": "secure-iot tests",
        "timestamp": stamp(0),
        "version": 1,
        "statements": [
            {
                "vulnerability": {"name": NEW_ADVISORY},
                "products": [{"@id": purl}],
                "status": "not_affected",
                "justification": "vulnerable_code_not_in_execute_path",
                "impact_statement": "test: the affected function is never called",
            }
        ],
    }
    (project / "vex" / "new-advisory.openvex.json").write_text(json.dumps(vex))
    code, output = rescan()
    assert code == 0, output[-3000:]
    assert judged(chain, ref, cip) == ("pass", "admitted")
    evidence = json.loads((tmp_path / "out" / "evidence.json").read_text())["stages"]["rescan"]
    assert evidence["details"]["images"] == [ref]


# --- the OpenSCAP result: a signed, time-dependent attestation too --------------------------


def openscap_result(chain: Chain, finished: str, **results: str) -> dict[str, Any]:
    """The chain's OpenSCAP predicate with other rule results and another evaluationFinishedOn."""
    predicate: dict[str, Any] = json.loads((chain.out / "compliance" / "openscap-result.predicate.json").read_text())
    predicate["results"].update(results)
    predicate["metadata"] = {"evaluationStartedOn": finished, "evaluationFinishedOn": finished}
    return predicate


def attest_compliance(chain: Chain, ref: str, tmp_path: Path, predicate: dict[str, Any]) -> None:
    """As `nox -s rescan` does: the new result replaces the image's older one."""
    path = tmp_path / "compliance.predicate.json"
    path.write_text(json.dumps(predicate))
    key = ["--key", str(chain.keys / "cosign.key"), "--tlog-upload=false", "--yes", "--allow-http-registry"]
    cosign(chain, "attest", *key, "--replace", "--type", COMPLIANCE_PREDICATE_TYPE, "--predicate", str(path), ref)


def test_a_failing_or_stale_compliance_result_is_refused_at_verify_and_admission(chain: Chain, tmp_path: Path) -> None:
    ref = copy_of(chain, "compliance-eval")
    cip = rendered(chain, tmp_path)
    rule = str(policy_mod.load(REPO / "security-policy.yaml").gate("compliance").settings["required_rules"][0])

    def judged_compliance() -> tuple[str, str]:
        code, report, output = chain.verify(ref)
        row = {c["name"]: c for c in report.get("checks", [])}.get("attestation compliance", {})
        decision, result = admit(cip, ref)
        verified = "pass" if code == 0 else str(row.get("detail") or output[-2000:])
        return verified, "admitted" if decision == 0 else str(result.get("errors", ["?"])[0])

    assert judged_compliance() == ("pass", "admitted")
    # A newer evaluation where a required rule fails (e.g. /etc/shadow made world-readable).
    attest_compliance(chain, ref, tmp_path, openscap_result(chain, stamp(0), **{rule: "fail"}))
    verified, admitted = judged_compliance()
    assert f"compliance: required rule {rule}: fail" in verified, verified
    assert f"compliance: required rule {rule}: fail" in admitted, admitted
    # A passing result, but older than gates.verify.evaluation.max_age_hours (48h): stale.
    attest_compliance(chain, ref, tmp_path, openscap_result(chain, stamp(-49)))
    verified, admitted = judged_compliance()
    assert "older than the maximum age of 48h" in verified, verified
    assert admitted != "admitted" and "failed evaluating rego policy for type compliance" in admitted, admitted
    # Re-evaluated today and passing: admissible again.
    attest_compliance(chain, ref, tmp_path, openscap_result(chain, stamp(0)))
    assert judged_compliance() == ("pass", "admitted")
