"""nox -s fleet"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from pathlib import Path

from tasks import ota
from tasks.context import Context
from tasks.core.checks import Check, conclude
from tasks.core.errors import InputError, VerificationError
from tasks.core.evidence import StageRecord, Verdict
from tasks.ota import fleet
from tasks.source import git_history
from tasks.source.commits import check_range, committed_blob, default_range, record

SIGNED = "fleet change signed"


def signed_change(ctx: Context, rec: StageRecord, base: str, pinned: Path | None = None) -> tuple[Check, str]:
    """fleet/ has no uncommitted change, the commit that last changed it is signed by a key its parent
    trusts, and so is every commit HEAD holds that ``base`` does not (tasks.source.commits).
    Also the commit HEAD was resolved to once, whose tree the stage then reads ("" when refused)."""
    git = ctx.tool("git")
    expected = "every commit not yet on the base, and the fleet change, signed by a key its parent trusts"
    dirty = git_history.run(rec, git, ctx.root, ["status", "--porcelain", "--", "fleet/"]).stdout.strip()
    if dirty:
        return Check(SIGNED, False, f"uncommitted changes in fleet/: {dirty.splitlines()[0]}", expected), ""
    span = default_range(ctx, rec, ctx.root, base)
    if span.empty and span.head != span.tip:  # HEAD is an older commit of the base: only its tip is current
        why = f"HEAD {span.head[:12]} is behind {span.ref} ({span.tip[:12]}); reconcile from the branch's tip"
        return Check(SIGNED, False, why, expected), ""
    found = git_history.run(rec, git, ctx.root, ["log", "-1", "--format=%H", span.head, "--", "fleet/"])
    sha = found.stdout.strip()
    if not sha:
        return Check(SIGNED, False, "fleet/ is in no commit", expected), ""
    branch = [] if span.empty else check_range(ctx, rec, span.text, ctx.root, pinned)
    # the fleet change on the branch is judged there (its parent's anchors and, from older history, the
    # base tip's); one already on the base is judged by its own parent
    change = next((c for c in branch if c.sha == sha), None) or check_range(ctx, rec, f"{sha}^!", ctx.root, pinned)[0]
    checks = [change, *(c for c in branch if c.sha != sha)]
    record(rec, checks)
    rec.details.update({"fleet_commit": sha, "range": span.text, "failing": [c.sha for c in checks if not c.ok]})
    bad = next((c for c in checks if not c.ok), None)
    if bad is None:
        return Check(SIGNED, True, f"{sha[:12]}: {change.status} ({len(checks)} commit(s))", expected), span.head
    return Check(SIGNED, False, f"{bad.sha[:12]} {bad.status}: {bad.subject}", expected), ""


def committed_desired(ctx: Context, rec: StageRecord, commit: str) -> fleet.Desired:
    """fleet/desired.toml as ``commit`` holds it (the work tree can differ unseen: skip-worktree)."""
    data = committed_blob(rec, ctx.tool("git"), ctx.root, commit, fleet.DESIRED)
    if data is None:
        raise InputError(f"{fleet.DESIRED} is not in commit {commit[:12]}; commit the fleet's desired state")
    copy = ctx.stage_dir("fleet") / "desired.toml"
    copy.write_bytes(data)
    rec.add_input(copy, "application/toml")
    rec.details["desired"] = f"{commit}:{fleet.DESIRED}"
    return fleet.load(copy)


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s fleet", description="reconcile fleet/ into the TUF repository")
    parser.add_argument(
        "--base",
        default="main",
        help="branch (refs/heads/, else refs/remotes/origin/) whose tip starts the commits checked",
    )
    parser.add_argument(
        "--allowed-signers",
        type=Path,
        default=None,
        help="a pinned allowed-signers file outside the repository, judging every commit instead of each parent's",
    )
    args = parser.parse_args(argv)
    signed, commit = signed_change(ctx, rec, args.base, args.allowed_signers)
    if not signed.passed:
        return conclude(rec, "fleet reconcile refused", [signed], report=ctx.stage_dir("fleet") / "report.json")
    desired = committed_desired(ctx, rec, commit)
    config = ota.load_config(ctx.inside(ota.CONFIG))
    keys = ota.TufKeys(ctx.root / ota.KEY_DIR / "tuf")
    pki = ota.rauc_pki(ctx.tool("openssl"), rec, ctx.root / ota.KEY_DIR / "rauc")
    repo = ota.Repository.open(ctx.stage_dir("release") / "repository", keys, config)
    work = ctx.stage_dir("fleet") / "check"
    rauc, mksquashfs = ctx.tool("rauc"), ctx.tool("mksquashfs")

    def verify(bundle: Path) -> None:
        shutil.rmtree(work, ignore_errors=True)
        ota.bundle.check(rauc, mksquashfs, rec, bundle, model=desired.model, keyring=pki.ca_cert, work=work)

    checks = [signed]
    try:
        moves = fleet.reconcile(repo, desired, verify)
    except VerificationError as exc:
        checks.append(Check("releases verify", False, str(exc), "published by release, RAUC-verified"))
        return conclude(rec, "fleet reconcile refused", checks, report=ctx.stage_dir("fleet") / "report.json")
    checks += [Check(f"group {m.group} (wave {m.wave})", True, f"{m.result} {m.release}".strip()) for m in moves]
    rec.details["moves"] = [m.__dict__ for m in moves]
    return conclude(
        rec,
        f"fleet of {desired.model}",
        checks,
        report=ctx.stage_dir("fleet") / "report.json",
        document={"moves": rec.details["moves"]},
    )
