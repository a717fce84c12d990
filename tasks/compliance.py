"""Talk 04 — continuous evaluation: OpenSCAP over the image's root filesystem.

The image (by digest, from the build evidence) is pulled into buildah's storage and mounted
read-only; oscap-chroot evaluates the SCAP Security Guide profile from security-policy.yaml
against it. Results (XCCDF) and the HTML report go to out/compliance/; the gate is the list
of required rules, each of which must pass.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from defusedxml import ElementTree

from tasks import registry
from tasks.build import MANIFEST_MEDIA_TYPE, buildah_args
from tasks.context import Context
from tasks.core import atomic, runner
from tasks.core.console import console, error_line
from tasks.core.errors import PolicyError, ToolError
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.runner import Tool

XCCDF_NS = "{http://checklists.nist.gov/xccdf/1.2}"
RULE_PREFIX = "xccdf_org.ssgproject.content_rule_"


@contextlib.contextmanager
def mounted_image(ctx: Context, rec: StageRecord, ref: str) -> Iterator[Path]:
    """The image's root filesystem, mounted from buildah storage; always cleaned up."""
    buildah = ctx.tool("buildah")
    created = runner.run(
        rec,
        buildah,
        [*buildah_args(), "from", "--pull=always", *registry.tls_flags(ref), "--quiet", f"docker://{ref}"],
        timeout=900,
    )
    container = created.stdout.strip().splitlines()[-1]
    try:
        mount = runner.run(rec, buildah, [*buildah_args(), "mount", container]).stdout.strip()
        yield Path(mount)
    finally:
        runner.run(rec, buildah, [*buildah_args(), "rm", container], check=False)


def datastream(ctx: Context, rec: StageRecord, oscap: Tool, settings: dict[str, object]) -> Path:
    """The SCAP datastream (a file oscap's pinned packages ship), or a recorded, patched copy."""
    named = str(settings.get("datastream", ""))
    if not named:
        raise PolicyError(f"{ctx.policy_path}: gates.compliance.datastream: name the SCAP datastream file")
    source = oscap.data_file(named)
    rec.add_input(source, "application/xml")
    patch = settings.get("content_patch")
    if not isinstance(patch, dict):
        return source
    text = source.read_text(encoding="utf-8")
    find, replace = str(patch["find"]), str(patch["replace"])
    if find not in text:
        raise PolicyError(f"gates.compliance.content_patch.find: {find!r} does not occur in {source}")
    patched = ctx.stage_dir("compliance") / f"patched-{source.name}"
    atomic.write_text(patched, text.replace(find, replace))
    rec.opt_out("content_patch", f"{find!r} -> {replace!r} in a copy of {source.name}: {patch['reason']}")
    rec.add_output(patched, "application/xml")
    return patched


def rule_results(results: Path) -> dict[str, str]:
    """rule id (without the SSG prefix) -> result, from XCCDF 1.2 TestResult."""
    try:
        tree = ElementTree.parse(results)
    except (ElementTree.ParseError, OSError) as exc:
        raise ToolError(f"{results}: unreadable XCCDF results ({exc})") from exc
    out = {}
    for item in tree.iter(f"{XCCDF_NS}rule-result"):
        result = item.find(f"{XCCDF_NS}result")
        out[item.get("idref", "").removeprefix(RULE_PREFIX)] = (
            result.text if result is not None and result.text else "?"
        )
    if not out:
        raise ToolError(f"{results}: no rule results (wrong profile or datastream?)")
    return out


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
