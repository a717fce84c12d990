"""Talk 01 — "security is built from the first commit, so sign them".

Every commit in a range must carry a good SSH signature by a key its *first parent* trusts
(ADR 0024): the parent's security-policy.yaml names the allowed-signers file
(gates.commits.allowed_signers) and that file is read from the parent too, never from the work
tree, so a key becomes trusted only through a commit signed by a key that was already trusted.
A commit whose parent trusts a key that came from history older than the range's start (it branched
from there) must also be signed by a key the start trusts, or one the range itself added, so a key
removed before the range starts cannot sign from a parent that still listed it. A commit without
a parent is judged only by an operator's pinned file (``--allowed-signers``), which then judges
every commit. Only SSH signatures count: git picks the verifier from the signature block, so any
other format is refused before git is asked, and the other verifiers are pointed at a program that
cannot run. Every git call runs through tasks.source.git_history (no replace objects, grafts or
commit-graph; no shallow clone).
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import yaml

from tasks.context import Context
from tasks.core.errors import InputError
from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool
from tasks.source import git_history
from tasks.source.allowed_signers import signer_lines, timed_line

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

    label: str  # "parent <sha>", "range start <sha>", "pinned <file> sha256:<hex>"
    signers: bytes | None  # None: no file to judge by
    missing: str = ""  # why there is none, in one clause

    @property
    def short(self) -> str:
        """The label for a person: an abbreviated sha, the pinned file without its digest."""
        if self.label.startswith("pinned "):
            return self.label.split(" sha256:")[0]
        role, _, sha = self.label.rpartition(" ")
        return f"{role} {sha[:12]}"


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


def committed_blob(rec: StageRecord, git: Tool, repo: Path, rev: str, path: str) -> bytes | None:
    """``path`` as committed in ``rev`` (a blob only; never the work tree), or None."""
    try:
        found = git_history.run(rec, git, repo, ["cat-file", "blob", f"{rev}:{path}"])
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


def committed_anchor(rec: StageRecord, git: Tool, repo: Path, sha: str, role: str = "parent") -> Anchor:
    """The allowed signers commit ``sha`` names in its own security policy, read from ``sha``."""
    label, who = f"{role} {sha}", f"{role} {sha[:12]}"
    policy = committed_blob(rec, git, repo, sha, POLICY)
    if policy is None:
        return Anchor(label, None, f"{who} has no {POLICY}")
    path = _signers_path(policy)
    if path is None:
        return Anchor(label, None, f"{who}'s {POLICY} names no allowed-signers path in the tree")
    signers = committed_blob(rec, git, repo, sha, path)
    if signers is None:
        return Anchor(label, None, f"{who} has no {path}")
    timed = timed_line(signers)
    if timed:
        return Anchor(label, None, f"{who}'s {path}:{timed[0]} {_TIMED_REFUSAL.format(option=timed[1])}")
    return Anchor(label, signers)


_TIMED_REFUSAL = (
    "sets {option}, which the signer's own commit date decides; remove the key's line to revoke it (ADR 0024)"
)


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
    timed = timed_line(data)
    if timed:
        raise InputError(f"{pinned}:{timed[0]} {_TIMED_REFUSAL.format(option=timed[1])}")
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
        shown = git_history.run(rec, git, repo, ["log", "-1", "--format=%G?%x1f%GS", sha, "--"], config)
        code, signer = [*shown.stdout.strip().split("\x1f"), ""][:2] if shown.returncode == 0 else ("B", "")
        if code == "G":  # double-check with verify-commit, which exits non-zero on any doubt
            verified = git_history.run(rec, git, repo, ["verify-commit", sha], config)
            code = "G" if verified.returncode == 0 else "B"
    return code, signer


@dataclass
class Judges:
    """Who judges the commits of one range (ADR 0024), or one pinned file for every commit.

    A commit is judged by its first parent's anchors. When that parent's allowed signers hold a line
    that the range's start does not and no commit of the range added (it reached the parent from
    history older than the start, which had removed it), the start's anchors, with the lines the
    range added, judge the commit too: a removed key cannot sign by branching from before its removal,
    directly or through a commit a still trusted key made there.
    """

    rec: StageRecord
    git: Tool
    repo: Path
    pinned: Anchor | None
    starts: tuple[str, ...] = ()
    parents: dict[str, str | None] = field(default_factory=dict)  # each commit of the range -> first parent
    _read: dict[str, Anchor] = field(default_factory=dict)
    _added: frozenset[str] | None = None

    def _anchor(self, sha: str, role: str) -> Anchor:
        key = f"{role} {sha}"
        if key not in self._read:
            self._read[key] = committed_anchor(self.rec, self.git, self.repo, sha, role)
        return self._read[key]

    def _lines(self, sha: str | None) -> frozenset[str]:
        return signer_lines(self._anchor(sha, "parent").signers or b"") if sha else frozenset()

    def added(self) -> frozenset[str]:
        """The allowed-signers lines some commit of the range added to its first parent's."""
        if self._added is None:
            self._added = frozenset().union(*(self._lines(c) - self._lines(p) for c, p in self.parents.items()))
        return self._added

    def of(self, parent: str | None) -> list[Anchor]:
        """Every anchor whose signers must all allow the commit; empty for a root commit without a pin."""
        if self.pinned is not None:
            return [self.pinned]
        if parent is None:
            return []
        judges = [self._anchor(parent, "parent")]
        for start in (s for s in self.starts if s != parent):
            anchor = self._anchor(start, "range start")
            if self._lines(parent) - signer_lines(anchor.signers or b"") - self.added():
                extra = "".join(f"{line}\n" for line in sorted(self.added())).encode()
                signers = None if anchor.signers is None else anchor.signers.rstrip(b"\n") + b"\n" + extra
                judges.append(Anchor(anchor.label, signers, anchor.missing))
        return judges


def check_commit(ctx: Context, rec: StageRecord, repo: Path, sha: str, subject: str, judges: Judges) -> CommitCheck:
    git = ctx.tool("git")
    try:
        raw = git_history.run(rec, git, repo, ["cat-file", "commit", sha])
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
    anchors = judges.of(_first_parent(raw.stdout))
    if not anchors:
        return CommitCheck(sha, "A", "", subject, "none", "a commit without a parent needs --allowed-signers FILE")
    label = " and ".join(a.label for a in anchors)
    lacking = next((a for a in anchors if a.signers is None), None)
    if lacking is not None:
        return CommitCheck(sha, "A", "", subject, label, lacking.missing)
    signer = ""
    for anchor in anchors:
        code, signed_by = verify_signature(ctx, rec, repo, sha, anchor.signers or b"")
        signer = signer or signed_by
        if code != "G":
            return CommitCheck(sha, code, signer, subject, label, f"judged by {anchor.short}")
    return CommitCheck(sha, "G", signer, subject, label)


def check_range(
    ctx: Context, rec: StageRecord, rev_range: str, repo: Path, pinned: Path | None = None
) -> list[CommitCheck]:
    """Every commit of ``rev_range``, each judged by its first parent's anchors (and the range start's
    when the parent trusts a key from older history: Judges), or by ``pinned``."""
    git = ctx.tool("git")
    git_history.refuse_shallow(rec, git, repo)
    anchor = pinned_anchor(pinned, repo) if pinned is not None else None
    revs = git_history.resolve(rec, git, repo, rev_range)
    listing = git_history.run(
        rec, git, repo, ["log", "--no-show-signature", "--format=%H%x1f%P%x1f%s", *revs.args, "--"]
    )
    if listing.returncode != 0:
        raise InputError(f"git log {rev_range}: {listing.tail()} (is the range right?)")
    rows = [[*line.split("\x1f", 2), "", ""][:3] for line in listing.stdout.splitlines()]
    parents: dict[str, str | None] = {sha: next(iter(listed.split()), None) for sha, listed, _ in rows}
    judges = Judges(rec, git, repo, anchor, revs.starts, parents)
    return [check_commit(ctx, rec, repo, sha, subject, judges) for sha, _, subject in rows]


def record(rec: StageRecord, checks: list[CommitCheck]) -> None:
    """What judged each commit, in the evidence: its parent's sha (and the range start's), or the
    pinned file and its digest."""
    rec.details["anchors"] = {c.sha: c.anchor for c in checks}


@dataclass(frozen=True)
class BaseRange:
    """The commits HEAD holds that the base branch does not (the same as from their merge base), as
    ``<base tip>..<HEAD>``, each resolved once to a commit. The base's tip starts the range, so a
    commit that branched from older history is judged by the anchors the base holds now too."""

    ref: str  # refs/heads/<base> or refs/remotes/origin/<base>
    tip: str
    merge_base: str
    head: str

    @property
    def text(self) -> str:
        return f"{self.tip}..{self.head}"

    @property
    def empty(self) -> bool:
        return self.merge_base == self.head  # HEAD is on the base already


def default_range(ctx: Context, rec: StageRecord, repo: Path, base: str) -> BaseRange:
    git = ctx.tool("git")
    git_history.refuse_shallow(rec, git, repo)
    head = git_history.commit_of(rec, git, repo, "HEAD")
    if head is None:
        raise InputError(f"{repo}: HEAD names no commit; there is nothing to verify")
    for ref, tip in git_history.branch_tips(rec, git, repo, base):
        found = git_history.run(rec, git, repo, ["merge-base", head, tip])
        if found.returncode == 0:
            return BaseRange(ref, tip, found.stdout.strip(), head)
    raise InputError(
        f"no merge base between HEAD and '{base}' (refs/heads/{base} nor refs/remotes/origin/{base}; a tag is never "
        "a base): fetch it, name another with --base, or give `nox -s commits` a range, e.g. `nox -s commits -- A..B`"
    )
