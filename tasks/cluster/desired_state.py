"""The desired state Argo CD reads in `nox -s gitops`: a bare copy of this repository, whose
``main`` is the checkout's commit plus the pipeline's release commit.

The release commit does what a release does in infra/gitops/server.yaml: it names the image the
pipeline built and signed, by digest. Everything else (the pinned chart and policy commits, the
project, the app of apps) is the committed file. A later commit is the next desired state; a
``git revert`` is the rollback.
"""

from __future__ import annotations

import functools
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from tasks.context import Context
from tasks.core import atomic, runner
from tasks.core.errors import InputError
from tasks.core.evidence import StageRecord
from tasks.core.runner import Completed, Tool

REPOSITORY = "secure-iot.git"  # under the git daemon's base path: git://<host>/secure-iot.git
BRANCH = "main"  # what the app of apps follows
SERVER_APP = "infra/gitops/server.yaml"
POLICIES_APP = "infra/gitops/admission-policies.yaml"
REGISTRIES_KIND = "K8sAllowedRegistries"
AUTHOR = ("secure-iot pipeline", "pipeline@secure-iot.invalid")
# only the repository's own settings: no user's signing key, hooks or aliases leak into the copy
GIT_ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_TERMINAL_PROMPT": "0"}
IMAGE_LINE = re.compile(r"^(?P<indent>\s+)(?P<key>repository|digest):\s*\S+\s*$", re.MULTILINE)
REVISION_LINE = re.compile(r"^(?P<indent>\s+)targetRevision:\s*[0-9a-f]{40}\s*$", re.MULTILINE)


@dataclass(frozen=True)
class Mirror:
    base: Path  # the git daemon's --base-path
    work: Path  # a clone where the pipeline commits, pushed to the bare copy
    git: Tool

    @property
    def bare(self) -> Path:
        return self.base / REPOSITORY

    def run(self, rec: StageRecord, *args: str, cwd: Path | None = None) -> Completed:
        return runner.run(rec, self.git, list(args), cwd=cwd or self.work, env=GIT_ENV, timeout=300)

    def head(self, rec: StageRecord) -> str:
        return self.run(rec, "rev-parse", "HEAD").stdout.strip()


def create(ctx: Context, rec: StageRecord, git: Tool, root: Path) -> Mirror:
    """A fresh bare copy of this repository (every run starts from the checkout, nothing earlier
    is trusted) with ``main`` at the checkout's HEAD, and a clone of it to commit in."""
    mirror = Mirror(root / "repos", root / "work", git)
    for path in (mirror.base, mirror.work):
        shutil.rmtree(path, ignore_errors=True)
    mirror.base.mkdir(parents=True)
    head = mirror.run(rec, "rev-parse", "HEAD", cwd=ctx.root).stdout.strip()
    mirror.run(rec, "clone", "--quiet", "--bare", "--no-local", str(ctx.root), str(mirror.bare), cwd=mirror.base)
    mirror.run(rec, "update-ref", f"refs/heads/{BRANCH}", head, cwd=mirror.bare)
    mirror.run(rec, "clone", "--quiet", "--branch", BRANCH, str(mirror.bare), str(mirror.work), cwd=mirror.base)
    dirty = mirror.run(rec, "status", "--porcelain", "--untracked-files=no", cwd=ctx.root).stdout.strip()
    rec.details["desired_state"] = {"base": head, "uncommitted_changes_left_out": bool(dirty)}
    return mirror


def with_image(text: str, repository: str, digest: str) -> str:
    """server.yaml naming ``repository@digest``: its two image lines replaced, comments kept; refused
    unless the result parses to exactly that image."""
    found = {m.group("key") for m in IMAGE_LINE.finditer(text)}
    if found != {"repository", "digest"} or len(IMAGE_LINE.findall(text)) != 2:
        raise InputError(f"{SERVER_APP}: expected one image `repository:` and one `digest:` line in the Helm values")
    value = {"repository": repository, "digest": digest}
    edited = IMAGE_LINE.sub(lambda m: f"{m.group('indent')}{m.group('key')}: {value[m.group('key')]}", text)
    image = (yaml.safe_load(edited) or {}).get("spec", {}).get("source", {}).get("helm", {}).get("valuesObject", {})
    if image.get("image") != value:
        raise InputError(f"{SERVER_APP}: the image lines are not spec.source.helm.valuesObject.image")
    return edited


def with_revision(text: str, commit: str) -> str:
    """An Application pinned to ``commit`` instead: its one 40-hex targetRevision line replaced."""
    if len(REVISION_LINE.findall(text)) != 1:
        raise InputError(f"{POLICIES_APP}: expected one targetRevision pinned to a commit")
    edited = REVISION_LINE.sub(lambda m: f"{m.group('indent')}targetRevision: {commit}", text)
    if (yaml.safe_load(edited) or {}).get("spec", {}).get("source", {}).get("targetRevision") != commit:
        raise InputError(f"{POLICIES_APP}: the pinned line is not spec.source.targetRevision")
    return edited


def registry_change(mirror: Mirror, rec: StageRecord, address: str) -> str | None:
    """None when the admission policies the desired state pins allow images from ``address``.
    Otherwise the policy change a new registry is: a commit on ``main`` adding it to the
    allowed-registries constraint, for the release to pin the policies to (returned)."""
    app = yaml.safe_load((mirror.work / POLICIES_APP).read_text(encoding="utf-8"))
    pinned, path = app["spec"]["source"]["targetRevision"], app["spec"]["source"]["path"]
    listed = mirror.run(rec, "ls-tree", "-r", "--name-only", pinned, "--", path).stdout.split()
    for name in (n for n in listed if n.endswith((".yaml", ".yml"))):
        doc = yaml.safe_load(mirror.run(rec, "show", f"{pinned}:{name}").stdout) or {}
        if doc.get("kind") != REGISTRIES_KIND:
            continue
        if address in doc.get("spec", {}).get("parameters", {}).get("registries", []):
            return None
        current = mirror.work / name
        edited = yaml.safe_load(current.read_text(encoding="utf-8"))
        edited["spec"].setdefault("parameters", {}).setdefault("registries", []).append(address)
        atomic.write_text(current, yaml.safe_dump(edited, sort_keys=False))
        return _commit(
            mirror,
            rec,
            "commit",
            "--quiet",
            "--all",
            "--message",
            f"policy: allow images from {address}, the registry this pipeline pushes to",
        )
    raise InputError(f"{path} at {pinned[:12]}: no {REGISTRIES_KIND} constraint to check the registry against")


def commit_release(
    mirror: Mirror, rec: StageRecord, repository: str, digest: str, message: str, policies: str | None = None
) -> str:
    """A commit on ``main`` naming the image (and pinning the admission policies to ``policies``);
    none when the files say so already. The new head."""
    edits: dict[str, Callable[[str], str]] = {
        SERVER_APP: functools.partial(with_image, repository=repository, digest=digest)
    }
    if policies is not None:
        edits[POLICIES_APP] = functools.partial(with_revision, commit=policies)
    changed = False
    for relative, edit in edits.items():
        path = mirror.work / relative
        before = path.read_text(encoding="utf-8")
        after = edit(before)
        if after != before:
            atomic.write_text(path, after)
            changed = True
    if not changed:
        return mirror.head(rec)
    return _commit(mirror, rec, "commit", "--quiet", "--all", "--message", message)


def revert(mirror: Mirror, rec: StageRecord, commit: str) -> str:
    """The rollback: ``git revert`` of ``commit`` on ``main``; the new head."""
    return _commit(mirror, rec, "revert", "--no-edit", commit)


def _commit(mirror: Mirror, rec: StageRecord, *args: str) -> str:
    name, email = AUTHOR
    identity = ["-c", f"user.name={name}", "-c", f"user.email={email}", "-c", "commit.gpgsign=false"]
    mirror.run(rec, *identity, *args)
    mirror.run(rec, "push", "--quiet", "origin", f"HEAD:{BRANCH}")
    return mirror.head(rec)
