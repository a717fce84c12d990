"""Talk 04 — continuous evaluation: OpenSCAP over the image's root filesystem.

The image (by digest, from the build evidence) is pulled into buildah's storage and mounted
read-only; oscap-chroot evaluates the SCAP Security Guide profile from security-policy.yaml
against it. Results (XCCDF) and the HTML report go to out/compliance/; the gate is the list
of required rules, each of which must pass.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from defusedxml import ElementTree

from tasks.container import oci_registry
from tasks.container.build import buildah_args
from tasks.context import Context
from tasks.core import atomic, runner
from tasks.core.errors import PolicyError, ToolError
from tasks.core.evidence import StageRecord
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
        [*buildah_args(), "from", "--pull=always", *oci_registry.tls_flags(ref), "--quiet", f"docker://{ref}"],
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
