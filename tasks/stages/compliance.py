"""nox -s compliance"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tasks.container.openscap import evaluate, evaluate_tree, predicate
from tasks.context import Context
from tasks.core import atomic
from tasks.core.console import console, error_line
from tasks.core.errors import InputError, PolicyError
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.media_types import COMPLIANCE_RESULT_MEDIA_TYPE, MANIFEST_MEDIA_TYPE
from tasks.core.recorded import BuiltImage
from tasks.core.runner import Tool
from tasks.firmware.unpack import unpack_initramfs

PREDICATE_FILE = "openscap-result.predicate.json"


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s compliance", description="OpenSCAP over the image rootfs")
    parser.add_argument(
        "--device-rootfs",
        type=Path,
        metavar="INITRAMFS",
        help="evaluate the device's root filesystem (the firmware's initramfs.cpio.gz) instead",
    )
    args = parser.parse_args(argv)
    settings = dict(ctx.policy.gate("compliance").settings)
    required = [str(r) for r in settings.get("required_rules", [])]
    if not required:
        raise PolicyError(f"{ctx.policy_path}: gates.compliance.required_rules: list the rules that must pass")
    profile = str(settings.get("profile", ""))
    # Resolve first: resolution installs the packages (ssg-debian) whose files are read next.
    oscap = ctx.tool("oscap-chroot")
    if settings.get("datastream"):  # the SCAP content its packages ship: missing is said before anything else
        oscap.data_file(str(settings["datastream"]))
    if args.device_rootfs is not None:
        return device_rootfs(ctx, rec, oscap, args.device_rootfs.resolve(), profile)
    image = BuiltImage.read(ctx.evidence).image
    rec.add_oci(str(image), image.digest, MANIFEST_MEDIA_TYPE, output=False)
    out = ctx.stage_dir("compliance")
    evaluation = evaluate(ctx, rec, oscap, str(image), out)
    results, html = evaluation.results, evaluation.report
    rec.add_output(results, "application/xml")
    rec.add_output(html, "text/html")
    outcome = evaluation.outcome
    # The result as the signed attestation's predicate (`nox -s sign` attaches it).
    atomic.write_json(out / PREDICATE_FILE, predicate(ctx.root, evaluation, oscap.version))
    rec.add_output(out / PREDICATE_FILE, COMPLIANCE_RESULT_MEDIA_TYPE)
    unknown = [r for r in required if r not in outcome]
    if unknown:
        raise PolicyError(f"gates.compliance.required_rules: not in profile {profile}: {', '.join(unknown)}")
    failed = [r for r in required if outcome[r] != "pass"]
    counts = evaluation.counts()
    rec.details.update(
        {
            "profile": profile,
            "results": counts,
            "required": len(required),
            "required_failed": failed,
            "not_gated_failures": sorted(r for r, v in outcome.items() if v == "fail" and r not in required),
        }
    )
    atomic.write_json(out / "summary.json", rec.details)
    rec.add_output(out / "summary.json", "application/json")
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    if failed:
        rec.reason = "required rules failed: " + ", ".join(failed)
        error_line(f"compliance: {rec.reason}")
        return "fail"
    console.print(f"[green]compliance: pass[/] — {len(required)} required rules pass ({summary}); report {html}")
    return "pass"


def device_rootfs(ctx: Context, rec: StageRecord, oscap: Tool, initramfs: Path, profile: str) -> Verdict:
    """The same profile over the device's unpacked initramfs (#10/#13's busybox userland).

    Not an image attestation: the outcome is recorded, nothing is signed. A profile none of
    whose rules apply gives no compliance evidence, so it fails (closed), with that reason.
    """
    if not initramfs.is_file():
        raise InputError(f"{initramfs}: missing; build it with `nox -s firmware` (out/firmware/initramfs.cpio.gz)")
    rec.add_input(initramfs, "application/gzip")
    out = ctx.stage_dir("compliance") / "device-rootfs"
    with tempfile.TemporaryDirectory(prefix="device-rootfs-") as tmp:
        tree = Path(tmp) / "rootfs"
        entries = unpack_initramfs(initramfs, tree)
        evaluation = evaluate_tree(ctx, rec, oscap, tree, out)
    rec.add_output(evaluation.results, "application/xml")
    rec.add_output(evaluation.report, "text/html")
    counts = evaluation.counts()
    selected = {r: v for r, v in evaluation.outcome.items() if v != "notselected"}
    applicable = {r: v for r, v in selected.items() if v != "notapplicable"}
    failed = sorted(r for r, v in applicable.items() if v == "fail")
    rec.details.update(
        {
            "subject": str(initramfs),
            "entries": entries,
            "profile": profile,
            "results": counts,
            "applicable": len(applicable),
            "selected": len(selected),
            "failed": failed,
        }
    )
    atomic.write_json(out / "summary.json", rec.details)
    rec.add_output(out / "summary.json", "application/json")
    if not applicable:
        rec.reason = (
            f"none of the {len(selected)} rules of {profile} applies to the device rootfs "
            "(the SCAP content's platform is a Debian userland; the device runs busybox): no evidence"
        )
    elif failed:
        rec.reason = "rules failed on the device rootfs: " + ", ".join(failed)
    if rec.reason:
        error_line(f"compliance (device rootfs): {rec.reason}")
        return "fail"
    console.print(f"[green]compliance (device rootfs): pass[/] — {len(applicable)} applicable rules pass")
    return "pass"
