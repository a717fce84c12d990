"""nox -s commits"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from tasks.context import Context
from tasks.core.console import console, error_line
from tasks.core.errors import InputError
from tasks.core.evidence import StageRecord, Verdict
from tasks.source.commits import check_range, default_range, record


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s commits", description="verify commit signatures")
    parser.add_argument(
        "range",
        nargs="?",
        help="git revision range (default: the commits HEAD holds that --base does not, <base tip>..HEAD)",
    )
    parser.add_argument(
        "--base",
        default="main",
        help="branch (refs/heads/, else refs/remotes/origin/) whose tip starts the default range",
    )
    parser.add_argument("--repo", type=Path, default=None, help="repository to check (default: this one)")
    parser.add_argument(
        "--allowed-signers",
        type=Path,
        default=None,
        help="a pinned allowed-signers file outside the repository, judging every commit instead of each parent's",
    )
    args = parser.parse_args(argv)
    repo = (args.repo or ctx.root).resolve()
    rev_range = args.range or default_range(ctx, rec, repo, args.base).text
    checks = check_range(ctx, rec, rev_range, repo, args.allowed_signers)
    if not checks:
        raise InputError(f"no commits in {rev_range}: nothing to verify is not a pass; give the range to check")
    bad = [c for c in checks if not c.ok]
    rec.details.update({"range": rev_range, "checked": len(checks), "failing": [c.sha for c in bad]})
    record(rec, checks)
    for c in bad:
        console.print(f"  [red]✗[/] {c.sha[:12]} {c.status}: {c.subject}")
    if bad:
        rec.reason = f"{len(bad)} of {len(checks)} commit(s) in {rev_range} not signed by a key their parent trusts"
        error_line(rec.reason)
        return "fail"
    console.print(
        f"[green]commits: pass[/] — {len(checks)} commit(s) in {rev_range} signed by keys their parents trust"
    )
    return "pass"
