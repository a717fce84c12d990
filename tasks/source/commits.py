"""Talk 01 — "security is built from the first commit, so sign them".

Every commit in a range must carry a good SSH signature by a key its *first parent* trusts
(ADR 0024): the parent's security-policy.yaml names the allowed-signers file
(gates.commits.allowed_signers) and that file is read from the parent too, never from the work
tree, so a key becomes trusted only through a commit signed by a key that was already trusted.
A commit without a parent is judged only by an operator's pinned file (``--allowed-signers``),
which then judges every commit. Only SSH signatures count: git picks the verifier from the
signature block, so any other format is refused before git is asked, and the other verifiers are
pointed at a program that cannot run.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from tasks.context import Context
from tasks.core import runner
from tasks.core.errors import InputError
from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool

POLICY = "security-policy.yaml"  # at the root of the parent's tree
DEFAULT_SIGNERS = ".github/allowed_signers"
SSH_BLOCK = "-----BEGIN SSH SIGNATURE-----"
FORMATS = {  # what git would hand to another verifier (gpg-interface.c's signature types)
    "-----BEGIN PGP SIGNATURE-----": "openpgp",
    "-----BEGIN PGP MESSAGE-----": "openpgp",
    "-----BEGIN SIGNED MESSAGE-----": "x509",
}
SIGNATURE_HEADERS = ("gpgsig", "gpgsig-sha256")
NO_VERIFIER = "/dev/null"  # not executable: git cannot run an OpenPGP or X.509 verifier at all

# git's %G? codes, and this module's own (F, A), in words a reviewer understands.
STATUS = {
    "G": "good signature by an allowed signer",
    "B": "bad signature (content changed after signing)",
    "U": "signed, but by a key not in the allowed-signers file",
    "E": "signed, but by a key not in the allowed-signers file",
    "X": "signature has expired",
    "Y": "signed by an expired key",
    "R": "signed by a revoked key",
    "N": "unsigned",
    "F": "signed in a format the policy does not name",
    "A": "no trust anchor",
}


@dataclass(frozen=True)
class CommitCheck:
    sha: str
    code: str
    signer: str
    subject: str
    anchor: str  # what judged it: "parent <sha>", "pinned <file> sha256:<hex>", or "none"
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.code == "G"

    @property
    def status(self) -> str:
        words = STATUS.get(self.code, self.code)
        return f"{words}: {self.detail}" if self.detail else words


@dataclass(frozen=True)
class Anchor:
    """The allowed signers a commit is judged by, and where they came from."""

    label: str
    signers: bytes | None  # None: no file to judge by
    missing: str = ""  # why there is none, in one clause

    @property
    def short(self) -> str:
        """The label for a person: an abbreviated parent sha, the pinned file without its digest."""
        kind, _, rest = self.label.partition(" ")
        return f"parent {rest[:12]}" if kind == "parent" else self.label.split(" sha256:")[0]


def signature_formats(raw: str) -> list[str]:
    """The format of every signature block in a raw commit object (`git cat-file commit`)."""
    header = raw.split("\n\n", 1)[0].split("\n")
    formats = []
    for i, line in enumerate(header):
        name, _, first = line.partition(" ")
        if name in SIGNATURE_HEADERS:
            first = first.strip() or (header[i + 1].strip() if i + 1 < len(header) else "")
            formats.append("ssh" if first == SSH_BLOCK else FORMATS.get(first, "unknown"))
    return formats


def _first_parent(raw: str) -> str | None:
    header = raw.split("\n\n", 1)[0].split("\n")
    return next((line.split(" ", 1)[1].strip() for line in header if line.startswith("parent ")), None)


def _blob(rec: StageRecord, git: Tool, repo: Path, rev: str, path: str) -> bytes | None:
    """``path`` as committed in ``rev`` (a blob only; never the work tree), or None."""
    try:
        found = runner.run(rec, git, ["cat-file", "blob", f"{rev}:{path}"], cwd=repo, check=False)
    except UnicodeDecodeError:  # neither a policy nor an allowed-signers file is binary
        return None
    return found.stdout.encode() if found.returncode == 0 else None


def _signers_path(policy: bytes) -> str | None:
    """gates.commits.allowed_signers of a policy document, if it is a plain path inside the tree."""
    try:
        data = yaml.safe_load(policy.decode())
        named = data["gates"]["commits"].get("allowed_signers", DEFAULT_SIGNERS)
    except (yaml.YAMLError, UnicodeDecodeError, KeyError, TypeError, AttributeError):
        return None
    path = PurePosixPath(named) if isinstance(named, str) else None
    return str(path) if path and not path.is_absolute() and ".." not in path.parts and str(path) != "." else None


def parent_anchor(rec: StageRecord, git: Tool, repo: Path, parent: str) -> Anchor:
    """The allowed signers ``parent`` names in its own security policy, read from ``parent``."""
    label = f"parent {parent}"
    policy = _blob(rec, git, repo, parent, POLICY)
    if policy is None:
        return Anchor(label, None, f"parent {parent[:12]} has no {POLICY}")
    path = _signers_path(policy)
    if path is None:
        return Anchor(label, None, f"parent {parent[:12]}'s {POLICY} names no allowed-signers path in the tree")
    signers = _blob(rec, git, repo, parent, path)
    return Anchor(label, signers, "" if signers is not None else f"parent {parent[:12]} has no {path}")


def pinned_anchor(pinned: Path, repo: Path) -> Anchor:
    """An operator's allowed-signers file, outside the repository whose change it judges."""
    if not pinned.is_file():
        raise InputError(f"{pinned}: allowed-signers file not found (one `email key` line per signer)")
    if pinned.resolve().is_relative_to(repo.resolve()):
        raise InputError(
            f"{pinned}: inside the repository under test, which the change can write; pin a copy outside it"
        )
    data = pinned.read_bytes()
    if not data.strip():
        raise InputError(f"{pinned}: the pinned allowed-signers file is empty; nothing could pass")
    return Anchor(f"pinned {pinned} sha256:{hashlib.sha256(data).hexdigest()}", data)


@contextmanager
def _signers_file(signers: bytes) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="allowed-signers-") as scratch:  # 0700, removed after
        path = Path(scratch) / "allowed_signers"
        path.write_bytes(signers)
        yield path


def verify_signature(ctx: Context, rec: StageRecord, repo: Path, sha: str, signers: bytes) -> tuple[str, str]:
    """git's %G? code and signer for ``sha`` against exactly ``signers``; G only if verify-commit agrees."""
    git = ctx.tool("git")
    with _signers_file(signers) as allowed:
        config = [
            *("-c", "gpg.format=ssh"),
            *("-c", f"gpg.ssh.program={ctx.tool('ssh-keygen').path}"),  # the pinned one, not whatever PATH has
            *("-c", f"gpg.ssh.allowedSignersFile={allowed}"),
            *("-c", f"gpg.openpgp.program={NO_VERIFIER}"),  # defence in depth: formats are refused before this
            *("-c", f"gpg.x509.program={NO_VERIFIER}"),
        ]
        shown = runner.run(rec, git, [*config, "log", "-1", "--format=%G?%x1f%GS", sha, "--"], cwd=repo, check=False)
        code, signer = [*shown.stdout.strip().split("\x1f"), ""][:2] if shown.returncode == 0 else ("B", "")
        if code == "G":  # double-check with verify-commit, which exits non-zero on any doubt
            verified = runner.run(rec, git, [*config, "verify-commit", sha], cwd=repo, check=False)
            code = "G" if verified.returncode == 0 else "B"
    return code, signer


def check_commit(
    ctx: Context, rec: StageRecord, repo: Path, sha: str, subject: str, pinned: Anchor | None
) -> CommitCheck:
    git = ctx.tool("git")
    try:
        raw = runner.run(rec, git, ["cat-file", "commit", sha], cwd=repo, check=False)
    except UnicodeDecodeError:  # a commit object that is not UTF-8 text: nothing to reason about
        return CommitCheck(sha, "B", "", subject, "none", "the commit object is not UTF-8 text")
    if raw.returncode != 0:
        raise InputError(f"git cat-file commit {sha}: {raw.tail()}")
    formats = signature_formats(raw.stdout)
    if not formats:
        return CommitCheck(sha, "N", "", subject, "none")
    foreign = sorted({f for f in formats if f != "ssh"})
    if foreign:
        return CommitCheck(sha, "F", "", subject, "none", "/".join(foreign))
    parent = _first_parent(raw.stdout)
    if pinned is not None:
        anchor = pinned
    elif parent is None:
        return CommitCheck(sha, "A", "", subject, "none", "a commit without a parent needs --allowed-signers FILE")
    else:
        anchor = parent_anchor(rec, git, repo, parent)
    if anchor.signers is None:
        return CommitCheck(sha, "A", "", subject, anchor.label, anchor.missing)
    code, signer = verify_signature(ctx, rec, repo, sha, anchor.signers)
    judged = "" if code == "G" else f"judged by {anchor.short}"
    return CommitCheck(sha, code, signer, subject, anchor.label, judged)


def check_range(
    ctx: Context, rec: StageRecord, rev_range: str, repo: Path, pinned: Path | None = None
) -> list[CommitCheck]:
    """Every commit of ``rev_range``, each judged by its first parent's anchors (or by ``pinned``)."""
    anchor = pinned_anchor(pinned, repo) if pinned is not None else None
    listing = runner.run(
        rec,
        ctx.tool("git"),
        ["log", "--no-show-signature", "--format=%H%x1f%s", rev_range, "--"],
        cwd=repo,
        check=False,
    )
    if listing.returncode != 0:
        raise InputError(f"git log {rev_range}: {listing.tail()} (is the range right?)")
    rows = [[*line.split("\x1f", 1), ""][:2] for line in listing.stdout.splitlines()]
    return [check_commit(ctx, rec, repo, sha, subject, anchor) for sha, subject in rows]


def record(rec: StageRecord, checks: list[CommitCheck]) -> None:
    """What judged each commit, in the evidence: its parent's sha, or the pinned file and its digest."""
    rec.details["anchors"] = {c.sha: c.anchor for c in checks}


def default_range(ctx: Context, rec: StageRecord, repo: Path, base: str) -> str:
    git = ctx.tool("git")
    for candidate in (base, f"origin/{base}"):
        found = runner.run(rec, git, ["merge-base", "HEAD", candidate], cwd=repo, check=False)
        if found.returncode == 0:
            return f"{found.stdout.strip()}..HEAD"
    raise InputError(
        f"no merge base between HEAD and '{base}' (nor origin/{base}): fetch it, name another with --base, "
        "or give `nox -s commits` a range, e.g. `nox -s commits -- A..B`"
    )
