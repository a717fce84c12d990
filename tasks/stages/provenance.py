"""nox -s provenance"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from tasks.context import Context
from tasks.core import atomic
from tasks.core.console import console
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.media_types import PREDICATE_MEDIA_TYPE, STATEMENT_MEDIA_TYPE
from tasks.statements.provenance import validate
from tasks.subjects import IMAGE, SUBJECTS


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s provenance", description="SLSA v1 provenance of the image")
    parser.add_argument("--subject", choices=tuple(SUBJECTS), default=IMAGE.names.name, help="whose build")
    subject = SUBJECTS[parser.parse_args(argv).subject]
    prov, details, summary = subject.provenance(ctx, rec)
    statement = prov.statement()
    validate(statement, ctx.root)
    out = ctx.stage_dir("provenance")
    name = subject.names.name
    atomic.write_json(out / f"{name}.provenance.json", statement)
    atomic.write_json(out / f"{name}.predicate.json", statement["predicate"])
    rec.add_output(out / f"{name}.provenance.json", STATEMENT_MEDIA_TYPE)
    rec.add_output(out / f"{name}.predicate.json", PREDICATE_MEDIA_TYPE)
    rec.details.update(details)
    console.print(f"[green]provenance: pass[/] — {summary}")
    return "pass"
