"""nox -s lifecycle: one device from manufacture to release from quarantine, on real parts (talk 03-08).

After `nox -s keys firmware` (build N): the stage builds N+1 (security version + 1) with the same
keys, signs its reference values and key approval, and runs one device through the lifecycle:

    manufacture -> boot N (U-Boot in QEMU, from slot A, against the device's own swtpm) -> register
    (TPM-bound key under PolicyAuthorize, TLS identity) -> check in -> release N+1 to the OTA
    repository (TUF + RAUC, mTLS with the device's TLS identity, the fleet CA's CRL refreshed every
    second) -> update into slot B -> boot N+1 -> marked good, the TPM counter raised -> check in on
    N+1: same key, same certificate -> boot N again (BOOT_ORDER rewritten: a rollback) -> the TPM
    refuses the key and the server says `rollback` -> boot a tampered FIT -> quarantined -> the OTA
    repository refuses its TLS identity within the refresh interval -> the operator releases it ->
    booted on N+1 it registers afresh.

The fleet server is the real app over mTLS on 127.0.0.1; the repository is the real mTLS server.
The network edge is `nox -s network` (it needs root and namespaces; tests/integration/test_network.py
takes the same CRL there). Everything the stage makes is under out/lifecycle/.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509

from tasks import device, firmware, ota, signing
from tasks.context import Context, source_date_epoch
from tasks.core import atomic
from tasks.core.checks import Check, conclude
from tasks.core.errors import SigningError, ToolError
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.media_types import CONSOLE_LOG_MEDIA_TYPE, REFERENCE_VALUES_PREDICATE_TYPE, SIGSTORE_BUNDLE_MEDIA_TYPE
from tasks.device import fleet_server, key_policy, manufacturer, measured_boot, protocol, revocations
from tasks.device.key_policy import Approval, KeyUse
from tasks.firmware import console_log, slots

if TYPE_CHECKING:
    import httpx

REFRESH_S = 1.0  # how often the repository's copy of the fleet CA's CRL is refreshed
DOOR_WAIT_S = 15.0


@dataclasses.dataclass(frozen=True)
class Build:
    """One signed build as the device sees it: its FIT, reference values (with the key approval), bundle."""

    fit: Path
    reference: dict[str, Any]
    bundle: Path

    @property
    def approval(self) -> Approval:
        return Approval.of(self.reference)

    @property
    def security_version(self) -> int:
        return int(self.reference["security_version"])


def _next_build(ctx: Context, rec: StageRecord, genuine: firmware.Genuine, out: Path, authority: Path) -> Build:
    """N+1: the same release with the security version raised, built and signed like `nox -s firmware`."""
    current = firmware.parse_release(ctx.inside(firmware.RELEASE).read_text())
    release = dataclasses.replace(
        current, version=f"{current.version}-next", security_version=current.security_version + 1
    )
    built = firmware.build_firmware(ctx, rec, out, epoch=source_date_epoch(ctx, rec), release=release)
    if built.path(firmware.CONTROL_DTB_NAME).read_bytes() != genuine.control_dtb.read_bytes():
        raise ToolError("N+1's control DTB differs from N's: the device's root of trust would change")
    approval = key_policy.approve(ctx, rec, built.reference, authority)
    built.reference["key_approval"] = approval.document()
    reference = built.path(firmware.REFERENCE_NAME)
    atomic.write_json(reference, built.reference)
    bundle = built.path(firmware.REFERENCE_BUNDLE_NAME)
    signing.attest_blob(
        ctx,
        rec,
        signing.configured(ctx),
        built.path(firmware.FIT_NAME),
        REFERENCE_VALUES_PREDICATE_TYPE,
        reference,
        bundle,
    )
    rec.add_output(bundle, SIGSTORE_BUNDLE_MEDIA_TYPE)
    return Build(built.path(firmware.FIT_NAME), built.reference, bundle)


class Story:
    """The device's side, step by step; every boot's console is kept as evidence."""

    def __init__(
        self,
        ctx: Context,
        rec: StageRecord,
        batch: device.Batch,
        disk: slots.Disk,
        work: Path,
        genuine: firmware.Genuine,
        authority: Path,
    ) -> None:
        self.ctx, self.rec, self.batch, self.made, self.disk, self.work = ctx, rec, batch, batch.devices[0], disk, work
        self.genuine = genuine
        self.machine = firmware.Device(genuine.u_boot, genuine.control_dtb, None, disk.path)
        self.authority = authority
        self.boots = 0

    def boot(
        self, name: str, machine: firmware.Device | None = None, *, full: bool = True
    ) -> tuple[str, list[tuple[int, str]]]:
        """A measured boot; (the slot U-Boot chose, the event log it printed)."""
        self.boots += 1
        console = self.work / f"{self.boots:02d}-{name}.console.log"
        stop_at = measured_boot.AGENT_DONE if full else measured_boot.MEASURED
        text = measured_boot.boot(
            self.ctx, self.rec, self.made.state, console, machine or self.machine, stop_at=stop_at
        )
        self.rec.add_output(console, CONSOLE_LOG_MEDIA_TYPE)
        slot = console_log.parse((0.0, line) for line in text.splitlines()).slot
        return slot, measured_boot.event_log(text)

    def agent(self) -> contextlib.AbstractContextManager[device.Agent]:
        """The device's agent on its TPM as the last boot left it."""
        return device.resumed(self.ctx, self.rec, self.made.state, self.work / "agent")

    def use(self, build: Build) -> KeyUse:
        return KeyUse(self.authority, build.approval)


def _control_identity(server: fleet_server.FleetServer, tls_dir: Path) -> ota.DeviceTls:
    """Another fleet-CA TLS identity, never revoked: the repository must keep serving it."""
    fleet = manufacturer.load_ca(server.trust / "fleet-ca.pem", server.trust / "fleet-ca.key")
    cert_pem, key_pem = fleet_server.leaf(fleet, "control", server=False)
    atomic.write_bytes(tls_dir / "control.pem", cert_pem)
    atomic.write_secret(tls_dir / "control.key", key_pem)
    return ota.DeviceTls(tls_dir / "control.pem", tls_dir / "control.key", tls_dir / "repository-ca.pem")


def _until(what: Callable[[], bool], seconds: float) -> float | None:
    """Seconds until ``what`` holds, or None if it did not within ``seconds``."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        if what():
            return time.monotonic() - start
        time.sleep(0.1)
    return None


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s lifecycle", description="one device through its whole lifecycle")
    parser.parse_args(argv)
    trust = signing.fleet_trust(ctx, rec)  # fails closed: no signed firmware, key mode, or policy authority
    genuine, authority_pub = trust.genuine, trust.authority
    out = ctx.stage_dir("lifecycle")
    n = Build(genuine.fit, genuine.reference, trust.bundle)
    authority_key = authority_pub.with_name("authority.key")
    if not authority_key.is_file():  # never made here: a stray new key would not match authority.pub
        raise SigningError(f"{authority_key}: the policy authority's key signs N+1's approval; it is not here")
    n1 = _next_build(ctx, rec, genuine, out / "next", authority_key)
    model = str(genuine.reference["hardware_model"])
    maker = device.manufacturer_for(out / "factory")
    batch = device.manufacture(ctx, rec, out / "factory", 1, maker, model)
    made = batch.devices[0]
    (out / "agent").mkdir(parents=True, exist_ok=True)
    disk = slots.Disk.create(out / "slots.img", firmware.env_tools(ctx), rec, n.fit)
    story = Story(ctx, rec, batch, disk, out, genuine, authority_pub)
    server = fleet_server.prepare(
        out / "server",
        maker.cert_pem,
        trust.pipeline_key.read_bytes(),
        authority_pub.read_bytes(),
        [n.bundle, n1.bundle],
    )
    checks: list[Check] = []
    seen: dict[str, Any] = {
        "device": made.device_id,
        "n": n.reference["firmware_version"],
        "n1": n1.reference["firmware_version"],
    }

    def check(name: str, ok: bool, detail: str) -> bool:
        checks.append(Check(name, ok, detail[:300]))
        return ok

    with fleet_server.serving(rec, server, ctx.root / "app" / "src", min_security_version=0) as url:
        dev, ops = fleet_server.client(server, url), fleet_server.client(server, url, operator=True)
        with dev, ops:
            _story(ctx, rec, story, server, url, dev, ops, n, n1, model, out, check, seen)
    rec.details["lifecycle"] = seen
    return conclude(
        rec, "lifecycle: update, rollback, quarantine, release", checks, report=out / "report.json", document=seen
    )


def _story(
    ctx: Context,
    rec: StageRecord,
    story: Story,
    server: fleet_server.FleetServer,
    url: str,
    dev: httpx.Client,
    ops: httpx.Client,
    n: Build,
    n1: Build,
    model: str,
    out: Path,
    check: Callable[[str, bool, str], bool],
    seen: dict[str, Any],
) -> None:
    made = story.made
    body = {
        "manifest": protocol.b64(story.batch.manifest.read_bytes()),
        "signature": protocol.b64(story.batch.signature.read_bytes()),
    }
    enrolled = ops.post("/attestation/manifests", json=body)
    if not check(
        "manufactured; the signed manifest enrolled by the operator", enrolled.status_code == 201, enrolled.text
    ):
        return

    slot, log = story.boot("factory-N")
    with story.agent() as agent:
        registered = protocol.register(agent, dev, made.code, log, story.use(n))
    if not check(
        f"boot N from slot {slot}: registered (TPM key under PolicyAuthorize, TLS identity)",
        registered.status_code == 201,
        registered.text,
    ):
        return
    certificate = registered.json()["certificate_pem"]
    tls_dir = out / "tls"
    tls_dir.mkdir(exist_ok=True)
    if not check(
        "the fleet CA certified its TLS identity", "tls_certificate_pem" in registered.json(), registered.text
    ):
        return
    atomic.write_text(tls_dir / "device.pem", registered.json()["tls_certificate_pem"])

    with story.agent() as agent:
        first = protocol.checkin(agent, dev, certificate, log, story.use(n))
    check("check-in on N: attested", first.status_code == 200, first.text)

    # The release: N+1 to the OTA repository over mTLS, with the fleet CA's CRL kept fresh.
    config = ota.load_config(ctx.inside(ota.CONFIG))
    repo = ota.Repository.open(out / "repository", ota.TufKeys(ctx.root / ota.KEY_DIR / "tuf"), config)
    pki = ota.rauc_pki(ctx.tool("openssl"), rec, ctx.root / ota.KEY_DIR / "rauc")
    version = str(n1.reference["firmware_version"])
    bundle = ota.bundle.build(
        ctx.tool("rauc"),
        ctx.tool("mksquashfs"),
        rec,
        pki,
        n1.fit,
        out / f"{model}-{version}.raucb",
        model=model,
        version=version,
        security_version=n1.security_version,
        fit_digest=f"sha256:{n1.reference['fit_sha256']}",
    )
    custom = {
        "firmware_version": version,
        "security_version": n1.security_version,
        "hardware_model": model,
        "slsa_provenance": None,
        "slsa_provenance_note": "the lifecycle's own N+1 build",
    }
    repo.publish(model, bundle, custom)
    repo_ca = manufacturer.create("secure-iot update server")
    atomic.write_bytes(tls_dir / "repository-ca.pem", repo_ca.cert_pem)
    cert_pem, key_pem = fleet_server.leaf(repo_ca, "repository", server=True)
    atomic.write_bytes(tls_dir / "repository.pem", cert_pem)
    atomic.write_secret(tls_dir / "repository.key", key_pem)
    crl = tls_dir / "fleet-ca.crl.pem"
    tls = ota.ServerTls(tls_dir / "repository.pem", tls_dir / "repository.key", server.trust / "fleet-ca.pem", crl)
    device_tls = ota.DeviceTls(tls_dir / "device.pem", out / "agent" / "tls.key", tls_dir / "repository-ca.pem")
    control = _control_identity(server, tls_dir)  # a fleet identity nobody revokes: tells refusal from breakage
    ota_device = ota.Device.provision(
        out / "ota-device",
        model=model,
        trusted_root=repo.trusted_root(1),
        keyring=pki.ca_cert,
        fit=n.fit,
        version=str(n.reference["firmware_version"]),
        security_version=n.security_version,
    )
    fetched = (server.home / "server-ca.pem", server.trust / "fleet-ca.pem", crl)
    with (
        revocations.refreshing(url, *fetched, every=REFRESH_S) as failures,
        ota.serve(rec, repo.directory, out / "repository.log", tls=tls) as repo_url,
    ):
        try:
            got = ota.update(
                ota_device,
                ota.Source.https(repo_url, device_tls),
                rauc=ctx.tool("rauc"),
                mksquashfs=ctx.tool("mksquashfs"),
                rec=rec,
                boot=story.disk,
            )
            installed = f"{got.result} {got.version} into slot {got.slot}; BOOT_ORDER {story.disk.env()['BOOT_ORDER']}"
            ok = (got.result, got.slot) == ("installed", "B")
        except ota.UpdateRefused as exc:
            installed, ok = str(exc), False
        if not check("release N+1: TUF + RAUC over mTLS (the device's TLS identity) into slot B", ok, installed):
            return

        slot, log = story.boot("updated-N+1")
        state = ota_device.boot_result(healthy=slot == "B", booted=slot, boot=story.disk)
        good = slot == "B" and state["slots"]["B"]["status"] == "good" and story.disk.env()["BOOT_B_LEFT"] == "3"
        with story.agent() as agent:
            counter = agent.raise_rollback_counter(n1.security_version) if good else agent.rollback_counter()
            again = protocol.checkin(agent, dev, certificate, log, story.use(n1))
        check(
            f"boot N+1 from slot {slot}: marked good (BOOT_B_LEFT=3), then the TPM counter raised to {counter}",
            good and counter == n1.security_version == state["security_counter"],
            f"slot {slot}, status {(state['slots'].get('B') or {}).get('status')}, counter {counter}",
        )
        check(
            "check-in on N+1: still attested, same key and certificate",
            again.status_code == 200 and again.json().get("firmware") == n1.reference["firmware_version"],
            again.text,
        )

        story.disk.set_primary("A")  # an attacker with the disk puts the older, signed build first
        slot, log = story.boot("rollback-N")
        with story.agent() as agent:
            try:
                agent.sign_with_device_key(b"rollback?", n.approval, story.authority)
                refusal = ""
            except ToolError as exc:
                said = str(exc).split("|")
                refusal = next((line for line in said if "Esys_PolicyNV" in line and "ErrorCode" in line), str(exc))
            rolled = protocol.checkin(agent, dev, certificate, log, story.use(n))
        check(
            f"rollback: boot N (slot {slot}), the TPM refuses the key (PolicyNV: TPM_RC_POLICY)",
            slot == "A" and "Esys_PolicyNV" in refusal and "(0x00000126)" in refusal,  # TPM_RC_POLICY
            refusal or "the TPM signed",
        )
        check(
            "rollback: the server refuses the check-in at `rollback`",
            rolled.status_code == 403 and rolled.json().get("step") == "rollback",
            rolled.text,
        )

        case = firmware.CASES["flipped-byte"]
        bad = firmware.tampered_device(ctx, rec, case, story.genuine, out / "tamper", epoch=source_date_epoch(ctx, rec))
        _, log = story.boot("tampered", bad, full=False)
        with story.agent() as agent:
            quarantined = protocol.checkin(agent, dev, certificate, log, story.use(n1))
        check(
            "tampered boot: quarantined at reference-values",
            quarantined.status_code == 403 and quarantined.json().get("step") == "reference-values",
            quarantined.text,
        )
        lag = _until(lambda: not ota.serves(repo_url, device_tls), DOOR_WAIT_S)
        seen["repository_refused_after_s"] = None if lag is None else round(lag, 2)
        tls_serial = x509.load_pem_x509_certificate((tls_dir / "device.pem").read_bytes()).serial_number
        listed = x509.load_pem_x509_crl(crl.read_bytes()).get_revoked_certificate_by_serial_number(tls_serial)
        control_served = ota.serves(repo_url, control)  # the repository still serves an unrevoked fleet identity
        seen["crl_refresh_failures"] = list(failures)
        check(
            "the OTA repository refuses its TLS identity, listed on the fleet CA's CRL "
            f"(refreshed every {REFRESH_S:.0f} s)",
            lag is not None and listed is not None and control_served and not failures,
            f"refused after {lag:.2f} s; on the CRL: {listed is not None}; another identity served: {control_served}"
            if lag is not None
            else "still served",
        )

    released = ops.post(
        f"/attestation/devices/{made.device_id}/release", json={"note": "re-flashed with N+1 (lifecycle)"}
    )
    check("the operator releases it after re-flashing (audited)", released.status_code == 200, released.text)
    story.disk.set_primary("B")
    slot, log = story.boot("reflashed-N+1")
    with story.agent() as agent:
        fresh = protocol.register(agent, dev, made.code, log, story.use(n1))
    renewed = fresh.json() if fresh.status_code == 201 else {}
    check(
        f"booted N+1 (slot {slot}), it registers afresh: new certificates, the old ones still revoked",
        bool(renewed)
        and renewed["certificate_pem"] != certificate
        and renewed.get("tls_certificate_pem") not in (None, (tls_dir / "device.pem").read_text())
        and listed is not None,
        fresh.text,
    )
    seen["operator_view"] = ops.get("/attestation/devices").json()
    seen["releases"] = ops.get("/attestation/releases").json()
