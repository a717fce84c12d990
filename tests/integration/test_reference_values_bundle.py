"""Golden values only from the pipeline's signature: the server's DSSE check agrees with cosign's.

Bundles are made by the pinned cosign (`attest-blob --bundle`, the pipeline's contract); each
case is judged by the server's verify_bundle and by `cosign verify-blob-attestation` offline,
and both verdicts must be the same.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from secure_iot_server.reference_values import ReferenceValuesError, verify_bundle

from tests.support.fleet import GENUINE, cosign_keys, cosign_verdict, sign_reference_values

pytestmark = pytest.mark.slow


# The key approval's own checks (its digest, the authority's signature) are key_policy's, tested in
# tests/integration/test_key_policy_tpm.py; here it only has to be present and well-formed.
APPROVED = GENUINE | {"key_approval": {"policy": "00" * 32, "signature": "", "counter_at_most": 2}}


def server_verdict(keys: Path, bundle: Path) -> bool:
    key = serialization.load_pem_public_key((keys / "cosign.pub").read_bytes())
    assert isinstance(key, ec.EllipticCurvePublicKey)
    try:
        golden = verify_bundle(bundle.read_bytes(), key)
    except ReferenceValuesError:
        return False
    assert golden.fit_sha256 == GENUINE["fit_sha256"]
    return True


def edit_statement(bundle: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    """The envelope's payload edited after signing; the signature kept."""
    outer = json.loads(bundle.read_text())
    envelope = json.loads(base64.b64decode(outer["base64Signature"]))
    statement = json.loads(base64.b64decode(envelope["payload"]))
    change(statement)
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    outer["base64Signature"] = base64.b64encode(json.dumps(envelope).encode()).decode()
    edited = bundle.with_name("edited-" + bundle.name)
    edited.write_text(json.dumps(outer))
    return edited


def test_server_and_cosign_agree_on_genuine_and_edited_bundles(tmp_path: Path) -> None:
    pipeline, other = cosign_keys(tmp_path / "pipeline"), cosign_keys(tmp_path / "other")
    genuine = sign_reference_values(pipeline, APPROVED, tmp_path / "genuine.sigstore.json")
    foreign = sign_reference_values(other, APPROVED, tmp_path / "foreign.sigstore.json")

    def lower_version(s: dict[str, Any]) -> None:
        s["predicate"]["security_version"] = 99

    def swap_pcr9(s: dict[str, Any]) -> None:
        s["predicate"]["event_log"][1]["digest"] = "ab" * 32

    cases = {
        "genuine": (genuine, True),
        "signed by another key": (foreign, False),
        "security version edited": (edit_statement(genuine, lower_version), False),
        "measurement edited": (edit_statement(genuine, swap_pcr9), False),
    }
    verdicts = {
        name: (server_verdict(pipeline, bundle), cosign_verdict(pipeline, bundle, GENUINE["fit_sha256"]))
        for name, (bundle, _) in cases.items()
    }
    assert verdicts == {name: (want, want) for name, (_, want) in cases.items()}
