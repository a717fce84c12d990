"""nox -s attest: the field story on real parts, from the signed firmware to a quarantined device.

Manufacture 3 devices; boot one with the signed firmware (QEMU against its own swtpm); register it
with its printed code (its device key created in the TPM under PolicyAuthorize by the policy
authority, used with this build's approval, certified by the AK);
boot it again and re-attest; boot it with a tampered FIT: the TPM refuses the device key, and the
check-in quarantines it (certificate revoked, refused from then on). The fleet server is the real
app over mTLS on 127.0.0.1. Fails closed without the signed firmware and its reference values.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tasks import device, firmware, signing
from tasks.context import Context, source_date_epoch
from tasks.core.checks import Check, conclude
from tasks.core.errors import ToolError
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.media_types import CONSOLE_LOG_MEDIA_TYPE
from tasks.device import fleet_server, key_policy, measured_boot, protocol

DEVICES = 3
TAMPER = "flipped-byte"


def _boot(
    ctx: Context, rec: StageRecord, made: device.Manufactured, dev: firmware.Device, console: Path, *, full: bool
) -> list[tuple[int, str]]:
    """A real boot against the device's own TPM; the event log is what U-Boot printed as it measured."""
    stop_at = measured_boot.AGENT_DONE if full else measured_boot.MEASURED
    text = measured_boot.boot(ctx, rec, made.state, console, dev, stop_at=stop_at)
    rec.add_output(console, CONSOLE_LOG_MEDIA_TYPE)
    return measured_boot.event_log(text)


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s attest", description="register, re-attest and quarantine a device")
    parser.parse_args(argv)
    trust = signing.fleet_trust(ctx, rec)  # fails closed: no signed firmware, key mode, or policy authority
    genuine, bundle, authority = trust.genuine, trust.bundle, trust.authority
    use = key_policy.KeyUse(authority, key_policy.Approval.of(genuine.reference))
    out = ctx.stage_dir("attest")
    maker = device.manufacturer_for(out / "factory")
    batch = device.manufacture(ctx, rec, out / "factory", DEVICES, maker, str(genuine.reference["hardware_model"]))
    made = batch.devices[0]
    scratch = out / "agent" / made.device_id
    scratch.mkdir(parents=True, exist_ok=True)
    server = fleet_server.prepare(
        out / "server", maker.cert_pem, trust.pipeline_key.read_bytes(), authority.read_bytes(), [bundle]
    )
    checks: list[Check] = []
    story: dict[str, Any] = {"devices": [d.device_id for d in batch.devices], "booted": made.device_id}
    genuine_dev = firmware.Device(genuine.u_boot, genuine.control_dtb, genuine.fit)
    with fleet_server.serving(rec, server, ctx.root / "app" / "src", min_security_version=0) as url:
        dev, ops = fleet_server.client(server, url), fleet_server.client(server, url, operator=True)
        with dev, ops:
            manifest = {
                "manifest": protocol.b64(batch.manifest.read_bytes()),
                "signature": protocol.b64(batch.signature.read_bytes()),
            }
            enrolled = ops.post("/attestation/manifests", json=manifest)
            checks.append(
                Check(
                    f"{DEVICES} devices manufactured; the signed manifest enrolled by the operator",
                    enrolled.status_code == 201,
                    enrolled.text[:200],
                )
            )

            log = _boot(ctx, rec, made, genuine_dev, scratch / "console-genuine.log", full=True)
            with device.resumed(ctx, rec, made.state, scratch) as agent:
                registered = protocol.register(agent, dev, made.code, log, use)
            ok = registered.status_code == 201
            certificate = registered.json().get("certificate_pem", "") if ok else ""
            key_bound = ok and protocol.certificate_is_for(certificate, (scratch / "key.pub").read_bytes())
            checks.append(
                Check(
                    "genuine boot: registered; the certificate is for the TPM key under PolicyAuthorize by the "
                    f"policy authority (this build's approval: PolicyPCR({firmware.KEY_PCR}, {firmware.FIT_PCR}) "
                    "+ the rollback counter)",
                    key_bound,
                    registered.text[:200] if not ok else "key fixedTPM|fixedParent, no userWithAuth",
                )
            )

            log = _boot(ctx, rec, made, genuine_dev, scratch / "console-reboot.log", full=True)
            with device.resumed(ctx, rec, made.state, scratch) as agent:
                again = protocol.checkin(agent, dev, certificate, log, use)
            checks.append(Check("genuine reboot: re-attested on check-in", again.status_code == 200, again.text[:200]))

            case = firmware.CASES[TAMPER]
            bad = firmware.tampered_device(ctx, rec, case, genuine, out / "tamper", epoch=source_date_epoch(ctx, rec))
            log = _boot(ctx, rec, made, bad, scratch / "console-tampered.log", full=False)

            with device.resumed(ctx, rec, made.state, scratch) as agent:
                agent.load_ak()
                try:
                    agent.sign_with_device_key(b"can this device still prove who it is?", use.approval, authority)
                    refusal = ""
                except ToolError as exc:
                    lines = str(exc).split("|")
                    refusal = next((line for line in lines if "policyauthorize" in line.lower()), str(exc)).strip()
                quarantined = protocol.checkin(agent, dev, certificate, log, use)
                after = protocol.checkin(agent, dev, certificate, log, use)
            checks.append(
                Check(
                    f"tampered boot ({case.what}): the TPM refuses the device key (this build's approval "
                    "does not match the PCRs: PolicyAuthorize fails)",
                    "policyauthorize" in refusal.lower(),
                    refusal[:200] or "the TPM signed: the key is not bound to the boot",
                )
            )
            checks.append(
                Check(
                    "tampered boot: check-in quarantines the device",
                    quarantined.status_code == 403 and "quarantined" in quarantined.text,
                    quarantined.text[:240],
                )
            )
            seen = {r["device_id"]: r for r in ops.get("/attestation/devices").json()}.get(made.device_id, {})
            checks.append(
                Check(
                    "the operator sees it quarantined, and why",
                    seen.get("state") == "quarantined",
                    str(seen.get("reason", ""))[:200],
                )
            )
            checks.append(
                Check(
                    "its certificate is revoked and refused from then on",
                    after.status_code == 403 and "revoked" in after.text,
                    after.text[:200],
                )
            )
            story["operator_view"] = seen
            story["revocations"] = ops.get("/attestation/revocations").json()
    rec.details["attest"] = story
    return conclude(rec, "attest: register, re-attest, quarantine", checks, report=out / "report.json", document=story)
