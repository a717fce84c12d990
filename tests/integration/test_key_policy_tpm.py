"""The device key's PolicyAuthorize + rollback counter on a real TPM (swtpm, tpm2-tools), and the server's
offline computation of the same digests (app key_policy.py) checked against what the TPM computes.

A boot is a power-on (PCRs reset) with the build's measurements extended, as tests/support/fleet.py
does; the counter is the factory's. Each refusal is the TPM's own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from secure_iot_server import key_policy as server_policy
from secure_iot_server import tpm as server_tpm
from secure_iot_server.reference_values import Golden

from tasks.context import Context
from tasks.core.errors import ToolError
from tasks.core.evidence import StageRecord
from tasks.device import Agent, running
from tasks.device.key_policy import ROLLBACK_COUNTER, Approval, approve, define_counter
from tasks.device.tpm2 import tpm2
from tasks.firmware import measurements, swtpm
from tests.support.fleet import policy_authority
from tests.support.project import REPO

Reference = dict[str, Any]
KEY_MODULUS_DIGEST = hashlib.sha256(b"the control DTB's required key").hexdigest()


def build(name: str, security_version: int) -> Reference:
    """Reference values of a build whose FIT is ``name`` (PCR 8: one trust anchor for every build)."""
    log = [
        measurements.Event(measurements.KEY_PCR, KEY_MODULUS_DIGEST, "key"),
        measurements.Event(measurements.FIT_PCR, hashlib.sha256(name.encode()).hexdigest(), "fit"),
    ]
    return {
        "firmware_version": name,
        "security_version": security_version,
        "event_log": [{"pcr": e.pcr, "digest": e.digest} for e in log],
        "pcrs": {str(i): v for i, v in measurements.expected_pcrs(log).items()},
    }


def events(reference: Reference) -> list[tuple[int, str]]:
    return [(int(e["pcr"]), str(e["digest"])) for e in reference["event_log"]]


def golden(reference: Reference, approval: Approval) -> Golden:
    return Golden(
        "00" * 32,
        "test-board",
        str(reference["firmware_version"]),
        int(str(reference["security_version"])),
        tuple(events(reference)),
        approval.policy,
        approval.signature,
    )


class Device:
    """One TPM, as the factory leaves it (EK, counter at 1); each power_on is a boot of one build."""

    def __init__(self, ctx: Context, rec: StageRecord, home: Path) -> None:
        self.ctx, self.rec, self.home = ctx, rec, home
        swtpm.manufacture_state(ctx, rec, home / "tpm")
        with running(ctx, rec, home / "tpm", home / "swtpm.log") as tpm:
            define_counter(ctx, rec, tpm, home)

    @contextlib.contextmanager
    def power_on(self, reference: Reference) -> Iterator[Agent]:
        with running(self.ctx, self.rec, self.home / "tpm", self.home / "swtpm.log") as tpm:
            agent = Agent(self.ctx, self.rec, tpm, self.home)
            agent.extend(events(reference))
            yield agent


@dataclass
class World:
    pub: Path  # the policy authority's public key (PEM)
    n: Reference  # build N (security version 2)
    n1: Reference  # build N+1 (security version 3)
    approvals: dict[str, Approval]
    device: Device

    @property
    def authority(self) -> rsa.RSAPublicKey:
        key = serialization.load_pem_public_key(self.pub.read_bytes())
        assert isinstance(key, rsa.RSAPublicKey)
        return key


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    work = tmp_path_factory.mktemp("key-policy")
    ctx = Context.create(root=REPO, out=work / "out")
    rec = StageRecord(stage="key-policy-test", root=REPO)
    ctx.bind(rec)
    authority, authority_pub = policy_authority(work, "authority")
    stranger, _ = policy_authority(work, "stranger")
    n, n1 = build("1.1.0", 2), build("1.2.0", 3)
    approvals = {"n": approve(ctx, rec, n, authority), "n1": approve(ctx, rec, n1, authority)}
    approvals["n-by-stranger"] = approve(ctx, rec, n, stranger)
    device = Device(ctx, rec, work / "device")
    return World(authority_pub, n, n1, approvals, device)


def sign(device: Device, booted: Reference, approval: Approval, authority: Path) -> bytes | str:
    with device.power_on(booted) as agent:
        try:
            return agent.sign_with_device_key(b"nonce", approval, authority)
        except ToolError as exc:
            return str(exc)


def test_the_server_computes_what_the_tpm_computes(world: World) -> None:
    """The authority's TPM name, the key's PolicyAuthorize and each approval's PolicyPCR ; PolicyNV."""
    with world.device.power_on(world.n) as agent:
        key_public = agent.create_device_key(world.pub)
        assert (world.device.home / "authority.name").read_bytes() == server_tpm.external_rsa_name(world.authority)
    assert server_tpm.parse_ecc_public(key_public).auth_policy == server_policy.key_policy(world.authority)
    for name, reference in (("n", world.n), ("n1", world.n1)):
        approval = world.approvals[name]
        assert server_policy.approval(golden(reference, approval)) == approval.policy
        server_policy.verify_approval(golden(reference, approval), world.authority)


def test_an_update_keeps_the_key_and_a_rollback_after_the_counter_moved_is_refused(world: World) -> None:
    approvals, pub = world.approvals, world.pub
    with world.device.power_on(world.n) as agent:
        agent.create_device_key(pub)
    assert isinstance(sign(world.device, world.n, approvals["n"], pub), bytes)
    # booted N+1 (pending): its approval works with the same key; N's does not match these PCRs
    assert isinstance(sign(world.device, world.n1, approvals["n1"], pub), bytes)
    assert "policyauthorize" in str(sign(world.device, world.n1, approvals["n"], pub)).lower()
    # before N+1 is marked good, N still works (U-Boot may fall back to it)
    assert isinstance(sign(world.device, world.n, approvals["n"], pub), bytes)
    # N+1 marked good: the counter rises to its security version
    with world.device.power_on(world.n1) as agent:
        assert agent.raise_rollback_counter(3) == 3
    refused = sign(world.device, world.n, approvals["n"], pub)
    assert isinstance(refused, str) and "policynv" in refused.lower(), refused
    with world.device.power_on(world.n1) as agent, pytest.raises(ToolError, match="nvincrement"):
        tpm2(agent.ctx, agent.rec, agent.tpm, ["nvincrement", ROLLBACK_COUNTER])  # the index's own auth: refused
    assert isinstance(sign(world.device, world.n1, approvals["n1"], pub), bytes)


def test_an_approval_signed_by_another_key_is_refused_by_the_tpm_and_the_server(world: World) -> None:
    stranger = world.approvals["n-by-stranger"]
    refused = sign(world.device, world.n, stranger, world.pub)
    assert isinstance(refused, str) and "verifysignature" in refused.lower(), refused
    with pytest.raises(ValueError, match="not signed by the fleet's policy authority"):
        server_policy.verify_approval(golden(world.n, stranger), world.authority)


def test_an_approval_that_is_not_the_builds_is_refused(world: World) -> None:
    """A widened approval (another build's PCRs, or a higher counter bound), even when the authority
    signed it, is not this build's: the server recomputes it from the signed values."""
    with pytest.raises(ValueError, match="is not PolicyPCR"):
        server_policy.verify_approval(golden(world.n, world.approvals["n1"]), world.authority)
    wider = golden(world.n, world.approvals["n"])
    with pytest.raises(ValueError, match="is not PolicyPCR"):
        server_policy.verify_approval(dataclasses.replace(wider, security_version=999), world.authority)
