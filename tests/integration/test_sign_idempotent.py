"""Re-running sign leaves one signature and no new attestation; verify re-asks cosign only when the
registry serves other signature bytes (tasks/signing/verified.py). Real cosign, the chain's registry."""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest

from tests.support.chain import PASSWORD, Chain, sh, variant
from tests.support.project import pinned

pytestmark = pytest.mark.slow

ACCEPT = "application/vnd.oci.image.manifest.v1+json"


def layers(ref: str, suffix: str) -> int:
    """How many signatures (.sig) or statements (.att) cosign's tag for ``ref`` holds."""
    repository, digest = ref.split("@", 1)
    address, name = repository.split("/", 1)
    host, port = address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)  # the chain's loopback registry
    try:
        tag = digest.replace(":", "-") + suffix
        connection.request("GET", f"/v2/{name}/manifests/{tag}", headers={"Accept": ACCEPT})
        return len(json.loads(connection.getresponse().read())["layers"])
    finally:
        connection.close()


def stage_record(chain: Chain, name: str) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((chain.out / "evidence.json").read_text())["stages"][name]
    return record


def cosign_commands(record: dict[str, Any]) -> list[str]:
    return [c["argv"][1] for c in record["commands"] if c["argv"][0].endswith("cosign")]


def test_sign_twice_leaves_one_signature_and_attaches_nothing_new(chain: Chain) -> None:
    signatures, statements = layers(chain.ref, ".sig"), layers(chain.ref, ".att")
    assert signatures == 1
    for _ in range(2):
        code, output = chain.run("sign")
        assert code == 0, output[-2000:]
        assert "(already signed)" in output
    record = stage_record(chain, "sign")
    assert record["details"]["already_signed"] == chain.ref
    assert set(record["details"]["already_attached"]) == set(record["details"]["attached"])
    assert "sign" not in cosign_commands(record) and "attest" not in cosign_commands(record)
    assert (layers(chain.ref, ".sig"), layers(chain.ref, ".att")) == (signatures, statements)


def test_verify_reuses_cosign_only_while_the_same_signatures_are_served(chain: Chain, tmp_path: Any) -> None:
    image = variant(chain, "memo")
    cosign = pinned("cosign")
    key_env = {"COSIGN_PASSWORD": PASSWORD}
    flags = ["--tlog-upload=false", "--allow-insecure-registry", "--allow-http-registry"]
    sh(cosign, "sign", "--yes", "--key", chain.keys / "cosign.key", *flags, image, env=key_env)
    remembered = {"SECURE_IOT_FORCE": "0"}  # tests force by default; this one is about the re-check

    def signature_check() -> tuple[dict[str, Any], dict[str, Any]]:
        code, output = chain.run("verify", "--image", image, env=remembered)
        assert code == 1, output[-2000:]  # the variant carries no attestations: verify fails, the signature holds
        record = stage_record(chain, "verify")
        checks = {c["name"]: c for c in json.loads((chain.out / "verify" / "report.json").read_text())["checks"]}
        return record, checks["signature"]

    first, check = signature_check()
    assert check["passed"] and "verify" in cosign_commands(first)
    second, check = signature_check()
    assert check["passed"] and "verify" not in cosign_commands(second)
    assert any(r["command"] == "cosign verify" for r in second["details"]["reused"])

    # another signer's signature changes the .sig manifest: cosign is asked again (and still verifies ours)
    other = tmp_path / "other"
    other.mkdir()
    sh(cosign, "generate-key-pair", "--output-key-prefix", other / "cosign", env={"COSIGN_PASSWORD": ""})
    sh(cosign, "sign", "--yes", "--key", other / "cosign.key", *flags, image, env={"COSIGN_PASSWORD": ""})
    third, check = signature_check()
    assert check["passed"] and "verify" in cosign_commands(third)
