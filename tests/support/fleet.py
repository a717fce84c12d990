"""A fleet for the registration tests: manufactured swtpm devices, signed reference values, the fleet server.

Real swtpm + tpm2-tools for every TPM step, the pinned cosign for the reference-values bundles,
the real ASGI app (TestClient) for the server. The genuine firmware's reference values are the
real build's (tests/fixtures/firmware/reference-values.json); its measured boot is replayed into
each device's TPM (tpm2 pcrextend) on every power-on.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import json
import secrets
import subprocess  # nosec B404 - the test drives the pinned cosign
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from fastapi.testclient import TestClient
from secure_iot_server.api import create_app
from secure_iot_server.config import Settings
from secure_iot_server.trust import load_trust

from tasks.context import Context
from tasks.core import atomic
from tasks.core.errors import ToolError
from tasks.core.evidence import StageRecord
from tasks.core.media_types import REFERENCE_VALUES_PREDICATE_TYPE
from tasks.device import Agent, Batch, Manufactured, factory, manufacturer, measured_boot, protocol, resumed, running
from tasks.device.key_policy import Approval, KeyUse, approve
from tasks.firmware import RELEASE, measurements, parse_release, qemu
from tests.support.identities import OPERATOR, operator_cas, with_client_certificate
from tests.support.project import REPO, pinned

if TYPE_CHECKING:
    from secure_iot_server.attestation import Lockout

PASSWORD = secrets.token_urlsafe(24)  # the test-only cosign key pair is made per run, and so is its password
GENUINE: dict[str, Any] = json.loads((REPO / "tests/fixtures/firmware/reference-values.json").read_text())
MIN_SECURITY_VERSION = 2
MODEL = parse_release((REPO / RELEASE).read_text()).hardware_model  # what the fleet's devices are enrolled as
Events = list[tuple[int, str]]


def events_of(reference: dict[str, Any]) -> Events:
    return [(int(e["pcr"]), str(e["digest"])) for e in reference["event_log"]]


def variant(fit: bytes, version: str, security_version: int, model: str = MODEL) -> dict[str, Any]:
    """Reference values of another FIT (same trust anchor in PCR 8) for ``model``, PCRs recomputed."""
    doc: dict[str, Any] = copy.deepcopy(GENUINE)
    digest = hashlib.sha256(fit).hexdigest()
    doc.update(firmware_version=version, security_version=security_version, fit_sha256=digest, hardware_model=model)
    doc["event_log"][1]["digest"] = digest
    log = [measurements.Event(e["pcr"], e["digest"], e["what"]) for e in doc["event_log"]]
    doc["pcrs"] = {str(i): v for i, v in measurements.expected_pcrs(log).items()}
    return doc


def cosign(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # nosec B603 - argv list, the pinned binary
        [str(pinned("cosign")), *map(str, args)],
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
        env={"COSIGN_PASSWORD": PASSWORD, "PATH": "/usr/bin:/bin"},
    )


def cosign_keys(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(  # nosec B603
        [str(pinned("cosign")), "generate-key-pair"],
        cwd=directory,
        check=True,
        capture_output=True,
        timeout=60,
        env={"COSIGN_PASSWORD": PASSWORD, "PATH": "/usr/bin:/bin"},
    )
    return directory


def sign_reference_values(keys: Path, reference: dict[str, Any], bundle: Path) -> Path:
    """`cosign attest-blob --bundle` over the FIT's sha256, exactly as the pipeline's contract says."""
    predicate = bundle.with_suffix(".predicate.json")
    predicate.write_text(json.dumps(reference))
    cosign(
        "attest-blob",
        "--yes",
        "--key",
        keys / "cosign.key",
        "--tlog-upload=false",
        "--type",
        REFERENCE_VALUES_PREDICATE_TYPE,
        "--predicate",
        predicate,
        "--bundle",
        bundle,
        "--hash",
        reference["fit_sha256"],
        "firmware.fit",
    )
    return bundle


def cosign_verdict(keys: Path, bundle: Path, fit_sha256: str) -> bool:
    done = cosign(
        "verify-blob-attestation",
        "--bundle",
        bundle,
        "--key",
        keys / "cosign.pub",
        "--type",
        REFERENCE_VALUES_PREDICATE_TYPE,
        "--insecure-ignore-tlog",
        "--digest",
        fit_sha256,
        "--digestAlg",
        "sha256",
        check=False,
    )
    return done.returncode == 0


def policy_authority(directory: Path, name: str = "device-policy") -> tuple[Path, Path]:
    """A policy authority for a test fleet: an RSA-2048 pair (private 0600, public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = directory / f"{name}.key", directory / f"{name}.pub"
    atomic.write_secret(
        private,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return private, public


def fleet_ca(directory: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "secure-iot fleet CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        .sign(key, hashes.SHA256())
    )
    (directory / "fleet-ca.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    atomic.write_secret(
        directory / "fleet-ca.key",
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


@dataclass
class Fleet:
    ctx: Context
    rec: StageRecord
    work: Path
    trust_dir: Path
    keys: Path
    batch: Batch
    maker: manufacturer.Manufacturer
    client: TestClient
    db: Path
    operator: TestClient
    authority: Path  # the policy authority's public key (PEM), provisioned on every device
    approvals: dict[tuple[tuple[int, str], ...], Approval]  # each signed build's, by its event log

    @property
    def devices(self) -> list[Manufactured]:
        return self.batch.devices

    def key_use(self, log: Events) -> KeyUse:
        """The approval a device booted into ``log`` presents: that build's, or (a boot no build
        matches: tampered) the genuine build's, the best an attacker holding every approval can do."""
        genuine = self.approvals[tuple(events_of(GENUINE))]
        return KeyUse(self.authority, self.approvals.get(tuple(log), genuine))

    @contextlib.contextmanager
    def power_on(self, device: Manufactured, boot: Events) -> Iterator[Agent]:
        """The device's TPM powered on (PCRs reset), the boot's measurements extended, the agent ready."""
        scratch = self.work / "agent" / device.device_id
        scratch.mkdir(parents=True, exist_ok=True)
        with running(self.ctx, self.rec, device.state, scratch / "swtpm.log") as tpm:
            agent = Agent(self.ctx, self.rec, tpm, scratch)
            agent.extend(boot)
            yield agent

    def challenge(self, agent: Agent, ek_pem: str | None = None, *, ak_public: bytes | None = None) -> Any:
        """A challenge for a new AK (or the one the agent already has: ``ak_public``)."""
        body = {
            "ek_certificate_pem": ek_pem or agent.ek_certificate_pem(),
            "ak_public": base64.b64encode(ak_public or agent.create_ak()).decode(),
        }
        return self.client.post("/attestation/challenge", json=body)

    def answer(self, agent: Agent, challenge: dict[str, Any], code: str, device_id: str, log: Events) -> dict[str, Any]:
        secret = agent.activate_credential(base64.b64decode(challenge["credential"]))
        nonce = bytes.fromhex(challenge["nonce"])
        attest, signature = agent.quote(nonce)
        use = self.key_use(log)
        key_public = agent.create_device_key(use.authority)
        certify, certify_signature = agent.certify_device_key()
        try:
            key_signature = agent.sign_with_device_key(nonce, use.approval, use.authority)
        except ToolError:
            key_signature = b""  # the PCRs are not the approval's (or the counter moved past it): the TPM refused
        return {
            "session": challenge["session"],
            "ek_certificate_pem": agent.ek_certificate_pem(),
            "registration_code": code,
            "activated_secret": base64.b64encode(secret).decode(),
            "quote": base64.b64encode(attest).decode(),
            "signature": base64.b64encode(signature).decode(),
            "event_log": [{"pcr": p, "digest": d} for p, d in log],
            "key_public": base64.b64encode(key_public).decode(),
            "key_certify": base64.b64encode(certify).decode(),
            "key_certify_signature": base64.b64encode(certify_signature).decode(),
            "key_approval": use.approval.policy.hex(),
            "key_signature": base64.b64encode(key_signature).decode(),
            **protocol.tls_identity(agent, nonce, use, agent.work / "tls.key"),
        }

    def checkin(self, agent: Agent, certificate_pem: str, log: Events, *, fresh_power_on: bool = True) -> Any:
        """Re-attestation: a nonce, a quote with the enrolled AK, the nonce signed by the TPM-bound key
        (an empty signature when the TPM refuses the key's policy)."""
        if fresh_power_on:
            agent.load_ak()
        issued = self.client.get("/attestation/nonce").json()
        nonce = bytes.fromhex(issued["nonce"])
        attest, signature = agent.quote(nonce)
        use = self.key_use(log)
        try:
            key_signature = agent.sign_with_device_key(nonce, use.approval, use.authority)
        except ToolError:
            key_signature = b""
        body = {
            "session": issued["session"],
            "certificate_pem": certificate_pem,
            "quote": base64.b64encode(attest).decode(),
            "signature": base64.b64encode(signature).decode(),
            "event_log": [{"pcr": p, "digest": d} for p, d in log],
            "key_approval": use.approval.policy.hex(),
            "key_signature": base64.b64encode(key_signature).decode(),
        }
        return self.client.post("/attestation/checkin", json=body)

    def attested_certificate(self, device_id: str) -> str:
        from secure_iot_server.enrolment_store import EnrolmentStore

        rows = EnrolmentStore(self.db).certificates()
        return rows[device_id]

    def states(self) -> dict[str, tuple[str, str]]:
        """What the operator sees: device id -> (state, reason)."""
        rows = self.operator.get("/attestation/devices").json()
        return {r["device_id"]: (r["state"], r["reason"]) for r in rows}

    def register(
        self,
        device: Manufactured,
        *,
        boot: Events,
        code: str | None = None,
        log: Events | None = None,
        edit: Callable[[dict[str, Any]], None] | None = None,
    ) -> Any:
        """The whole registration of one freshly booted device; ``edit`` changes the answer on the wire."""
        with self.power_on(device, boot) as agent:
            first = self.challenge(agent)
            if first.status_code != 200:
                return first
            body = self.answer(agent, first.json(), code or device.code, device.device_id, log or boot)
            if edit is not None:
                edit(body)
            return self.client.post("/attestation/complete", json=body)

    def register_booted(self, device: Manufactured, machine: qemu.Device, *, full_boot: bool = True) -> tuple[Any, str]:
        """Boot the firmware in QEMU against the device's own TPM, then register with the boot's event log.

        The event log is what U-Boot's boot command printed as it measured (PCR 8, then PCR 9).
        """
        scratch = self.work / "agent" / device.device_id
        scratch.mkdir(parents=True, exist_ok=True)
        stop_at = measured_boot.AGENT_DONE if full_boot else measured_boot.MEASURED
        text = measured_boot.boot(self.ctx, self.rec, device.state, scratch / "console.log", machine, stop_at=stop_at)
        log = measured_boot.event_log(text)
        with resumed(self.ctx, self.rec, device.state, scratch) as agent:
            first = self.challenge(agent)
            if first.status_code != 200:
                return first, text
            body = self.answer(agent, first.json(), device.code, device.device_id, log)
            return self.client.post("/attestation/complete", json=body), text

    def attested(self) -> list[str]:
        from secure_iot_server.enrolment_store import EnrolmentStore

        return [row["device_id"] for row in EnrolmentStore(self.db).attested()]


def make_fleet(
    work: Path, *, devices: int = 3, lockout: Lockout | None = None, golden: tuple[dict[str, Any], ...] = ()
) -> Fleet:
    ctx = Context.create(root=REPO, out=work / "out")
    rec = StageRecord(stage="fleet-test", root=REPO)
    ctx.bind(rec)
    maker = manufacturer.create("ACME Devices")
    batch = factory.manufacture(ctx, rec, work / "factory", devices, maker, MODEL)
    trust_dir = work / "trust"
    (trust_dir / "manufacturer-ca").mkdir(parents=True)
    (trust_dir / "manufacturer-ca" / "acme.pem").write_bytes(maker.cert_pem)
    keys = cosign_keys(work / "pipeline-keys")
    (trust_dir / "pipeline-cosign.pub").write_bytes((keys / "cosign.pub").read_bytes())
    authority_key, authority = policy_authority(work / "pipeline-keys")
    (trust_dir / "device-policy.pub").write_bytes(authority.read_bytes())
    (trust_dir / "reference-values").mkdir()
    old = variant(b"firmware 1.0.0, superseded", "1.0.0", MIN_SECURITY_VERSION - 1)
    builds = {"genuine": GENUINE, "old": old} | {f"build-{n}": reference for n, reference in enumerate(golden)}
    approvals = {}
    for name, reference in builds.items():
        approval = approve(ctx, rec, reference, authority_key)
        approvals[tuple(events_of(reference))] = approval
        approved = reference | {"key_approval": approval.document()}
        sign_reference_values(keys, approved, trust_dir / "reference-values" / f"{name}.sigstore.json")
    fleet_ca(trust_dir)
    db = work / "fleet.db"
    trust = load_trust(trust_dir, min_security_version=MIN_SECURITY_VERSION, lockout=lockout)
    app = create_app(Settings(db_path=db), trust=trust, operator_cas=operator_cas(work))
    client = TestClient(app)  # a device: no client certificate
    operator = TestClient(with_client_certificate(app, OPERATOR[0]))
    manifest = batch.manifest.read_bytes()
    body = {
        "manifest": base64.b64encode(manifest).decode(),
        "signature": base64.b64encode(batch.signature.read_bytes()).decode(),
    }
    assert client.post("/attestation/manifests", json=body).status_code == 401  # operators only
    response = operator.post("/attestation/manifests", json=body)
    assert response.status_code == 201, response.text
    assert response.json() == {"enrolled": devices}
    return Fleet(ctx, rec, work, trust_dir, keys, batch, maker, client, db, operator, authority, approvals)
