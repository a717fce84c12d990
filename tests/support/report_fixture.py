"""A small evidence manifest with hostile strings, for the report's unit and browser tests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

HOSTILE = '<script>window.pwned=1</script><img src="http://example.invalid/x.png">'


def _file(root: Path, name: str, doc: Any) -> dict[str, str]:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return {
        "name": name,
        "digest": "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest(),
        "kind": "file",
        "media_type": "application/json",
    }


def evidence(root: Path) -> dict[str, Any]:
    image = "127.0.0.1:5000/secure-iot-server@sha256:" + "a" * 64
    findings = _file(
        root,
        "out/sast/findings.json",
        {
            "findings": [
                {
                    "rule": "B608",
                    "location": f"app/x.py:3 {HOSTILE}",
                    "severity": "high",
                    "tool": "bandit",
                    "message": HOSTILE,
                },
                {"rule": "B404", "location": "app/y.py:1", "severity": "low", "tool": "bandit", "message": "low"},
            ]
        },
    )
    oci = {
        "name": image,
        "digest": "sha256:" + "a" * 64,
        "kind": "oci",
        "media_type": "application/vnd.oci.image.manifest.v1+json",
    }
    sbom = _file(root, "out/sbom/image.spdx.json", {"spdxVersion": "SPDX-2.3"})
    base = {"started": "2026-11-30T10:00:00Z", "finished": "2026-11-30T10:00:01Z", "commands": [], "opt_outs": []}
    return {
        "schema": "urn:secure-iot:evidence:v1",
        "updated": "2026-11-30T10:00:05Z",
        "stages": {
            "sast": {
                **base,
                "verdict": "fail",
                "duration_s": 12.5,
                "reason": f"1 blocking {HOSTILE}",
                "tools": {"bandit": "1.9.4"},
                "inputs": [],
                "outputs": [findings],
                "details": {"threshold": "medium", "blocking": 1, "waived": [], "below_threshold": 1},
            },
            "build": {
                **base,
                "verdict": "pass",
                "duration_s": 20.0,
                "reason": "",
                "tools": {"buildah": "1.28.2"},
                "inputs": [],
                "outputs": [oci],
                "details": {"revision": "f" * 40, "image": image, "tag": "t"},
            },
            "sbom": {
                **base,
                "verdict": "pass",
                "duration_s": 6.0,
                "reason": "",
                "tools": {"syft": "1.18.1"},
                "inputs": [oci],
                "outputs": [sbom],
                "details": {},
            },
            "verify": {
                **base,
                "verdict": "pass",
                "duration_s": 0.8,
                "reason": "",
                "tools": {"cosign": "2.6.5"},
                "inputs": [oci],
                "outputs": [],
                "details": {"checks": {"signature": "pass", HOSTILE: "fail"}},
            },
        },
    }
