"""nox -s provenance"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from tasks.context import Context
from tasks.core import atomic
from tasks.core.console import console
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.media_types import MANIFEST_MEDIA_TYPE, PREDICATE_MEDIA_TYPE, STATEMENT_MEDIA_TYPE
from tasks.statements.provenance import BUILD_TYPE, from_evidence, validate


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s provenance", description="SLSA v1 provenance of the image")
    parser.parse_args(argv)
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
