from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tasks.core import atomic
from tasks.core.errors import EvidenceError, InputError
from tasks.core.evidence import EvidenceStore

REPO = Path(__file__).resolve().parents[3]


def test_stage_record_has_inputs_outputs_and_verdict(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "out" / "evidence.json")
    src = tmp_path / "in.txt"
    src.write_text("hello")
    with store.open_stage("demo", tmp_path) as rec:
        rec.add_input(src)
        out = tmp_path / "out" / "demo" / "result.json"
        atomic.write_json(out, {"ok": True})
        rec.add_output(out, "application/json")
        rec.add_oci("127.0.0.1:5000/x", "sha256:" + "a" * 64, "application/vnd.oci.image.manifest.v1+json")
        rec.verdict = "pass"
    data = store.stage("demo")
    assert data["verdict"] == "pass"
    assert data["inputs"][0] == {
        "name": "in.txt",
        "digest": "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
        "media_type": "application/octet-stream",
        "kind": "file",
    }
    assert data["outputs"][0]["name"] == "out/demo/result.json"
    assert data["outputs"][1]["kind"] == "oci"
    assert data["started"] <= data["finished"]


def test_failing_stage_is_recorded_and_refused_downstream(tmp_path: Path) -> None:
    store = EvidenceStore(tmp_path / "evidence.json")
    with pytest.raises(InputError), store.open_stage("demo", tmp_path) as rec:
        rec.add_input(tmp_path / "missing.txt")
    assert store.load()["stages"]["demo"]["verdict"] == "error"
    assert "missing.txt" in store.load()["stages"]["demo"]["reason"]
    with pytest.raises(EvidenceError, match="did not pass"):
        store.stage("demo")
    with pytest.raises(EvidenceError, match="run `nox -s other` first"):
        store.stage("other")


def test_interrupted_write_keeps_previous_manifest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = EvidenceStore(tmp_path / "evidence.json")
    with store.open_stage("first", tmp_path) as rec:
        rec.verdict = "pass"
    before = store.path.read_bytes()

    def crash(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt), store.open_stage("second", tmp_path) as rec:
        rec.verdict = "pass"
    assert store.path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".evidence.lock", "evidence.json"]


def test_killed_writer_never_leaves_a_torn_manifest(tmp_path: Path) -> None:
    """A real process killed with SIGKILL while rewriting the manifest in a loop."""
    path = tmp_path / "evidence.json"
    script = textwrap.dedent(
        f"""
        import sys; sys.path.insert(0, {str(REPO)!r})
        from pathlib import Path
        from tasks.core.evidence import EvidenceStore
        store = EvidenceStore(Path({str(path)!r}))
        i = 0
        while True:
            with store.open_stage(f"s{{i % 50}}", Path({str(tmp_path)!r})) as rec:
                rec.details["blob"] = "x" * 200_000
                rec.verdict = "pass"
            i += 1
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 20
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # let it rewrite the manifest many times, then kill it mid-write
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    data = json.loads(path.read_text())
    assert data["schema"] == "urn:secure-iot:evidence:v1"
    assert data["stages"]


def test_corrupt_manifest_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "evidence.json"
    path.write_text("{not json")
    with pytest.raises(EvidenceError, match="unreadable evidence manifest"):
        EvidenceStore(path).load()


def test_a_manifest_of_the_wrong_shape_is_an_evidence_error(tmp_path: Path) -> None:
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps({"schema": "urn:secure-iot:evidence:v1", "stages": []}))
    with pytest.raises(EvidenceError, match="not a secure-iot evidence manifest"):
        EvidenceStore(path).load()
