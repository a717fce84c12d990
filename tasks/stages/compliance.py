"""nox -s compliance"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from tasks.container.openscap import datastream, mounted_image, rule_results
from tasks.context import Context
from tasks.core import atomic, runner
from tasks.core.console import console, error_line
from tasks.core.errors import PolicyError, ToolError
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.media_types import MANIFEST_MEDIA_TYPE


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s compliance", description="OpenSCAP over the image rootfs")
    parser.parse_args(argv)
    settings = dict(ctx.policy.gate("compliance").settings)
    required = [str(r) for r in settings.get("required_rules", [])]
    if not required:
        raise PolicyError(f"{ctx.policy_path}: gates.compliance.required_rules: list the rules that must pass")
    profile = str(settings.get("profile", ""))
    # Resolve first: resolution installs the packages (ssg-debian) whose files are read next.
    oscap = ctx.tool("oscap-chroot")
    content = datastream(ctx, rec, oscap, settings)
    image = ctx.evidence.output("build", MANIFEST_MEDIA_TYPE)
    rec.add_oci(image.name, image.digest, MANIFEST_MEDIA_TYPE, output=False)
    out = ctx.stage_dir("compliance")
    results, html = out / "results.xml", out / "report.html"
    for path in (results, html):
        path.unlink(missing_ok=True)
    with mounted_image(ctx, rec, image.name) as rootfs:
        done = runner.run(
            rec,
            oscap,
            [rootfs, "xccdf", "eval", "--profile", profile, "--results", results, "--report", html, content],
            check=False,
            timeout=1800,
        )
    if done.returncode not in (0, 2) or not results.is_file():  # 2 = "some rule failed"
        raise ToolError(f"oscap-chroot exited {done.returncode}: {done.tail()}")
    rec.add_output(results, "application/xml")
    rec.add_output(html, "text/html")
    outcome = rule_results(results)
    unknown = [r for r in required if r not in outcome]
    if unknown:
        raise PolicyError(f"gates.compliance.required_rules: not in profile {profile}: {', '.join(unknown)}")
    failed = [r for r in required if outcome[r] != "pass"]
    counts: dict[str, int] = {}
    for result in outcome.values():
        counts[result] = counts.get(result, 0) + 1
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
