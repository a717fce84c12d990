"""A stage is up to date only when its fingerprint, outputs and time-dependent facts all still hold."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tasks import pipeline
from tasks.container import oci_registry
from tasks.context import Context
from tasks.core.evidence import EvidenceStore
from tasks.core.fingerprint import file_digest

if TYPE_CHECKING:
    import pytest

REPO = Path(__file__).resolve().parents[3]


def _setup(tmp_path: Path, name: str = "sbom") -> tuple[Context, dict[str, Any], pipeline.Stage]:
    out = tmp_path / "out"
    ctx = Context(REPO, out, REPO / "security-policy.yaml", EvidenceStore(out / "evidence.json"))
    (out / "sbom").mkdir(parents=True)
    (out / "in.json").write_text("{}")
    (out / "sbom" / "image.spdx.json").write_text('{"spdxVersion": "SPDX-2.3"}')
    st = pipeline.stage(name)
    art = {"kind": "file", "media_type": "application/json"}
    rec: dict[str, Any] = {
        "verdict": "pass",
        "tools": {"syft": "1.18.1"},
        "inputs": [{**art, "name": str(out / "in.json"), "digest": file_digest(out / "in.json")}],
        "outputs": [
            {
                **art,
                "name": str(out / "sbom" / "image.spdx.json"),
                "digest": file_digest(out / "sbom" / "image.spdx.json"),
            }
        ],
        "details": {},
    }
    rec["details"]["fingerprint"] = pipeline.stage_fingerprint(ctx, st, rec, [])
    return ctx, {"stages": {name: rec}}, st


def test_unchanged_is_up_to_date(tmp_path: Path) -> None:
    ctx, evidence, st = _setup(tmp_path)
    assert pipeline.why_stale(ctx, st, evidence, []) is None


def test_changed_input_output_or_arguments_rerun(tmp_path: Path) -> None:
    ctx, evidence, st = _setup(tmp_path)
    assert pipeline.why_stale(ctx, st, evidence, ["--other"]) is not None
    (ctx.out / "in.json").write_text('{"changed": 1}')
    assert "changed" in str(pipeline.why_stale(ctx, st, evidence, []))
    ctx, evidence, st = _setup(tmp_path / "again")
    (ctx.out / "sbom" / "image.spdx.json").write_text("{}")
    assert "changed since it was recorded" in str(pipeline.why_stale(ctx, st, evidence, []))


def test_an_old_database_and_always_run_stages_rerun(tmp_path: Path) -> None:
    """The DB's age is scan's own check (its `stale` hook); a stage without the hook ignores it."""
    ctx, evidence, st = _setup(tmp_path, "scan")
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=400)
    evidence["stages"]["scan"]["details"]["db"] = {"built": old.isoformat()}
    assert "older than the policy allows" in str(pipeline.why_stale(ctx, st, evidence, []))
    evidence["stages"]["scan"]["details"]["db"] = {"built": dt.datetime.now(dt.UTC).isoformat()}
    assert pipeline.why_stale(ctx, st, evidence, []) is None
    assert "always runs" in str(pipeline.why_stale(ctx, pipeline.stage("verify"), evidence, []))


def test_an_image_the_registry_no_longer_serves_reruns_the_stage_that_pushed_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """build's `stale` hook asks the registry for its OCI outputs, by digest and by the recorded tag."""
    ctx, evidence, st = _setup(tmp_path, "build")
    record = evidence["stages"]["build"]
    digest = "sha256:" + "0" * 64
    ref = f"127.0.0.1:5000/secure-iot/app@{digest}"
    record["outputs"].append({"kind": "oci", "name": ref, "digest": digest, "media_type": "x"})
    record["details"]["tag"] = "v1"
    asked: list[tuple[str, str, str]] = []
    served = {"now": True}

    def serves(name: str, got: str, tag: str = "") -> bool:
        asked.append((name, got, tag))
        return served["now"]

    monkeypatch.setattr(oci_registry, "serves", serves)
    assert pipeline.why_stale(ctx, st, evidence, []) is None
    assert asked == [(ref, digest, "v1")]
    served["now"] = False
    assert "does not serve" in str(pipeline.why_stale(ctx, st, evidence, []))


def test_force_is_taken_out_of_the_stage_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECURE_IOT_FORCE", raising=False)
    assert pipeline._split_force(["--x", "--force"], False) == (["--x"], True)
    assert pipeline._split_force(["--x"], False) == (["--x"], False)
    monkeypatch.setenv("SECURE_IOT_FORCE", "1")
    assert pipeline._split_force(["--x"], False) == (["--x"], True)


def test_the_stage_configuration_in_the_environment_is_part_of_the_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, evidence, st = _setup(tmp_path)
    monkeypatch.setenv("SECURE_IOT_VULNDB", "demo-elsewhere")
    assert pipeline.why_stale(ctx, st, evidence, []) is not None


def test_an_upgraded_debian_tool_reruns_the_stage(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Debian tool's pin is a minimum (ADR 0021): the build installed now is part of the fingerprint."""
    ctx, evidence, st = _setup(tmp_path)
    evidence["stages"]["sbom"]["tools"] = {"skopeo": "1.9.3"}
    installed = {"skopeo": "1.9.3+ds1-1"}
    monkeypatch.setattr(pipeline, "installed_deb", lambda package: installed.get(package))
    record = evidence["stages"]["sbom"]
    record["details"]["fingerprint"] = pipeline.stage_fingerprint(ctx, st, record, [])
    assert pipeline.why_stale(ctx, st, evidence, []) is None
    installed["skopeo"] = "1.9.3+ds1-1+deb12u1"  # a security build replaced it; tools.lock is unchanged
    assert pipeline.why_stale(ctx, st, evidence, []) is not None
