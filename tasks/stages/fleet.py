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
from tasks.source.commits import STATUS, check_range


def signed_change(ctx: Context, rec: StageRecord, signers: Path) -> Check:
    """The commit that last changed fleet/ is signed by an allowed key, and fleet/ has no uncommitted change."""
    git = ctx.tool("git")
    dirty = runner.run(rec, git, ["status", "--porcelain", "--", "fleet/"], cwd=ctx.root, check=False).stdout.strip()
    if dirty:
        return Check(
            "fleet change signed",
            False,
            f"uncommitted changes in fleet/: {dirty.splitlines()[0]}",
            "the desired state is a signed commit",
        )
    sha = runner.run(rec, git, ["log", "-1", "--format=%H", "--", "fleet/"], cwd=ctx.root, check=False).stdout.strip()
    if not sha:
        return Check("fleet change signed", False, "fleet/ is in no commit", "the desired state is a signed commit")
    [commit] = check_range(ctx, rec, f"{sha}^!", signers, ctx.root)
    rec.details["fleet_commit"] = sha
    return Check(
        "fleet change signed",
        commit.ok,
        f"{sha[:12]}: {STATUS.get(commit.code, commit.code)}",
        "good signature by an allowed signer",
    )


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s fleet", description="reconcile fleet/ into the TUF repository")
    parser.add_argument("--allowed-signers", type=Path, default=None)
    args = parser.parse_args(argv)
    desired_path = ctx.inside(fleet.DESIRED)
    rec.add_input(desired_path, "application/toml")
    desired = fleet.load(desired_path)
    signers = args.allowed_signers or ctx.inside(
        ctx.policy.gate("commits").settings.get("allowed_signers", ".github/allowed_signers")
    )
    signed = signed_change(ctx, rec, Path(signers))
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
