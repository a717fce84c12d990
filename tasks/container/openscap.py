"""Talk 04 — continuous evaluation: OpenSCAP over the image's root filesystem.

The image (by digest, from the build evidence) is pulled into buildah's storage and mounted
read-only; oscap-chroot evaluates the SCAP Security Guide profile from security-policy.yaml
against it. Results (XCCDF) and the HTML report go to out/compliance/; the gate is the list
of required rules, each of which must pass.

The result is also a signed attestation (``predicate``: the project's own predicate type
COMPLIANCE_PREDICATE_TYPE, documented in docs/compliance/openscap-result.md, checked against
schemas/openscap-result-v1.schema.json): `nox -s sign` attaches it, `nox -s rescan`
re-evaluates the signed image and replaces it, and verify and admission judge the newest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from defusedxml import ElementTree

from tasks.container import oci_registry
from tasks.container.build import buildah_args
from tasks.context import Context
from tasks.core import atomic, runner
from tasks.core.errors import PolicyError, ToolError
from tasks.core.evidence import StageRecord, now
from tasks.core.runner import Tool
from tasks.policy.security_policy import SSG_RULE_PREFIX

RULE_PREFIX = SSG_RULE_PREFIX  # the policy names it; this module strips it from rule ids
XCCDF_NS = "{http://checklists.nist.gov/xccdf/1.2}"
SCHEMA = Path("schemas/openscap-result-v1.schema.json")
SCANNER_URI = "pkg:deb/debian/openscap-scanner"


@dataclass(frozen=True)
class Evaluation:
    """One oscap-chroot run over one image: its files and what each rule gave."""

    profile: str
    content: Path  # the datastream evaluated (the shipped file, or the recorded patched copy)
    results: Path  # XCCDF results
    report: Path  # HTML
    outcome: dict[str, str]  # rule id -> result
    started: str
    finished: str
    patch: str = ""  # gates.compliance.content_patch applied to the copy, as "find -> replace"
    severity: dict[str, str] = field(default_factory=dict)  # rule id -> XCCDF severity (unknown when unsaid)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for result in self.outcome.values():
            counts[result] = counts.get(result, 0) + 1
        return counts


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


def datastream(ctx: Context, rec: StageRecord, oscap: Tool, settings: dict[str, object], workdir: Path) -> Path:
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
    patched = workdir / f"patched-{source.name}"
    atomic.write_text(patched, text.replace(find, replace))
    rec.opt_out("content_patch", f"{find!r} -> {replace!r} in a copy of {source.name}: {patch['reason']}")
    rec.add_output(patched, "application/xml")
    return patched


def rule_results(results: Path) -> tuple[dict[str, str], dict[str, str]]:
    """rule id (without the SSG prefix) -> result, and -> severity, from XCCDF 1.2 TestResult."""
    try:
        tree = ElementTree.parse(results)
    except (ElementTree.ParseError, OSError) as exc:
        raise ToolError(f"{results}: unreadable XCCDF results ({exc})") from exc
    outcome, severity = {}, {}
    for item in tree.iter(f"{XCCDF_NS}rule-result"):
        rule = item.get("idref", "").removeprefix(RULE_PREFIX)
        result = item.find(f"{XCCDF_NS}result")
        outcome[rule] = result.text if result is not None and result.text else "?"
        severity[rule] = item.get("severity", "unknown")
    if not outcome:
        raise ToolError(f"{results}: no rule results (wrong profile or datastream?)")
    return outcome, severity


def evaluate(ctx: Context, rec: StageRecord, oscap: Tool, ref: str, out: Path) -> Evaluation:
    """oscap-chroot over the root filesystem of ``ref`` with gates.compliance's profile;
    results.xml and report.html under ``out``."""
    with mounted_image(ctx, rec, ref) as rootfs:
        return evaluate_tree(ctx, rec, oscap, rootfs, out)


def evaluate_tree(ctx: Context, rec: StageRecord, oscap: Tool, rootfs: Path, out: Path) -> Evaluation:
    """oscap-chroot over the root filesystem at ``rootfs`` (an image's, or the device's unpacked
    initramfs) with gates.compliance's profile; results.xml and report.html under ``out``."""
    settings = dict(ctx.policy.gate("compliance").settings)
    profile = str(settings.get("profile", ""))
    out.mkdir(parents=True, exist_ok=True)
    content = datastream(ctx, rec, oscap, settings, out)
    results, html = out / "results.xml", out / "report.html"
    for path in (results, html):
        path.unlink(missing_ok=True)
    started = now()
    done = runner.run(
        rec,
        oscap,
        [rootfs, "xccdf", "eval", "--profile", profile, "--results", results, "--report", html, content],
        check=False,
        timeout=1800,
    )
    finished = now()
    if done.returncode not in (0, 2) or not results.is_file():  # 2 = "some rule failed"
        raise ToolError(f"oscap-chroot exited {done.returncode}: {done.tail()}")
    patch = settings.get("content_patch")
    applied = f"{patch['find']!r} -> {patch['replace']!r}" if isinstance(patch, dict) else ""
    outcome, severity = rule_results(results)
    return Evaluation(profile, content, results, html, outcome, started, finished, applied, severity)


def predicate(
    root: Path, evaluation: Evaluation, oscap_version: str, waived: Mapping[str, Mapping[str, str]] | None = None
) -> dict[str, Any]:
    """The compliance predicate (COMPLIANCE_PREDICATE_TYPE) of one evaluation, schema-checked.

    ``waived``: rule -> the waiver (waiver, owner, justification, expires) that accepted its
    failure (compliance_gate.Judgement.waived); signed with the results it explains."""
    benchmark: dict[str, Any] = {
        "datastream": {
            "name": evaluation.content.name,
            "digest": {"sha256": hashlib.sha256(evaluation.content.read_bytes()).hexdigest()},
        },
        "profile": evaluation.profile,
    }
    if evaluation.patch:
        benchmark["contentPatch"] = evaluation.patch
    document = {
        "scanner": {"uri": SCANNER_URI, "version": oscap_version},
        "benchmark": benchmark,
        # the profile's rules only: "notselected" ones were not evaluated (counted in the summary)
        "results": {k: v for k, v in sorted(evaluation.outcome.items()) if v != "notselected"},
        "summary": dict(sorted(evaluation.counts().items())),
        "waived": {rule: dict(waiver) for rule, waiver in sorted((waived or {}).items())},
        "metadata": {"evaluationStartedOn": evaluation.started, "evaluationFinishedOn": evaluation.finished},
    }
    validate(root, document)
    return document


def validate(root: Path, document: dict[str, Any]) -> None:
    """Against schemas/openscap-result-v1.schema.json (the documented predicate)."""
    import jsonschema  # deferred: its format checkers take most of a second to import

    schema = json.loads((root / SCHEMA).read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(document), key=lambda e: list(e.path))
    if errors:
        where = "/".join(map(str, errors[0].absolute_path)) or "(root)"
        raise ToolError(f"compliance predicate does not match {SCHEMA.name}: {where}: {errors[0].message}")
