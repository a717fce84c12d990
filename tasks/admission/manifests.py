"""GitOps for applications and infrastructure (issue #15): infra/gitops/ for Argo CD, validated offline.

- The CRDs are the pinned ones (infra/gitops/crds.toml): ``go mod download -json`` of the Argo CD
  module (its go.sum hash must match) and each CRD file's sha256; JSON schemas are generated from
  their ``openAPIV3Schema``, every object with listed properties closed (additionalProperties:
  false, as kubeconform's -strict expects), so a misspelt field fails.
- kubeconform -strict validates every manifest; a kind without a schema fails (no download).
- What schemas cannot say, checked here: every Application comes from a repository its AppProject
  allows, is pinned to a commit (40 hex digits) that exists in this repository with its path
  present - except the root app of apps, which follows the desired-state branch - and an image
  named in Helm values is named by digest.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from tasks.context import Context
from tasks.core import atomic, runner
from tasks.core.cache import cache_root
from tasks.core.checks import Check
from tasks.core.console import console
from tasks.core.errors import InputError, ToolError
from tasks.core.evidence import StageRecord
from tasks.toolchain.go import go_env, module_toolchain

GITOPS = "infra/gitops"
CRDS = f"{GITOPS}/crds.toml"
ENGINE_MODULE = "tools/argocd/go.mod"  # the Argo CD `nox -s gitops` runs: the same version as the CRDs
ROOT_APP = "secure-iot-root"  # the app of apps: follows the branch; everything it holds is pinned
COMMIT = re.compile(r"^[0-9a-f]{40}$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def closed(schema: Any) -> Any:
    """A copy of an OpenAPI v3 schema with every object that lists properties closed to others."""
    if isinstance(schema, list):
        return [closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: closed(v) for k, v in schema.items()}
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def crd_schemas(crd: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """``<kind>_<version>.json`` (kubeconform's ResourceKind, lower case) -> JSON schema, per served version."""
    spec = crd["spec"]
    kind = str(spec["names"]["kind"]).lower()
    found = {}
    for version in spec["versions"]:
        schema = closed(version["schema"]["openAPIV3Schema"])
        schema["properties"]["apiVersion"] = {"enum": [f"{spec['group']}/{version['name']}"]}
        schema["properties"]["kind"] = {"enum": [spec["names"]["kind"]]}
        found[f"{kind}_{version['name']}.json"] = schema
    return found


def pinned_crds(ctx: Context, rec: StageRecord) -> list[Path]:
    """The CRD files of infra/gitops/crds.toml, downloaded through the Go module proxy and checked."""
    path = ctx.inside(CRDS)
    rec.add_input(path, "application/toml")
    try:
        pin = tomllib.loads(path.read_text())
        module, version, sumline, files = pin["module"], pin["version"], pin["sum"], dict(pin["files"])
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{CRDS}: expected module, version, sum and [files] ({exc})") from exc
    toolchain = engine_toolchain(ctx, module, version)
    if toolchain:  # the go command switched to it: the recorded `go` version is the host's
        rec.details["crds_go_toolchain"] = toolchain
    done = runner.run(
        rec,
        ctx.tool("go"),
        ["mod", "download", "-json", f"{module}@{version}"],
        env=go_env(toolchain),
        cwd=ctx.root,
        timeout=1800,
        check=False,
    )
    try:
        info = json.loads(done.stdout)
    except ValueError as exc:
        raise ToolError(f"go mod download {module}@{version}: no JSON ({done.tail(2)})") from exc
    if info.get("Error") or done.returncode != 0:
        raise ToolError(f"go mod download {module}@{version}: {info.get('Error') or done.tail(2)}")
    if info.get("Sum") != sumline:
        raise InputError(f"{module}@{version}: go.sum hash {info.get('Sum')}, {CRDS} pins {sumline}")
    paths = []
    for name, digest in sorted(files.items()):
        crd = Path(info["Dir"]) / name
        actual = atomic.sha256_file(crd) if crd.is_file() else "missing"
        if actual != digest:
            raise InputError(f"{module}@{version}/{name}: sha256 {actual}, {CRDS} pins {digest}")
        rec.add_input(crd, "application/yaml")
        paths.append(crd)
    return paths


def engine_toolchain(ctx: Context, module: str, version: str) -> str:
    """The Go toolchain of the wrapper that builds the running Argo CD (tools/argocd), which must
    require the very module version the CRDs are pinned at; "" in a project without that wrapper."""
    go_mod = ctx.inside(ENGINE_MODULE)
    if not go_mod.is_file():
        return ""
    required = re.search(rf"^\s*{re.escape(module)}\s+(\S+)", go_mod.read_text(encoding="utf-8"), re.MULTILINE)
    if required is None or required.group(1) != version:
        found = required.group(1) if required else "nothing"
        raise InputError(f"{CRDS} pins {module}@{version}, {ENGINE_MODULE} builds {found}: pin one Argo CD in both")
    return module_toolchain(go_mod)


def schema_dir(crds: Iterable[Path]) -> Path:
    """The generated schemas, cached under the sha256 of the CRDs (and of this generator's rules)."""
    texts = [p.read_bytes() for p in crds]
    key = hashlib.sha256(b"closed-v1\0" + b"\0".join(texts)).hexdigest()[:24]
    directory = cache_root() / "gitops-schemas" / key
    if not (directory / "done").is_file():
        for text in texts:
            for name, schema in crd_schemas(yaml.safe_load(text)).items():
                atomic.write_json(directory / name, schema)
        atomic.write_text(directory / "done", "\n")
    return directory


def load(directory: Path) -> list[dict[str, Any]]:
    docs = []
    for path in sorted(directory.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def source_problems(docs: list[dict[str, Any]], exists: Any) -> list[str]:
    """What schemas cannot say. ``exists(commit, path)`` answers from this repository's history."""
    projects = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "AppProject"}
    problems = []
    for app in (d for d in docs if d.get("kind") == "Application"):
        name, spec = app["metadata"]["name"], app.get("spec", {})
        project = projects.get(spec.get("project", ""))
        if project is None:
            problems.append(f"{name}: project {spec.get('project')!r} is not defined in {GITOPS}")
            continue
        allowed = project["spec"].get("sourceRepos", [])
        for source in [spec["source"]] if "source" in spec else spec.get("sources", []):
            repo, rev, path = source.get("repoURL"), str(source.get("targetRevision", "")), source.get("path", "")
            if repo not in allowed:
                problems.append(f"{name}: repoURL {repo} is not in project {project['metadata']['name']}'s sourceRepos")
            if name == ROOT_APP:
                continue
            if not COMMIT.match(rev):
                problems.append(f"{name}: targetRevision {rev!r} is not a commit (40 hex digits): not by digest")
            elif not exists(rev, path):
                problems.append(f"{name}: {path} does not exist at commit {rev[:12]} of this repository")
            image = source.get("helm", {}).get("valuesObject", {}).get("image")
            if image is not None and not DIGEST.match(str(image.get("digest", ""))):
                problems.append(f"{name}: image.digest {image.get('digest')!r} is not sha256:<64 hex>")
    return problems


def kubeconform_check(ctx: Context, rec: StageRecord, files: list[Path]) -> Check:
    """kubeconform -strict over ``files`` with the schemas of the pinned CRDs; a kind without one fails."""
    schemas = schema_dir(pinned_crds(ctx, rec))
    location = f"{schemas}/{{{{.ResourceKind}}}}_{{{{.ResourceAPIVersion}}}}.json"
    done = runner.run(
        rec,
        ctx.tool("kubeconform"),
        ["-strict", "-summary", "-output", "json", "-schema-location", location, *files],
        check=False,
    )
    try:
        report = json.loads(done.stdout)
    except ValueError as exc:
        raise ToolError(f"kubeconform printed no JSON report: {done.tail(2)}") from exc
    bad = [r for r in report.get("resources", []) if r.get("status") != "statusValid"]
    valid = report.get("summary", {}).get("valid", 0)
    rec.details.setdefault("gitops", {}).update({"valid": valid, "invalid": bad})
    shown = "; ".join(f"{r.get('kind')}/{r.get('name')}: {r.get('msg')}" for r in bad)
    passed = done.returncode == 0 and not bad
    return Check(
        "GitOps manifests match the pinned Argo CD CRDs (kubeconform -strict)",
        passed,
        shown or f"{valid} resources valid in {len(files)} files",
        "every resource valid, none without a schema",
    )


def gitops_checks(ctx: Context, rec: StageRecord) -> list[Check]:
    directory = ctx.inside(GITOPS)
    if not directory.is_dir():  # a project without GitOps manifests: recorded, like an absent signed build
        rec.details["gitops"] = {"run": False, "reason": f"no {GITOPS}/ in this project"}
        console.print(f"  GitOps checks not run: no {GITOPS}/ in this project")
        return []
    files = sorted(directory.glob("*.yaml"))
    for path in files:
        rec.add_input(path, "application/yaml")
    git = ctx.tool("git")

    def exists(commit: str, path: str) -> bool:
        found = runner.run(rec, git, ["ls-tree", "-d", "--name-only", commit, "--", path], cwd=ctx.root, check=False)
        return found.returncode == 0 and found.stdout.strip() == path.rstrip("/")

    problems = source_problems(load(directory), exists)
    if problems and _shallow(rec, git, ctx.root):  # the commits may simply not have been fetched
        problems.append("this is a shallow clone: fetch the history (git fetch --unshallow) and run again")
    rec.details.setdefault("gitops", {})["source_problems"] = problems
    return [
        kubeconform_check(ctx, rec, files),
        Check(
            "GitOps sources pinned to commits of this repository, images by digest",
            not problems,
            "; ".join(problems) or "every application pinned",
            "allowed repository, existing commit and path",
        ),
    ]


def _shallow(rec: StageRecord, git: runner.Tool, root: Path) -> bool:
    done = runner.run(rec, git, ["rev-parse", "--is-shallow-repository"], cwd=root, check=False)
    return done.returncode == 0 and done.stdout.strip() == "true"
