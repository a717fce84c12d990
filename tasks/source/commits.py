"""Talk 01 — "security is built from the first commit, so sign them".

Every commit in a range must carry a good SSH signature by a key listed in the
allowed-signers file (git's gpg.format=ssh + gpg.ssh.allowedSignersFile).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tasks.context import Context
from tasks.core import runner
from tasks.core.errors import InputError
from tasks.core.evidence import StageRecord

# git's %G? codes, in words a reviewer understands.
STATUS = {
    "G": "good signature by an allowed signer",
    "B": "bad signature (content changed after signing)",
    "U": "signed, but by a key not in the allowed-signers file",
    "E": "signed, but by a key not in the allowed-signers file",
    "X": "signature has expired",
    "Y": "signed by an expired key",
    "R": "signed by a revoked key",
    "N": "unsigned",
}


@dataclass(frozen=True)
class CommitCheck:
    sha: str
    code: str
    signer: str
    subject: str

    @property
    def ok(self) -> bool:
        return self.code == "G"


def check_range(ctx: Context, rec: StageRecord, rev_range: str, allowed_signers: Path, repo: Path) -> list[CommitCheck]:
    if not allowed_signers.is_file():
        raise InputError(f"{allowed_signers}: allowed-signers file not found (one `email key` line per signer)")
    git = ctx.tool("git")
    config = [
        "-c",
        "gpg.format=ssh",
        "-c",
        f"gpg.ssh.program={ctx.tool('ssh-keygen').path}",  # the pinned one, not whatever PATH has
        "-c",
        f"gpg.ssh.allowedSignersFile={allowed_signers.resolve()}",
    ]
    listing = runner.run(
        rec,
        git,
        [*config, "log", "--no-show-signature", "--format=%H%x1f%G?%x1f%GS%x1f%s", rev_range, "--"],
        cwd=repo,
        check=False,
    )
    if listing.returncode != 0:
        raise InputError(f"git log {rev_range}: {listing.tail()} (is the range right?)")
    checks = []
    for line in listing.stdout.splitlines():
        sha, code, signer, subject = [*line.split("\x1f"), "", "", ""][:4]
        if code == "G":  # double-check with verify-commit, which exits non-zero on any doubt
            verified = runner.run(rec, git, [*config, "verify-commit", sha], cwd=repo, check=False)
            code = "G" if verified.returncode == 0 else "B"
        checks.append(CommitCheck(sha, code, signer, subject))
    return checks


def default_range(ctx: Context, rec: StageRecord, repo: Path, base: str) -> str:
    git = ctx.tool("git")
    for candidate in (base, f"origin/{base}"):
        found = runner.run(rec, git, ["merge-base", "HEAD", candidate], cwd=repo, check=False)
        if found.returncode == 0:
            return f"{found.stdout.strip()}..HEAD"
    raise InputError(f"no merge base between HEAD and '{base}': pass a range, e.g. `nox -s commits -- A..B`")
