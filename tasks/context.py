"""The explicit context every stage receives: where things are, the policy, tools, evidence."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tasks import toolchain
from tasks.core import atomic, runner
from tasks.core.errors import EvidenceError, InputError, PipelineError
from tasks.core.evidence import EvidenceStore, StageRecord
from tasks.core.repository import CHECKOUT
from tasks.core.runner import Tool
from tasks.policy import Policy
from tasks.policy import load as load_policy
from tasks.toolchain import archive

ROOT = CHECKOUT


@dataclass
class Context:
    root: Path
    out: Path
    policy_path: Path
    evidence: EvidenceStore
    _policy: Policy | None = field(default=None, repr=False)
    _tools: dict[str, Tool] = field(default_factory=dict, repr=False)
    _record: StageRecord | None = field(default=None, repr=False)  # the stage now running, once bound

    def bind(self, rec: StageRecord) -> Context:
        """The stage whose evidence records what tool() installs (pipeline.run_stage binds it)."""
        self._record = rec
        return self

    @classmethod
    def create(cls, root: Path | None = None, out: Path | None = None) -> Context:
        root = (root or Path(os.environ.get("SECURE_IOT_ROOT", ROOT))).resolve()
        out = (out or Path(os.environ.get("SECURE_IOT_OUT", root / "out"))).resolve()
        policy_path = Path(os.environ.get("SECURE_IOT_POLICY", root / "security-policy.yaml"))
        return cls(root=root, out=out, policy_path=policy_path, evidence=EvidenceStore(out / "evidence.json"))

    @property
    def policy(self) -> Policy:
        if self._policy is None:
            self._policy = load_policy(self.policy_path)
        return self._policy

    def stage_dir(self, stage: str) -> Path:
        path = self.out / stage
        path.mkdir(parents=True, exist_ok=True)
        return path

    def inside(self, path: str | Path) -> Path:
        """Resolve ``path`` against the repo root; refuse anything outside it."""
        resolved = (self.root / path).resolve()
        if not resolved.is_relative_to(self.root):
            raise InputError(f"{path}: path is outside the repository ({self.root})")
        return resolved

    def rel(self, path: str | Path) -> str:
        """``path`` relative to the repo root, with POSIX separators (as is, if outside it)."""
        resolved = (self.root / path).resolve()
        return resolved.relative_to(self.root).as_posix() if resolved.is_relative_to(self.root) else str(path)

    def artifact(self, name: str | Path) -> Path:
        """A file named in the evidence: inside the repository or the output directory, nowhere else."""
        resolved = (self.root / name).resolve()
        if not (resolved.is_relative_to(self.root) or resolved.is_relative_to(self.out)):
            raise InputError(f"{name}: evidence names a file outside the repository and {self.out}")
        return resolved

    def unchanged(self, name: str | Path, digest: str) -> Path:
        """``artifact(name)``, refused if its content is not what the evidence recorded."""
        path = self.artifact(name)
        actual = "sha256:" + atomic.sha256_file(path) if path.is_file() else "missing"
        if actual != digest:
            raise EvidenceError(
                f"{name}: changed since its stage recorded it ({actual}, evidence says {digest}); rerun that stage"
            )
        return path

    def tool(self, name: str) -> Tool:
        """The pinned tool, resolved (and its sha256 checked) once per run of a stage."""
        if name not in self._tools:
            if self._record is None:
                raise PipelineError(f"{name}: a tool is resolved inside a stage only (Context.bind(rec) first)")
            self._tools[name] = toolchain.resolve(name, self.root, self._record)
        return self._tools[name]

    def pinned_input(self, name: str) -> dict[str, archive.Fetched]:
        """The files of tools.lock's [inputs.<name>], fetched once, sha256-checked, recorded as inputs."""
        if self._record is None:
            raise PipelineError(f"{name}: an input is fetched inside a stage only (Context.bind(rec) first)")
        return archive.fetch(name, toolchain.lock_path(self.root), self._record)


def source_date_epoch(ctx: Context, rec: StageRecord) -> int:
    """SOURCE_DATE_EPOCH if set, else the commit time of HEAD: the same for every clone."""
    raw = os.environ.get("SOURCE_DATE_EPOCH")
    if raw is None:
        done = runner.run(rec, ctx.tool("git"), ["log", "-1", "--format=%ct"], cwd=ctx.root, check=False)
        raw = done.stdout.strip()
    if not raw.isdigit():
        raise InputError(f"SOURCE_DATE_EPOCH={raw!r}: expected seconds since 1970 (or a git checkout)")
    return int(raw)


def git_revision(ctx: Context, rec: StageRecord) -> str:
    done = runner.run(rec, ctx.tool("git"), ["rev-parse", "HEAD"], cwd=ctx.root, check=False)
    return done.stdout.strip() if done.returncode == 0 else "unknown"
