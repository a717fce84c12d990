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
from tasks.core.errors import InputError
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.media_types import COMPLIANCE_RESULT_MEDIA_TYPE, MANIFEST_MEDIA_TYPE
from tasks.core.recorded import BuiltImage
from tasks.core.runner import Tool
from tasks.firmware.unpack import unpack_initramfs
from tasks.policy import compliance_gate

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
    profile = str(settings.get("profile", ""))
    # Resolve first: resolution installs the packages (ssg-debian) whose files are read next.
    oscap = ctx.tool("oscap-chroot")
    if settings.get("datastream"):  # the SCAP content its packages ship: missing is said before anything else
        oscap.data_file(str(settings["datastream"]))
    rec.add_input(ctx.policy_path, "application/yaml")  # its waivers decide the verdict
    if args.device_rootfs is not None:
        return device_rootfs(ctx, rec, oscap, args.device_rootfs.resolve(), profile)
    image = BuiltImage.read(ctx.evidence).image
    rec.add_oci(str(image), image.digest, MANIFEST_MEDIA_TYPE, output=False)
    out = ctx.stage_dir("compliance")
    evaluation = evaluate(ctx, rec, oscap, str(image), out)
    rec.add_output(evaluation.results, "application/xml")
    rec.add_output(evaluation.report, "text/html")
    judgement = compliance_gate.judge(ctx.policy, "image", evaluation.outcome, evaluation.severity)
    # The result as the signed attestation's predicate (`nox -s sign` attaches it), waivers included.
    atomic.write_json(out / PREDICATE_FILE, predicate(ctx.root, evaluation, oscap.version, judgement.waived()))
    rec.add_output(out / PREDICATE_FILE, COMPLIANCE_RESULT_MEDIA_TYPE)
    rec.details.update({"profile": profile, "results": evaluation.counts(), **judgement.summary()})
    _write_summary(rec, out)
    console.print(f"  report {evaluation.report}")
    return compliance_gate.conclude(rec, judgement)


def device_rootfs(ctx: Context, rec: StageRecord, oscap: Tool, initramfs: Path, profile: str) -> Verdict:
    """The same profile over the device's unpacked initramfs (#10/#13's busybox userland).

    Not an image attestation: the outcome is recorded, nothing is signed. A profile none of
    whose rules apply gives no compliance evidence, so it fails (closed), with that reason.
    Otherwise it is judged as the image is, with the waivers scoped to ``device-rootfs``: a
    partition waived for a container image is not waived for a device.
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
    selected = {r: v for r, v in evaluation.outcome.items() if v != "notselected"}
    applicable = {r: v for r, v in selected.items() if v != "notapplicable"}
    rec.details.update(
        {
            "subject": str(initramfs),
            "entries": entries,
            "profile": profile,
            "results": evaluation.counts(),
            "applicable": len(applicable),
            "selected": len(selected),
        }
    )
    if not applicable:
        rec.reason = (
            f"none of the {len(selected)} rules of {profile} applies to the device rootfs "
            "(the SCAP content's platform is a Debian userland; the device runs busybox): no evidence"
        )
        _write_summary(rec, out)
        error_line(f"compliance (device rootfs): {rec.reason}")
        return "fail"
    judgement = compliance_gate.judge(ctx.policy, "device-rootfs", evaluation.outcome, evaluation.severity)
    rec.details.update(judgement.summary())
    _write_summary(rec, out)
    return compliance_gate.conclude(rec, judgement)


def _write_summary(rec: StageRecord, out: Path) -> None:
    """The stage's details as out/compliance[/device-rootfs]/summary.json, recorded as an output."""
    atomic.write_json(out / "summary.json", rec.details)
    rec.add_output(out / "summary.json", "application/json")
