"""Talk 01 — SAST: bandit and semgrep (the project's own rules in .semgrep/), gated by policy.

Inline suppressions (`# nosec`, `# nosemgrep`) are ignored on purpose: the only way to
accept a finding is a waiver in security-policy.yaml, with a justification, an owner and
an expiry date, so every accepted risk is reviewed in one place.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from tasks.context import Context
from tasks.core import atomic, runner
from tasks.core.errors import InputError
from tasks.core.evidence import StageRecord
from tasks.core.media_types import SARIF_MEDIA_TYPE
from tasks.policy import sarif
from tasks.policy.findings import Finding

RULE_PREFIX = "secure-iot."


def semgrep_rule_id(rule_id: str) -> str:
    """semgrep prefixes rule ids with the config path (`.semgrep.secure-iot.x`): keep ours."""
    index = rule_id.rfind(RULE_PREFIX)
    return rule_id[index:] if index >= 0 else rule_id


def targets(ctx: Context) -> list[str]:
    paths = ctx.policy.gate("sast").settings.get("paths", ["tasks", "app/src", "noxfile.py"])
    missing = [p for p in paths if not ctx.inside(p).exists()]
    if missing:
        raise InputError(f"{ctx.policy_path}: gates.sast.paths: {', '.join(missing)} not found under {ctx.root}")
    return [str(ctx.inside(p).relative_to(ctx.root)) for p in paths]


def run_bandit(ctx: Context, rec: StageRecord, paths: Sequence[str]) -> list[Finding]:
    out = ctx.stage_dir("sast") / "bandit.sarif"
    out.unlink(missing_ok=True)
    # An explicit, empty ini: a .bandit file in the tree (skips: B602, ...) must not be read.
    ini = ctx.stage_dir("sast") / "bandit.ini"
    atomic.write_text(ini, "[bandit]\n")
    done = runner.run(
        rec,
        ctx.tool("bandit"),
        ["--recursive", "--ignore-nosec", "--ini", ini, "--quiet", "--format", "sarif", "--output", out, *paths],
        cwd=ctx.root,
        check=False,
    )
    if done.returncode not in (0, 1):  # 1 means "issues found"; anything else is a crash
        raise InputError(f"bandit exited {done.returncode}: {done.tail()}")
    rec.add_output(out, SARIF_MEDIA_TYPE)
    return sarif.normalize(out, ctx.root)


def run_semgrep(ctx: Context, rec: StageRecord, paths: Sequence[str]) -> list[Finding]:
    out = ctx.stage_dir("sast") / "semgrep.sarif"
    out.unlink(missing_ok=True)
    rules = ctx.inside(".semgrep")
    if not rules.is_dir():
        raise InputError(f"{rules}: semgrep rules directory is missing")
    runner.run(
        rec,
        ctx.tool("semgrep"),
        [
            "scan",
            "--config",
            rules,
            "--metrics=off",
            "--disable-version-check",
            "--disable-nosem",
            "--quiet",
            "--sarif",
            "--output",
            out,
            *paths,
        ],
        cwd=ctx.root,
        env={"SEMGREP_ENABLE_VERSION_CHECK": "0", "SEMGREP_SEND_METRICS": "off"},
    )
    rec.add_output(out, SARIF_MEDIA_TYPE)
    return sarif.normalize(out, ctx.root, rule_id=semgrep_rule_id)


def _as_json(f: Finding) -> dict[str, object]:
    data = json.loads(json.dumps(f.__dict__, default=str))
    data["severity"] = str(f.severity)
    return dict(data)
