"""nox -s boot"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence

from tasks import firmware, signing
from tasks.context import Context, source_date_epoch
from tasks.core.checks import conclude
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.media_types import CONSOLE_LOG_MEDIA_TYPE


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s boot", description="boot the signed firmware on the QEMU device")
    parser.add_argument("--tamper", choices=sorted(firmware.CASES), help="boot a tampered variant (pass: caught)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds until an unfinished boot is stopped")
    args = parser.parse_args(argv)
    genuine = signing.genuine_firmware(ctx, rec)  # fails closed: no signed firmware, no verified reference values
    out = ctx.stage_dir("boot")
    if args.tamper is None:
        rec.details["mode"] = "genuine"
        console = out / "console.log"
        device = firmware.Device(genuine.u_boot, genuine.control_dtb, genuine.fit)
        run_, report = firmware.cold_boot(ctx, rec, device, console, timeout=args.timeout)
        checks = firmware.genuine_checks(run_, report, genuine.reference, args.timeout)
        title, report_path = "genuine boot", out / "report.json"
    else:
        case = firmware.CASES[args.tamper]
        rec.details["mode"] = f"tamper:{case.name}"
        work = out / "tamper" / case.name
        shutil.rmtree(work, ignore_errors=True)
        device = firmware.tampered_device(ctx, rec, case, genuine, work, epoch=source_date_epoch(ctx, rec))
        rec.details["tampered"] = {"what": case.what, "expect": case.expect, "by": case.by}
        console = work / "console.log"
        run_, report = firmware.cold_boot(ctx, rec, device, console, timeout=args.timeout)
        checks = firmware.tamper_checks(case, run_, report, genuine.reference)
        title, report_path = f"tamper case {case.name}: {case.expect}", work / "report.json"
        if report.refusals:
            rec.details["refusal"] = {"line": report.reason, "seconds": report.refusals[0][0]}
    rec.add_output(console, CONSOLE_LOG_MEDIA_TYPE)
    rec.details["milestones_s"] = report.milestones
    rec.details["pcrs"] = {str(i): v for i, v in sorted(report.pcrs.items())}
    document = {"mode": rec.details["mode"], "milestones_s": report.milestones, "refusals": report.refusals}
    return conclude(rec, title, checks, report=report_path, document=document)
