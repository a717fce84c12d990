"""nox -s factory -- --devices N"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from rich.table import Table

from tasks import device, firmware
from tasks.context import Context
from tasks.core.checks import Check, conclude
from tasks.core.console import console
from tasks.core.errors import InputError
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.media_types import MANUFACTURING_MANIFEST_MEDIA_TYPE, PEM_CERTIFICATE_MEDIA_TYPE

MAX_DEVICES = 100


def _release_model(ctx: Context) -> str:
    """The board firmware/release.toml builds for: what the factory's devices are enrolled as by default."""
    release = ctx.inside(firmware.RELEASE)
    if not release.is_file():
        raise InputError(f"{firmware.RELEASE}: missing; pass --model <hardware model> or restore the release file")
    return firmware.parse_release(release.read_text(), str(firmware.RELEASE)).hardware_model


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s factory", description="manufacture devices (swtpm TPMs, EK certs)")
    parser.add_argument("--devices", type=int, default=3, help=f"how many devices (1-{MAX_DEVICES})")
    parser.add_argument("--model", help=f"hardware model (default: {firmware.RELEASE}'s hardware_model)")
    args = parser.parse_args(argv)
    if not 1 <= args.devices <= MAX_DEVICES:
        parser.error(f"--devices must be 1-{MAX_DEVICES}")
    out = ctx.stage_dir("factory")
    maker = device.manufacturer_for(out)
    model = args.model or _release_model(ctx)
    batch = device.manufacture(ctx, rec, out, args.devices, maker, model)
    rec.add_output(out / "manufacturer-ca.pem", PEM_CERTIFICATE_MEDIA_TYPE)
    rec.add_output(batch.manifest, MANUFACTURING_MANIFEST_MEDIA_TYPE)
    rec.add_output(batch.signature)
    checks = []
    for made in batch.devices:
        scratch = made.state.parent / "agent"
        scratch.mkdir(exist_ok=True)
        with device.running(ctx, rec, made.state, made.state.parent / "swtpm.log") as tpm:
            pem = device.Agent(ctx, rec, tpm, scratch).ek_certificate_pem()
        cert = x509.load_pem_x509_certificate(pem.encode())
        try:
            cert.verify_directly_issued_by(maker.cert)
            chained = True
        except (ValueError, TypeError, InvalidSignature):
            chained = False
        checks.append(
            Check(
                f"{made.device_id}: EK certificate in TPM NV, issued by the manufacturer CA",
                chained,
                f"serial {cert.serial_number:x}",
            )
        )
    rec.details["devices"] = [d.device_id for d in batch.devices]
    label = Table(title="registration codes: printed once, on each device's label (not stored anywhere)")
    label.add_column("device")
    label.add_column("registration code")
    for made in batch.devices:
        label.add_row(made.device_id, made.code)
    console.print(label)
    return conclude(
        rec,
        f"factory: {args.devices} device(s)",
        checks,
        report=out / "report.json",
        document={"devices": rec.details["devices"], "manifest": batch.manifest.name},
    )
