"""semgrep with the project's own rules (.semgrep/rules): Python, Containerfiles and YAML manifests.

Targets are passed by name, so no .semgrepignore (nor semgrep's default ignore list, which
skips tests/) can drop one; `--max-target-bytes=0` lifts the 1 MB limit; `--disable-nosem`
makes inline `# nosemgrep` not count. semgrep picks a file's language by its name, and does
not know `Containerfile` (nor a Python script without .py): such a file is read as a copy
named for its language, and the findings are put back on the original. Every target must come
back as scanned and without a parse error, or the stage fails: a file that was not read
cannot pass the gate.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from tasks.context import Context
from tasks.core import runner
from tasks.core.errors import InputError
from tasks.core.evidence import StageRecord
from tasks.core.media_types import SARIF_MEDIA_TYPE
from tasks.policy import sarif
from tasks.policy.findings import Finding
from tasks.source.sast.languages import classify

RULE_PREFIX = "secure-iot."
# The names semgrep gives a language by (a file named otherwise is read as a copy so named).
SUFFIXES = {"python": ".py", "dockerfile": ".dockerfile", "yaml": ".yaml"}


def rule_id(rule: str) -> str:
    """semgrep prefixes rule ids with the config path (`.semgrep.secure-iot.x`): keep ours."""
    index = rule.rfind(RULE_PREFIX)
    return rule[index:] if index >= 0 else rule


def scan(ctx: Context, rec: StageRecord, files: Sequence[str]) -> list[Finding]:
    out = ctx.stage_dir("sast") / "semgrep.sarif"
    report = ctx.stage_dir("sast") / "semgrep.json"
    for stale in (out, report):
        stale.unlink(missing_ok=True)
    rules = ctx.inside(".semgrep/rules")
    if not rules.is_dir():
        raise InputError(f"{rules}: semgrep rules directory is missing")
    targets = _named_for_semgrep(ctx.root, files, ctx.stage_dir("sast") / "semgrep-src")
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
            "--max-target-bytes=0",
            "--quiet",
            f"--sarif-output={out}",
            f"--json-output={report}",
            *targets,
        ],
        cwd=ctx.root,
        env={"SEMGREP_ENABLE_VERSION_CHECK": "0", "SEMGREP_SEND_METRICS": "off"},
    )
    _every_target_read(report.read_text(encoding="utf-8"), list(targets))
    sarif.relocate(out, {target: name for target, name in targets.items() if target != name})
    rec.add_output(out, SARIF_MEDIA_TYPE)
    rec.add_output(report, "application/json")
    return sarif.normalize(out, ctx.root, rule_id=rule_id)


def _named_for_semgrep(root: Path, files: Sequence[str], copies: Path) -> dict[str, str]:
    """target semgrep reads -> the repository file it stands for."""
    shutil.rmtree(copies, ignore_errors=True)
    targets = {}
    for name in files:
        suffix = SUFFIXES.get(classify(root, name).name, "")
        if PurePosixPath(name).name == "Dockerfile" or not suffix or name.endswith(suffix):
            targets[name] = name
            continue
        copy = copies / f"{name}{suffix}"
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / name, copy)
        targets[copy.relative_to(root).as_posix() if copy.is_relative_to(root) else str(copy)] = name
    return targets


def _every_target_read(report: str, files: Sequence[str]) -> None:
    try:
        data = json.loads(report)
    except json.JSONDecodeError as exc:
        raise InputError(f"semgrep's JSON report is not JSON ({exc})") from None
    problems = [
        f"{e.get('path') or '?'}: {str(e.get('message', e.get('type', ''))).splitlines()[0]}"
        for e in data.get("errors", [])
    ]
    scanned = set(data.get("paths", {}).get("scanned", []))
    problems += [f"{name}: not scanned" for name in files if name not in scanned]
    if problems:
        shown = "; ".join(problems[:5]) + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        raise InputError(
            f"semgrep could not scan {len(problems)} target(s), the gate cannot pass them: {shown} "
            "(fix the file, or exclude it in gates.sast.exclude with a reason)"
        )
