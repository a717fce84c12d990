"""Talk 09/10 — admission control, proved offline: the chart against Gatekeeper's constraints.

What this stage proves, with the real tools and no cluster:
- every Gatekeeper ConstraintTemplate passes its gator suite (allowed and disallowed cases);
- the Gatekeeper Config syncs what the referential templates read from data.inventory;
- the Helm chart lints clean, refuses a tag, and renders the image by digest;
- the rendered chart, in its protected namespace, is admitted by every constraint;
- a deliberately bad manifest is rejected, for exactly the expected reasons.

Decisions are taken on exit codes and gator's JSON output, never on human text. The sigstore
policy-controller part (policy-tester) joins the same stage as another list of checks: see
``run``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tasks.admission.chart import lint_chart, render_chart, tag_refused
from tasks.admission.subject import NAMESPACE, STAGE, STAGE_OUTPUTS, expect, image_under_test, rel
from tasks.context import Context
from tasks.core import atomic, runner
from tasks.core.checks import Check
from tasks.core.errors import InputError, ToolError
from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool

GATEKEEPER = "infra/policies/gatekeeper"
SYNC_CONFIG = f"{GATEKEEPER}/sync-config.yaml"
PROTECTED_NAMESPACE = f"{GATEKEEPER}/testdata/namespace-secure.yaml"
BAD_MANIFEST = f"{GATEKEEPER}/testdata/bad-deployment.yaml"


# Why the bad manifest must be rejected: constraint kind -> message it must produce.
BAD_MANIFEST_REASONS: dict[str, str] = {
    "K8sImageDigests": r'uses image "127\.0\.0\.1:5000/secure-iot-server:latest", which is not pinned by digest',
    "K8sNoPrivilegedHostAccess": r'containers "server" is privileged',
    "K8sRequireSigstoreNamespace": r'namespace "unprotected" is not protected by the sigstore policy-controller',
}


@dataclass(frozen=True)
class Violation:
    """One gator result: which constraint denied which object, and why."""

    constraint_kind: str
    constraint_name: str
    enforcement_action: str
    subject: str
    message: str


@dataclass(frozen=True)
class PolicyBundle:
    """A ConstraintTemplate, its Constraint and the gator suite that tests them."""

    name: str
    template: Path
    constraint: Path
    suite: Path


# --- inputs ------------------------------------------------------------------------------


def policy_bundles(ctx: Context) -> list[PolicyBundle]:
    """Every directory under infra/policies/gatekeeper/ with a template; each must be complete."""
    root = ctx.inside(GATEKEEPER)
    bundles = []
    for template in sorted(root.glob("*/template.yaml")):
        directory = template.parent
        missing = [f for f in ("constraint.yaml", "suite.yaml") if not (directory / f).is_file()]
        if missing:
            raise InputError(f"{directory.relative_to(ctx.root)}: {', '.join(missing)} missing next to template.yaml")
        bundles.append(PolicyBundle(directory.name, template, directory / "constraint.yaml", directory / "suite.yaml"))
    if not bundles:
        raise InputError(f"{GATEKEEPER}: no ConstraintTemplates (*/template.yaml) found")
    return bundles


def suite_cases(suite: Path) -> int:
    data = yaml.safe_load(suite.read_text(encoding="utf-8")) or {}
    return sum(len(test.get("cases") or []) for test in data.get("tests") or [])


# --- tools -------------------------------------------------------------------------------


def gator_test(
    ctx: Context, rec: StageRecord, gator: Tool, bundles: Sequence[PolicyBundle], manifests: Sequence[Path], out: Path
) -> list[Violation]:
    """`gator test -o json` of ``manifests`` against every template and constraint."""
    policies = [
        arg for b in bundles for arg in ("--filename", rel(ctx, b.template), "--filename", rel(ctx, b.constraint))
    ]
    objects = [arg for m in manifests for arg in ("--filename", rel(ctx, m))]
    done = runner.run(rec, gator, ["test", "--output", "json", *policies, *objects], cwd=ctx.root, check=False)
    try:
        results = json.loads(done.stdout) if done.stdout.strip() else None
    except json.JSONDecodeError:
        results = "unparsable"
    if not (results is None or isinstance(results, list)):
        raise ToolError(f"gator test exited {done.returncode} without JSON results: {done.tail()}")
    violations = [_violation(r) for r in results or []]
    denied = [v for v in violations if v.enforcement_action == "deny"]
    if bool(denied) != (done.returncode != 0):  # gator exits 1 exactly when something is denied
        raise ToolError(f"gator test exited {done.returncode} with {len(denied)} denial(s): {done.tail()}")
    atomic.write_json(out, results or [])
    rec.add_output(out, "application/json")
    return violations


def _violation(result: dict[str, Any]) -> Violation:
    constraint = result.get("constraint") or {}
    obj = result.get("violatingObject") or {}
    meta = obj.get("metadata") or {}
    where = f"{meta.get('namespace')}/" if meta.get("namespace") else ""
    return Violation(
        constraint_kind=str(constraint.get("kind", "?")),
        constraint_name=str((constraint.get("metadata") or {}).get("name", "?")),
        enforcement_action=str(result.get("enforcementAction", "deny")),
        subject=f"{obj.get('kind', '?')} {where}{meta.get('name', '?')}",
        message=str(result.get("msg", "")),
    )


# --- checks ------------------------------------------------------------------------------


def verify_suites(ctx: Context, rec: StageRecord, gator: Tool, bundles: Sequence[PolicyBundle]) -> list[Check]:
    """`gator verify` of each suite: the allowed cases pass and the disallowed ones are denied."""
    checks, log = [], []
    for bundle in bundles:
        suite = bundle.suite.relative_to(ctx.root)
        done = runner.run(rec, gator, ["verify", "--verbose", suite], cwd=ctx.root, check=False)
        log.append(f"$ gator verify --verbose {suite}\n{done.stdout}{done.stderr}\n")
        failed = [line.strip() for line in done.stdout.splitlines() if line.strip().startswith("--- FAIL")]
        outcome = "all cases pass" if done.returncode == 0 else "; ".join(failed[:4]) or done.tail()
        checks.append(
            expect(
                f"suite {bundle.name}",
                f"gator verify: {suite_cases(bundle.suite)} allowed/disallowed cases pass",
                outcome,
                done.returncode == 0,
            )
        )
    out = ctx.stage_dir(STAGE) / "gator-verify.txt"
    atomic.write_text(out, "\n".join(log))
    rec.add_output(out, "text/plain")
    return checks


def sync_check(ctx: Context, rec: StageRecord, gator: Tool, bundles: Sequence[PolicyBundle]) -> Check:
    """The Config syncs every kind a referential template reads from data.inventory."""
    sync = ctx.inside(SYNC_CONFIG)
    if not sync.is_file():
        raise InputError(f"{SYNC_CONFIG}: Gatekeeper sync Config is missing")
    rec.add_input(sync, "application/yaml")
    templates = [arg for b in bundles for arg in ("--filename", rel(ctx, b.template))]
    done = runner.run(
        rec,
        gator,
        # No cluster to list its API resources: assume the synced kinds exist (Namespace does).
        ["sync", "test", *templates, "--filename", rel(ctx, sync), "--force-omit-gvk-manifest"],
        cwd=ctx.root,
        check=False,
    )
    outcome = "requirements met" if done.returncode == 0 else done.tail()
    return expect(
        "sync config", "sync-config.yaml syncs what templates read (data.inventory)", outcome, done.returncode == 0
    )


def rendered_admitted(
    ctx: Context, rec: StageRecord, gator: Tool, bundles: Sequence[PolicyBundle], rendered: Path | None
) -> Check:
    expected = f"0 violations in namespace {NAMESPACE} (policy.sigstore.dev/include=true)"
    if rendered is None:
        return expect("rendered chart admitted", expected, "not tested: the chart did not render", False)
    namespace = ctx.inside(PROTECTED_NAMESPACE)
    rec.add_input(namespace, "application/yaml")
    out = ctx.stage_dir(STAGE) / "gator-rendered.json"
    violations = gator_test(ctx, rec, gator, bundles, [rendered, namespace], out)
    outcome = "; ".join(f"{v.constraint_kind}: {v.message}" for v in violations) or "0 violations"
    return expect("rendered chart admitted", expected, outcome, not violations)


def bad_manifest_rejected(ctx: Context, rec: StageRecord, gator: Tool, bundles: Sequence[PolicyBundle]) -> list[Check]:
    """The bad manifest is denied by each expected constraint with its message, and by no other."""
    bad = ctx.inside(BAD_MANIFEST)
    if not bad.is_file():
        raise InputError(f"{BAD_MANIFEST}: the deliberately bad manifest is missing")
    rec.add_input(bad, "application/yaml")
    out = ctx.stage_dir(STAGE) / "gator-bad-manifest.json"
    violations = gator_test(ctx, rec, gator, bundles, [bad], out)
    checks = []
    for kind, pattern in BAD_MANIFEST_REASONS.items():
        fired = [v for v in violations if v.constraint_kind == kind and v.enforcement_action == "deny"]
        matched = [v for v in fired if re.search(pattern, v.message)]
        if matched:
            outcome = f"denied: {matched[0].message}"
        elif fired:
            outcome = f"denied, but not for the expected reason: {fired[0].message}"
        else:
            outcome = "NOT denied"
        checks.append(expect(f"bad manifest: {kind}", f"denied, message /{pattern}/", outcome, bool(matched)))
    others = sorted(
        {f"{v.constraint_kind}: {v.message}" for v in violations if v.constraint_kind not in BAD_MANIFEST_REASONS}
    )
    checks.append(
        expect(
            "bad manifest: no other reason",
            "only the constraints above fire",
            "; ".join(others) or "none",
            not others,
        )
    )
    return checks


def gatekeeper_checks(ctx: Context, rec: StageRecord) -> list[Check]:
    """Every Gatekeeper check of the stage, in order; tool crashes raise, failed checks return."""
    for stale in STAGE_OUTPUTS:  # a failed run must not leave the previous run's results behind
        (ctx.stage_dir(STAGE) / stale).unlink(missing_ok=True)
    bundles = policy_bundles(ctx)
    for bundle in bundles:
        rec.add_input(bundle.template, "application/yaml")
        rec.add_input(bundle.constraint, "application/yaml")
    gator, helm = ctx.tool("gator"), ctx.tool("helm")
    image = image_under_test(ctx, rec)
    rec.details["image"] = {"ref": image.ref, "source": image.source}
    checks = verify_suites(ctx, rec, gator, bundles)
    checks.append(sync_check(ctx, rec, gator, bundles))
    checks.append(lint_chart(ctx, rec, helm, image))
    checks.append(tag_refused(ctx, rec, helm))
    rendered, rendered_check = render_chart(ctx, rec, helm, image)
    checks.append(rendered_check)
    checks.append(rendered_admitted(ctx, rec, gator, bundles, rendered))
    checks.extend(bad_manifest_rejected(ctx, rec, gator, bundles))
    return checks
