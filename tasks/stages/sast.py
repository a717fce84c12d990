"""nox -s sast"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence

from tasks.context import Context
from tasks.core import atomic
from tasks.core.console import console
from tasks.core.evidence import StageRecord, Verdict
from tasks.policy import gate
from tasks.source import sast


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    argparse.ArgumentParser(
        prog="nox -s sast", description="every file git knows, one scanner per language, gated by policy"
    ).parse_args(argv)
    ctx.policy  # noqa: B018 - load and validate the policy before any tool runs
    rec.add_input(ctx.policy_path, "application/yaml")
    shutil.rmtree(ctx.out / "sast", ignore_errors=True)  # no SARIF of an earlier run is uploaded as this one's
    scope = sast.collect(ctx, rec)
    scanners = sast.scanners_by_language()
    rec.details["coverage"] = scope.coverage(scanners)
    for exclusion in scope.stale:
        console.print(f"  [yellow]gates.sast.exclude: {exclusion.path} matches no file; remove it[/]")
    findings = sast.scan(ctx, rec, scope)
    # which file each scanner read, and how (gosec: `types` or `syntax`, ADR 0021), by file
    by_file = {
        file: {"language": lang, "scanners": scanners[lang]}
        for lang, files in sorted(scope.code.items())
        if lang in scanners
        for file in files
    }
    for file, how in rec.details.get("gosec_coverage", {}).items():
        by_file[file]["gosec"] = how
    read = ctx.stage_dir("sast") / "coverage.json"
    atomic.write_json(read, {"files": by_file})
    rec.add_output(read, "application/json")
    outcome = gate.evaluate("sast", findings, ctx.policy)
    normalized = ctx.stage_dir("sast") / "findings.json"
    atomic.write_json(normalized, {"findings": [f.as_json() for f in findings], "gate": outcome.summary()})
    rec.add_output(normalized, "application/json")
    rec.details.update(outcome.summary())
    console.print(
        "  scanned: "
        + "; ".join(
            f"{lang} {len(scope.code[lang])} ({', '.join(scanners[lang])})"
            for lang in sorted(scope.code)
            if lang in scanners
        )
    )
    if not_covered := scope.not_covered(scanners):
        # shown in the pipeline summary and the CI job summary, from the evidence
        rec.details["not_covered"] = [f"{lang} ({n} files)" for lang, n in not_covered.items()]
        console.print(
            f"  [yellow]not covered (no scanner for the language): {', '.join(rec.details['not_covered'])}[/]"
        )
    passed = f"{len(findings)} findings, none blocking at >= {outcome.threshold}"
    return gate.conclude(rec, outcome, "SAST finding(s)", passed)
