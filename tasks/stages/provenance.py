"""nox -s provenance"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from tasks.context import Context
from tasks.core import atomic
from tasks.core.console import console
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.media_types import (
    BOOTLOADER_MEDIA_TYPE,
    FIT_MEDIA_TYPE,
    INITRAMFS_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    PREDICATE_MEDIA_TYPE,
    STATEMENT_MEDIA_TYPE,
)
from tasks.statements.provenance import (
    BUILD_TYPE,
    FIRMWARE_BUILD_TYPE,
    from_evidence,
    from_firmware_evidence,
    validate,
)


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s provenance", description="SLSA v1 provenance of the image")
    parser.add_argument("--subject", choices=("image", "firmware"), default="image", help="whose build")
    args = parser.parse_args(argv)
    if args.subject == "firmware":
        return firmware_provenance(ctx, rec)
    prov = from_evidence(ctx, rec)
    statement = prov.statement()
    validate(statement, ctx.root)
    out = ctx.stage_dir("provenance")
    atomic.write_json(out / "image.provenance.json", statement)
    atomic.write_json(out / "image.predicate.json", statement["predicate"])
    rec.add_oci(
        f"{prov.subject_name}@sha256:{prov.subject_digest}",
        f"sha256:{prov.subject_digest}",
        MANIFEST_MEDIA_TYPE,
        output=False,
    )
    rec.add_output(out / "image.provenance.json", STATEMENT_MEDIA_TYPE)
    rec.add_output(out / "image.predicate.json", PREDICATE_MEDIA_TYPE)
    rec.details.update({"builder_id": prov.builder_id, "build_type": BUILD_TYPE, "invocation_id": prov.invocation_id})
    console.print(f"[green]provenance: pass[/] — builder {prov.builder_id}, subject sha256:{prov.subject_digest[:12]}")
    return "pass"


FIRMWARE_SUBJECTS = (FIT_MEDIA_TYPE, BOOTLOADER_MEDIA_TYPE, INITRAMFS_MEDIA_TYPE)


def firmware_provenance(ctx: Context, rec: StageRecord) -> Verdict:
    """SLSA v1 provenance of the firmware build: subjects FIT, u-boot.bin and initramfs by sha256."""
    subjects = []
    for media in FIRMWARE_SUBJECTS:
        art = ctx.evidence.output("firmware", media)
        path = ctx.unchanged(art.name, art.digest)
        rec.add_input(path, media)
        subjects.append((path.name, art.digest.removeprefix("sha256:")))
    prov = from_firmware_evidence(ctx, rec, subjects)
    statement = prov.statement()
    validate(statement, ctx.root)
    out = ctx.stage_dir("provenance")
    atomic.write_json(out / "firmware.provenance.json", statement)
    atomic.write_json(out / "firmware.predicate.json", statement["predicate"])
    rec.add_output(out / "firmware.provenance.json", STATEMENT_MEDIA_TYPE)
    rec.add_output(out / "firmware.predicate.json", PREDICATE_MEDIA_TYPE)
    rec.details.update(
        {
            "subject": "firmware",
            "builder_id": prov.builder_id,
            "build_type": FIRMWARE_BUILD_TYPE,
            "invocation_id": prov.invocation_id,
            "subjects": dict(subjects),
        }
    )
    console.print(f"[green]provenance: pass[/] — firmware, builder {prov.builder_id}, {len(subjects)} subjects")
    return "pass"
