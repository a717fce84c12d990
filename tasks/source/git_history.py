"""git as the commit gates read history: the parents the commit objects hold, nothing laid over them.

Three files in ``.git`` make git's traversal report parents a commit object does not hold: a
``refs/replace/`` ref swaps a whole commit for another, ``info/grafts`` rewrites its parents, and a
commit-graph file is trusted for parents without reading the object. Every git call of the gates
runs here, with the first two switched off by environment and the third by configuration; a shallow
repository (``.git/shallow``, which cuts parents the same way) is refused. Names are resolved as
full refs, so a tag cannot stand in for the base branch (git prefers ``refs/tags/main`` to
``refs/heads/main`` when asked for ``main``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tasks.core import runner
from tasks.core.errors import InputError
from tasks.core.evidence import StageRecord
from tasks.core.runner import Completed, Tool

ENV = {"GIT_NO_REPLACE_OBJECTS": "1", "GIT_GRAFT_FILE": "/nonexistent"}
CONFIG = ("-c", "core.commitGraph=false")
OBJECT_NAME = re.compile(r"\^?[0-9a-f]{40}([0-9a-f]{24})?")


def run(rec: StageRecord, git: Tool, repo: Path, args: Sequence[str], config: Sequence[str] = ()) -> Completed:
    """``git [config] args`` in ``repo``, recorded, without replace objects, grafts or a commit-graph."""
    return runner.run(rec, git, [*CONFIG, *config, *args], cwd=repo, env=ENV, check=False)


def refuse_shallow(rec: StageRecord, git: Tool, repo: Path) -> None:
    found = run(rec, git, repo, ["rev-parse", "--is-shallow-repository"])
    if found.returncode != 0:
        raise InputError(f"{repo}: not a git repository ({found.tail()})")
    if found.stdout.strip() != "false":
        raise InputError(f"{repo} is a shallow clone, whose history ends early: fetch full history (fetch-depth: 0)")


def commit_of(rec: StageRecord, git: Tool, repo: Path, ref: str) -> str | None:
    """The commit a full ref (or HEAD) names, or None."""
    found = run(rec, git, repo, ["rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}"])
    return found.stdout.strip() if found.returncode == 0 else None


def branch_tips(rec: StageRecord, git: Tool, repo: Path, base: str) -> list[tuple[str, str]]:
    """(ref, commit) of ``refs/heads/<base>`` and of ``refs/remotes/origin/<base>``, those that exist,
    in that order; never a tag or any other ref that shares the name."""
    named = run(rec, git, repo, ["check-ref-format", "--branch", base]) if not base.startswith("-") else None
    if named is None or named.returncode != 0 or named.stdout.strip() != base:
        raise InputError(f"--base {base!r} is not a branch name; name the protected branch, e.g. --base main")
    found = [(ref, commit_of(rec, git, repo, ref)) for ref in (f"refs/heads/{base}", f"refs/remotes/origin/{base}")]
    return [(ref, sha) for ref, sha in found if sha]


@dataclass(frozen=True)
class Revisions:
    """A revision range as git resolved it, once: the commits it starts after and the tips it ends at."""

    text: str  # as given, for people
    starts: tuple[str, ...]  # the excluded commits (A of A..B); none for a range that reaches the root
    tips: tuple[str, ...]

    @property
    def args(self) -> list[str]:
        return [*self.tips, *(f"^{s}" for s in self.starts)]


def resolve(rec: StageRecord, git: Tool, repo: Path, rev_range: str) -> Revisions:
    found = run(rec, git, repo, ["rev-parse", "--end-of-options", rev_range])
    names = [line for line in found.stdout.split() if line != "--end-of-options"]
    if found.returncode != 0 or not names or not all(OBJECT_NAME.fullmatch(n) for n in names):
        raise InputError(f"git rev-parse {rev_range}: {found.tail() or 'not a revision range'} (is the range right?)")
    starts = tuple(commit_of(rec, git, repo, n[1:]) or n[1:] for n in names if n.startswith("^"))  # a tag: its commit
    return Revisions(rev_range, starts, tuple(n for n in names if not n.startswith("^")))
