"""What a stage is, and how stages run: one by name, or the whole pipeline in order.

A stage body lives in tasks/stages/<session>.py and is named only by the catalogue; it is
imported when it runs, so importing the pipeline loads no tool wrapper.

A stage that passed records an input fingerprint (tasks/core/fingerprint.py). On a re-run, a
stage whose fingerprint is unchanged, whose outputs re-hash to what it recorded and whose
time- or world-dependent facts still hold (waivers not expired; and what only the stage knows
to check, through the `stale(ctx, record)` its module may export: the vulnerability DB young
enough for `scan`, the registry still serving by digest and tag what `build` and `sign` pushed)
is "up to date" and runs no tool. The pipeline imports no domain package to decide that.
Stages whose answer depends on the outside world each time (ALWAYS_RUN) always run.
`--force` (`nox -s X -- --force`, `nox -- --force`, or SECURE_IOT_FORCE=1) runs anyway.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import os
import shutil
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.catalogue import BUILT_FROM_SOURCE, CATALOGUE, PIPELINE
from tasks.context import Context
from tasks.core import fingerprint, runner
from tasks.core.console import console, summary_table
from tasks.core.errors import PipelineError
from tasks.core.evidence import StageRecord, Verdict, now
from tasks.core.runner import Tool
from tasks.toolchain import lock_path, prefetch
from tasks.toolchain.apt import installed_deb

Body = Callable[[Context, StageRecord, Sequence[str]], Verdict]
# A stage module's optional `stale(ctx, record)`: why its earlier passing `record` no longer holds
# for a reason the fingerprint cannot see (the world changed, not the inputs), or None.
StaleCheck = Callable[[Context, Mapping[str, Any]], "str | None"]

FORCE_FLAG = "--force"
# Their answer depends on time or the world each time (signatures and attestations still in the
# registry, a cluster, a boot, commit signatures, today's DB) or they are cheap and stateful.
ALWAYS_RUN = frozenset(
    {"tools", "registry", "commits", "keys", "verify", "rescan", "cluster", "deploy", "demo", "teardown", "boot"}
    | {"workflows", "policy", "report"}
)


@dataclass(frozen=True)
class Stage:
    name: str
    talk_section: str
    proves: str
    body: Body
    module: str = ""

    def stale(self, ctx: Context, record: Mapping[str, Any]) -> str | None:
        """The stage module's own `stale(ctx, record)`, found by name as `run` is; None without one."""
        if not self.module:
            return None
        check: StaleCheck | None = getattr(importlib.import_module(self.module), "stale", None)
        return check(ctx, record) if check is not None else None


def stage(name: str) -> Stage:
    target, section, proves = CATALOGUE[name]
    module, func = target.split(":")

    def body(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
        fn: Body = getattr(importlib.import_module(module), func)
        return fn(ctx, rec, argv)

    return Stage(name, section, proves, body, module)


def _tool_pins(ctx: Context, tools: Mapping[str, Any]) -> dict[str, Any]:
    """Each tool's pin, and for a Debian tool the build installed now: its pin is a minimum
    (ADR 0021), so an upgraded package makes the stage run again though tools.lock is unchanged."""
    with lock_path(ctx.root).open("rb") as handle:
        pins = tomllib.load(handle).get("tools", {})
    state = {}
    for name in sorted(tools):
        pin = pins.get(name, "unpinned")
        package = pin.get("apt", {}).get("package") if isinstance(pin, dict) else None
        state[name] = {**pin, "installed": installed_deb(package)} if package else pin
    return state


_trees: dict[str, str] = {}
UNKNOWN_TREE = "unknown: not a git work tree"


def source_tree(ctx: Context) -> str:
    """HEAD and the content of every file git tracks or would track (out/ and caches are ignored):
    a stage's recorded inputs name what it read from earlier stages, this covers what it reads from
    the checkout (an app change reruns build and what follows; a README change reruns them too)."""
    key = str(ctx.root)
    if key not in _trees:
        git_path = shutil.which("git")
        if git_path is None:  # cannot fingerprint the checkout: never "up to date", always run
            _trees[key] = UNKNOWN_TREE
            return _trees[key]
        git = Tool("git", "system", Path(git_path), route="system")
        head = runner.probe(git, ["rev-parse", "HEAD"], cwd=ctx.root).stdout.strip()
        listed = runner.probe(git, ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ctx.root)
        if listed.returncode != 0:  # not a git work tree (an exported copy): never "up to date", always run
            _trees[key] = UNKNOWN_TREE
            return _trees[key]
        digest = hashlib.sha256(head.encode() + b"\n")
        for name in sorted(set(filter(None, listed.stdout.split("\0")))):
            digest.update(name.encode() + b"\0" + fingerprint.file_digest(ctx.root / name).encode() + b"\n")
        _trees[key] = "sha256:" + digest.hexdigest()
    return _trees[key]


def _configuration() -> dict[str, str]:
    """The environment that configures stages (SECURE_IOT_*, SOURCE_DATE_EPOCH, CI or not)."""
    return {
        k: v
        for k, v in sorted(os.environ.items())
        if (k.startswith("SECURE_IOT_") and k != "SECURE_IOT_FORCE") or k in ("SOURCE_DATE_EPOCH", "GITHUB_ACTIONS")
    }


def _expired_waivers(ctx: Context) -> list[str]:
    today = dt.datetime.now(dt.UTC).date()
    return sorted(f"{w.gate}:{w.id}" for w in ctx.policy.waivers if w.expires < today)


def stage_fingerprint(ctx: Context, st: Stage, record: Mapping[str, Any], argv: Sequence[str]) -> str:
    return fingerprint.compute(
        argv=argv,
        inputs=record.get("inputs", []),
        tool_pins=_tool_pins(ctx, record.get("tools", {})),
        policy_digest=fingerprint.file_digest(ctx.policy_path),
        code=fingerprint.code_digest(st.module),
        extra={"expired_waivers": _expired_waivers(ctx), "source_tree": source_tree(ctx), "env": _configuration()},
    )


def why_stale(ctx: Context, st: Stage, evidence: Mapping[str, Any], argv: Sequence[str]) -> str | None:
    """None when ``st`` is up to date; else the first reason it must run."""
    stages = evidence.get("stages", {})
    key = record_name(st.name, argv)
    prev = stages.get(key)
    if st.name in ALWAYS_RUN:
        return "always runs (its answer depends on time or the outside world)"
    if not prev or prev.get("verdict") != "pass" or not prev.get("details", {}).get("fingerprint"):
        return "no earlier passing run with a fingerprint"
    if source_tree(ctx) == UNKNOWN_TREE:
        return f"{ctx.root} is not a git work tree: its sources cannot be fingerprinted"
    current = []
    for art in prev.get("inputs", []):
        if art.get("kind") == "oci":
            repo = str(art.get("name", "")).split("@", 1)[0]
            for other, rec in stages.items():
                for out in rec.get("outputs", []) if other != key else []:
                    same_repo = out.get("kind") == "oci" and str(out.get("name", "")).split("@", 1)[0] == repo
                    if same_repo and out.get("digest") != art.get("digest"):
                        return f"{other} now records {repo} as {out.get('digest')}"
            current.append(art)
        else:
            name = Path(str(art["name"]))  # a system file read as an input (ssg content) is re-hashed where it is
            current.append(
                {**art, "digest": fingerprint.file_digest(name if name.is_absolute() else ctx.artifact(name))}
            )
    for out in prev.get("outputs", []):
        if out.get("kind") != "oci" and fingerprint.file_digest(ctx.artifact(str(out["name"]))) != out.get("digest"):
            return f"{out['name']} changed since it was recorded"
    if (why := st.stale(ctx, prev)) is not None:
        return why
    now_fp = stage_fingerprint(ctx, st, {**prev, "inputs": current}, argv)
    if now_fp != prev["details"]["fingerprint"]:
        return "an input, tool pin, the policy, its code or a waiver's expiry changed"
    return None


def _split_force(argv: Sequence[str], force: bool) -> tuple[list[str], bool]:
    rest = [a for a in argv if a != FORCE_FLAG]
    return rest, force or len(rest) != len(argv) or os.environ.get("SECURE_IOT_FORCE") == "1"


def record_name(name: str, argv: Sequence[str]) -> str:
    """The evidence key of a run: the stage name, or ``<stage>:<subject>`` for `--subject <subject>`
    other than the image (the image pipeline's keys never change; firmware runs sit beside them)."""
    args = list(argv)
    for i, arg in enumerate(args):
        value = args[i + 1] if arg == "--subject" and i + 1 < len(args) else arg.removeprefix("--subject=")
        if (arg == "--subject" or arg.startswith("--subject=")) and value not in ("", "image"):
            return f"{name}:{value}"
    return name


def step_record(step: str) -> str:
    name, *argv = step.split()
    return record_name(name, argv)


def run_stage(ctx: Context, stage: Stage, argv: Sequence[str], *, force: bool = False) -> int:
    """Run one stage; return 0 on pass, 1 on a failed gate. PipelineErrors propagate."""
    argv, force = _split_force(argv, force)
    if not force and stage.name not in ALWAYS_RUN:
        t0 = time.monotonic()
        try:
            why = why_stale(ctx, stage, ctx.evidence.load(), argv)
        except (PipelineError, OSError, ValueError) as exc:  # cannot tell: run it, and let it say why
            why = f"cannot check ({exc})"
        key = record_name(stage.name, argv)
        if why is None:
            ctx.evidence.mark_up_to_date(key, {"checked": now(), "check_s": round(time.monotonic() - t0, 3)})
            console.print(f"[green]{key}: up to date[/] — inputs, outputs, tools, policy and code unchanged")
            return 0
    with ctx.evidence.open_stage(record_name(stage.name, argv), ctx.root) as rec:
        rec.details["talk_section"] = stage.talk_section
        rec.verdict = stage.body(ctx.bind(rec), rec, argv)
        if rec.verdict == "pass" and stage.name not in ALWAYS_RUN:
            rec.details["fingerprint"] = stage_fingerprint(ctx, stage, rec.to_json(), argv)
    return 0 if rec.verdict in ("pass", "skipped") else 1


def run_pipeline(ctx: Context, steps: Sequence[str] = PIPELINE, *, force: bool = False) -> int:
    """Each step is a stage name, optionally with its arguments ("sign --subject firmware"), in
    order, stopping at the first failure; the report (when listed) is written anyway."""
    code = 0
    built = [tool for step in steps for tool in BUILT_FROM_SOURCE.get(step.split()[0], ())]
    try:
        with prefetch.background(ctx.root, ctx.out, built):
            for step in [s for s in steps if s != "report"]:
                name, *argv = step.split()
                console.rule(f"[bold]{step}[/] (talk section {CATALOGUE[name][1]})")
                code = run_stage(ctx, stage(name), argv, force=force)
                if code != 0:
                    break
    finally:
        summary_table(ctx.evidence.load()["stages"], [step_record(step) for step in steps])
        if "report" in steps:
            report_code = run_stage(ctx, stage("report"), [])
            code = code or report_code
    return code
