"""The report model, its HTML and markdown: numbers from the evidence, every string escaped."""

from __future__ import annotations

import json
from pathlib import Path

from tasks import report
from tasks.context import Context
from tasks.core.evidence import EvidenceStore
from tasks.core.fingerprint import code_files
from tests.support.report_fixture import HOSTILE, evidence


def _report(tmp_path: Path) -> report.Report:
    ctx = Context(
        tmp_path, tmp_path / "out", tmp_path / "security-policy.yaml", EvidenceStore(tmp_path / "out" / "e.json")
    )
    return report.build(ctx, evidence(tmp_path), ["sast", "build", "sbom", "verify"], [])


def test_no_hostile_string_reaches_the_page_unescaped(tmp_path: Path) -> None:
    model = _report(tmp_path)
    html, md = report.page.render(model), report.markdown.render(model)
    for text in (html, md):
        assert "<script>" not in text and "<img" not in text
    assert "&lt;script&gt;" in html and "&lt;script&gt;" in md


def test_numbers_and_edges_come_from_the_evidence(tmp_path: Path) -> None:
    model = _report(tmp_path)
    assert [s.name for s in model.stages] == ["sast", "build", "sbom", "verify"]
    assert model.sast_counts["blocking"] == 1 and [f["rule"] for f in model.sast] == ["B608"]  # low is below
    assert (
        ("commit", "build") in model.edges and ("build", "sbom") in model.edges and ("build", "verify") in model.edges
    )
    assert [r["passed"] for r in model.checks["verify"]] == [True, False]
    assert not model.integrity


def test_a_file_changed_after_its_stage_is_named_not_shown(tmp_path: Path) -> None:
    data = evidence(tmp_path)
    (tmp_path / "out" / "sast" / "findings.json").write_text(json.dumps({"findings": []}))
    ctx = Context(tmp_path, tmp_path / "out", tmp_path / "p.yaml", EvidenceStore(tmp_path / "out" / "e.json"))
    model = report.build(ctx, data, [], [])
    assert model.integrity and "changed since its stage recorded it" in model.integrity[0]
    assert model.sast == []


def test_history_adds_a_run_once(tmp_path: Path) -> None:
    data = evidence(tmp_path)
    assert len(report.history.append(tmp_path / "h.json", data)) == 1
    assert len(report.history.append(tmp_path / "h.json", data)) == 1
    data["stages"]["build"]["duration_s"] = 3.0
    assert len(report.history.append(tmp_path / "h.json", data)) == 2


def test_a_stage_fingerprint_covers_the_code_it_imports() -> None:
    files = {p.as_posix().split("tasks/", 1)[1] for p in code_files("tasks.stages.scan")}
    assert {"stages/scan.py", "analysis/vulndb.py", "policy/gate.py", "core/evidence.py"} <= files
    assert "report/page.py" not in files


def test_devices_show_each_attestation_verdict_the_evidence_has(tmp_path: Path) -> None:
    data = evidence(tmp_path)
    data["stages"]["boot"] = {"verdict": "pass", "details": {"mode": "genuine", "pcrs": {"8": "aa", "9": "bb"}}}
    data["stages"]["factory"] = {
        "verdict": "fail",
        "details": {
            "devices": ["dev-1", "dev-2"],
            "checks": {
                "dev-1: EK certificate in TPM NV, issued by the manufacturer CA": "pass",
                "dev-2: EK certificate in TPM NV, issued by the manufacturer CA": "fail",
            },
        },
    }
    data["stages"]["network"] = {"verdict": "fail", "details": {"device": {"name": "dev-3", "admitted": False}}}
    ctx = Context(tmp_path, tmp_path / "out", tmp_path / "p.yaml", EvidenceStore(tmp_path / "out" / "e.json"))
    model = report.build(ctx, data, list(data["stages"]), [])
    verdicts = {d["device"]: d["verdict"] for d in model.devices}
    assert verdicts == {
        "reference device (QEMU virt + swtpm)": "pass",
        "dev-1": "pass",
        "dev-2": "fail",
        "dev-3": "fail",
    }
    html = report.page.render(model)
    assert html.count('<span class="fail">fail</span>') >= 2 and "PCR8, PCR9" in html
    assert "No device stage" in report.page.render(_report(tmp_path))


def test_the_signer_key_is_named_by_its_project_path(tmp_path: Path) -> None:
    """The page is portable: a key inside the checkout is shown relative to it, anything else as recorded."""
    from tasks.report.model import _signer

    signer = {"mode": "key", "public_key": str(tmp_path / ".keys" / "cosign.pub")}
    assert _signer(signer, tmp_path) == "mode: key, public_key: .keys/cosign.pub"
    outside = {"mode": "key", "public_key": "/etc/keys/c.pub"}
    assert _signer(outside, tmp_path) == "mode: key, public_key: /etc/keys/c.pub"
    assert _signer(None, tmp_path) == "not signed in this run"


def test_compliance_lists_each_waived_rule_with_its_reason_and_expiry(tmp_path: Path) -> None:
    data = evidence(tmp_path)
    rule = "xccdf_org.ssgproject.content_rule_partition_for_tmp"
    data["stages"]["compliance"] = {
        "verdict": "fail",
        "details": {
            "profile": "xccdf_org.ssgproject.content_profile_standard",
            "rootfs": "image",
            "results": {"fail": 2, "pass": 17},
            "required": 17,
            "required_failed": [],
            "blocking_rules": ["xccdf_org.ssgproject.content_rule_package_cron_installed"],
            "waived": [
                {
                    "finding": rule,
                    "location": "image: fail",
                    "waiver": rule,
                    "owner": "platform-team",
                    "justification": f"an image has no partitions {HOSTILE}",
                    "expires": "2027-06-30",
                }
            ],
            "stale_waivers": [{"waiver": "xccdf_org.ssgproject.content_rule_gone", "result": "pass"}],
        },
    }
    ctx = Context(tmp_path, tmp_path / "out", tmp_path / "p.yaml", EvidenceStore(tmp_path / "out" / "e.json"))
    model = report.build(ctx, data, list(data["stages"]), [])
    html, md = report.page.render(model), report.markdown.render(model)
    assert "outside the required set" not in html  # no folded, unexplained list
    row = html.split('class="compliance-waivers"', 1)[1].split("</tr>", 2)[1]
    assert rule in row and "platform-team" in row and "an image has no partitions &lt;script&gt;" in row
    assert 'data-expires="2027-06-30"' in row
    assert 'id="compliance-blocking">1<' in html and "package_cron_installed" in html
    assert "content_rule_gone</code>: pass" in html
    assert f"| {rule} | platform-team | an image has no partitions &lt;script&gt;" in md and "| 2027-06-30 |" in md
