"""nox -s fleet"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from pathlib import Path

from tasks import ota
from tasks.context import Context
from tasks.core import runner
from tasks.core.checks import Check, conclude
from tasks.core.errors import VerificationError
from tasks.core.evidence import StageRecord, Verdict
from tasks.ota import fleet
from tasks.source.commits import check_range, default_range, record


def signed_change(ctx: Context, rec: StageRecord, base: str, pinned: Path | None = None) -> Check:
    """fleet/ has no uncommitted change, the commit that last changed it is signed by a key its parent
    trusts, and so is every commit from the merge base with ``base`` to HEAD (tasks.source.commits)."""
    git = ctx.tool("git")
    expected = "every commit since the merge base, and the fleet change, signed by a key its parent trusts"
    dirty = runner.run(rec, git, ["status", "--porcelain", "--", "fleet/"], cwd=ctx.root, check=False).stdout.strip()
    if dirty:
        return Check("fleet change signed", False, f"uncommitted changes in fleet/: {dirty.splitlines()[0]}", expected)
    sha = runner.run(rec, git, ["log", "-1", "--format=%H", "--", "fleet/"], cwd=ctx.root, check=False).stdout.strip()
    if not sha:
        return Check("fleet change signed", False, "fleet/ is in no commit", expected)
    rev_range = default_range(ctx, rec, ctx.root, base)
    [change] = check_range(ctx, rec, f"{sha}^!", ctx.root, pinned)
    branch = [c for c in check_range(ctx, rec, rev_range, ctx.root, pinned) if c.sha != sha]
    record(rec, [change, *branch])
    rec.details.update(
        {"fleet_commit": sha, "range": rev_range, "failing": [c.sha for c in [change, *branch] if not c.ok]}
    )
    bad = next((c for c in [change, *branch] if not c.ok), None)
    if bad is None:
        return Check(
            "fleet change signed", True, f"{sha[:12]}: {change.status} ({len(branch) + 1} commit(s))", expected
        )
    return Check("fleet change signed", False, f"{bad.sha[:12]} {bad.status}: {bad.subject}", expected)


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s fleet", description="reconcile fleet/ into the TUF repository")
    parser.add_argument("--base", default="main", help="branch whose merge base starts the commits checked")
    parser.add_argument(
        "--allowed-signers",
        type=Path,
        default=None,
        help="a pinned allowed-signers file outside the repository, judging every commit instead of each parent's",
    )
    args = parser.parse_args(argv)
    desired_path = ctx.inside(fleet.DESIRED)
    rec.add_input(desired_path, "application/toml")
    desired = fleet.load(desired_path)
    signed = signed_change(ctx, rec, args.base, args.allowed_signers)
    if not signed.passed:
        return conclude(rec, "fleet reconcile refused", [signed], report=ctx.stage_dir("fleet") / "report.json")
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
