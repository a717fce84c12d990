"""`python -m tasks factory --devices 2` as a user runs it: TPMs, EK certificates in NV, a signed manifest,
codes printed once and written nowhere."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.project import REPO, run_tasks

pytestmark = pytest.mark.slow
CODE = r"[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}"


def test_factory_makes_devices_and_a_signed_manifest(project: Path) -> None:
    out = project / "out"
    refused = run_tasks("factory", "--devices", "2", root=project, env={"SECURE_IOT_OUT": str(out)})
    assert refused.returncode != 0 and "pass --model" in refused.output, refused.output[-2000:]
    assert "Traceback" not in refused.output  # one actionable line: which model are these devices?
    (project / "firmware").mkdir()
    shutil.copy(REPO / "firmware" / "release.toml", project / "firmware" / "release.toml")
    result = run_tasks("factory", "--devices", "2", root=project, env={"SECURE_IOT_OUT": str(out)})
    assert result.returncode == 0, result.output[-3000:]
    factory = out / "factory"
    (manifest,) = factory.glob("manifest-*.json")
    document = json.loads(manifest.read_text())
    ca = x509.load_pem_x509_certificate((factory / "manufacturer-ca.pem").read_bytes())
    key = ca.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(
        manifest.with_name(manifest.name + ".sig").read_bytes(), manifest.read_bytes(), ec.ECDSA(hashes.SHA256())
    )
    assert len(document["devices"]) == 2
    codes = re.findall(CODE, result.output)
    assert len(codes) == 2  # printed once, on the label
    written = "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file() and p.suffix != ".key")
    assert not any(code in written for code in codes)  # and nowhere else: only the scrypt hash travels
    for record in document["devices"]:
        assert set(record["registration_code"]) == {"kdf", "n", "r", "p", "salt", "hash"}
        x509.load_pem_x509_certificate(record["ek_certificate_pem"].encode()).verify_directly_issued_by(ca)
        assert (factory / "devices" / record["device_id"] / "tpm").is_dir()
