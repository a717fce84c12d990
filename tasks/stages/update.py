"""nox -s update"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from pathlib import Path

from tasks import firmware, ota, signing
from tasks.context import Context
from tasks.core.checks import Check, conclude
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.media_types import CONSOLE_LOG_MEDIA_TYPE
from tasks.core.recorded import PublishedRelease


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(
        prog="nox -s update",
        description="a booted QEMU device takes the published release into its other slot and boots it (A/B)",
    )
    parser.add_argument("--model", help="hardware model (default: infra/ota/repository.toml's default_model)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds until an unfinished boot is stopped")
    args = parser.parse_args(argv)
    genuine = signing.genuine_firmware(ctx, rec)  # the FIT, boot loader, control DTB; reference values verified
    config = ota.load_config(ctx.inside(ota.CONFIG))
    model = args.model or config.default_model
    release = PublishedRelease.read(ctx.evidence)
    repo = ota.Repository.open(
        ctx.stage_dir("release") / "repository", ota.TufKeys(ctx.root / ota.KEY_DIR / "tuf"), config
    )
    pki = ota.rauc_pki(ctx.tool("openssl"), rec, ctx.root / ota.KEY_DIR / "rauc")
    out = ctx.stage_dir("update")
    shutil.rmtree(out / "device", ignore_errors=True)
    # The factory image in slot A; the release (the same firmware, delivered as a signed bundle)
    # goes into slot B: the update path and the A/B switch, on this build's own files.
    device = ota.Device.provision(
        out / "device",
        model=model,
        trusted_root=repo.trusted_root(1),
        keyring=pki.ca_cert,
        fit=genuine.fit,
        version="factory",
        security_version=release.security_version,
    )
    disk = firmware.slots.Disk.create(out / "device" / "slots.img", firmware.env_tools(ctx), rec, genuine.fit)
    qemu_device = firmware.Device(genuine.u_boot, genuine.control_dtb, None, disk.path)
    references = {"A": genuine.reference, "B": genuine.reference}
    boots: list[firmware.SlotBoot] = []

    def boot(name: str) -> firmware.SlotBoot:
        console = out / f"{name}.console.log"
        got = firmware.boot_slot(ctx, rec, qemu_device, console, references=references, timeout=args.timeout)
        rec.add_output(console, CONSOLE_LOG_MEDIA_TYPE)
        if got.slot:
            device.boot_result(healthy=got.healthy, booted=got.slot, boot=disk)
        boots.append(got)
        return got

    first = boot("factory")
    checks = [
        Check(
            "factory boot: U-Boot boots slot A, healthy",
            (first.slot, first.healthy) == ("A", True),
            f"slot {first.slot or '-'}, {'healthy' if first.healthy else _failed(first)}",
        )
    ]
    with ota.serve(rec, repo.directory, out / "server.log") as url:
        try:
            got = ota.update(
                device,
                ota.Source.http(url),
                rauc=ctx.tool("rauc"),
                mksquashfs=ctx.tool("mksquashfs"),
                rec=rec,
                boot=disk,
            )
            shown = f"{got.result} {got.version} into slot {got.slot}; boot order {disk.env()['BOOT_ORDER']}"
            checks.append(
                Check(
                    "update installed into the other slot",
                    (got.result, got.slot) == ("installed", "B"),
                    shown,
                    "installed into slot B, BOOT_ORDER B A",
                )
            )
        except ota.UpdateRefused as exc:
            checks.append(Check("update installed into the other slot", False, str(exc), "installed into slot B"))
            return _conclude(rec, out, checks, device)
    second = boot("updated")
    state = device.state
    checks.append(
        Check(
            "U-Boot boots the new slot, healthy, marked good",
            (second.slot, second.healthy) == ("B", True)
            and state["slots"]["B"]["status"] == "good"
            and disk.env()["BOOT_B_LEFT"] == "3",
            f"slot {second.slot or '-'}, {'healthy' if second.healthy else _failed(second)}, "
            f"BOOT_B_LEFT={disk.env()['BOOT_B_LEFT']}",
            "slot B, healthy, BOOT_B_LEFT=3",
        )
    )
    rec.details["boots"] = [
        {"slot": b.slot, "healthy": b.healthy, "seconds": b.run.seconds, "milestones_s": b.report.milestones}
        for b in boots
    ]
    return _conclude(rec, out, checks, device)


def _failed(boot: firmware.SlotBoot) -> str:
    return "; ".join(f"{c.name}: {c.detail}" for c in boot.checks if not c.passed) or "not healthy"


def _conclude(rec: StageRecord, out: Path, checks: list[Check], device: ota.Device) -> Verdict:
    rec.details["device"] = device.state
    return conclude(
        rec,
        "A/B update of the QEMU device",
        checks,
        report=out / "report.json",
        document={"device": device.state, "boots": rec.details.get("boots", [])},
    )
