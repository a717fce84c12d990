"""Talk 02 — SLSA Provenance v1 for each built artifact, as an in-toto Statement v1.

Everything in it comes from the evidence of the build stage (by digest), the lock files
and the resolved tools: what was built, from which commit and base, by which builder,
when. The buildType is documented in docs/slsa/build-type.md. Typed dataclasses plus the
JSON Schemas in schemas/ (in-toto-attestation's Python package would add protobuf for
two small documents; see docs/adr/0004).
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tasks import toolchain
from tasks.container.build import source_url
from tasks.context import Context, git_revision
from tasks.core import atomic, runner
from tasks.core.errors import EvidenceError, InputError
from tasks.core.evidence import StageRecord
from tasks.core.media_types import PREDICATE_TYPE, STATEMENT_TYPE
from tasks.core.recorded import BuiltFirmware, ImageBuild

BUILD_TYPE = "urn:secure-iot:slsa:buildtype:nox-buildah:v1"
FIRMWARE_BUILD_TYPE = "urn:secure-iot:slsa:buildtype:nox-firmware:v1"  # `nox -s firmware` (docs/slsa/build-type.md)
LOCAL_BUILDER = "urn:secure-iot:builder:local-nox"
LOCKS = ("app/requirements.lock", "requirements/lock.txt", "tools.lock")


@dataclass(frozen=True)
class ResourceDescriptor:
    uri: str
    digest: dict[str, str]
    name: str = ""

    def as_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v}


@dataclass(frozen=True)
class Provenance:
    subject_name: str
    subject_digest: str  # hex sha256
    external_parameters: dict[str, Any]
    internal_parameters: dict[str, Any]
    resolved_dependencies: list[ResourceDescriptor]
    builder_id: str
    builder_version: dict[str, str]
    invocation_id: str
    started_on: str
    finished_on: str
    byproducts: list[ResourceDescriptor] = field(default_factory=list)
    more_subjects: list[tuple[str, str]] = field(default_factory=list)  # (name, hex sha256) after the first
    build_type: str = BUILD_TYPE

    def predicate(self) -> dict[str, Any]:
        return {
            "buildDefinition": {
                "buildType": self.build_type,
                "externalParameters": self.external_parameters,
                "internalParameters": self.internal_parameters,
                "resolvedDependencies": [d.as_json() for d in self.resolved_dependencies],
            },
            "runDetails": {
                "builder": {"id": self.builder_id, "version": self.builder_version},
                "metadata": {
                    "invocationId": self.invocation_id,
                    "startedOn": self.started_on,
                    "finishedOn": self.finished_on,
                },
                "byproducts": [d.as_json() for d in self.byproducts],
            },
        }

    def statement(self) -> dict[str, Any]:
        return {
            "_type": STATEMENT_TYPE,
            "subject": [
                {"name": name, "digest": {"sha256": digest}}
                for name, digest in [(self.subject_name, self.subject_digest), *self.more_subjects]
            ],
            "predicateType": PREDICATE_TYPE,
            "predicate": self.predicate(),
        }


def validate(statement: dict[str, Any], root: Path) -> None:
    """Against the in-toto Statement v1 and SLSA Provenance v1 schemas shipped in schemas/."""
    import jsonschema  # deferred: its format checkers take most of a second to import

    for schema_name, doc in (
        ("in-toto-statement-v1.schema.json", statement),
        ("slsa-provenance-v1.schema.json", statement.get("predicate", {})),
    ):
        schema = json.loads((root / "schemas" / schema_name).read_text(encoding="utf-8"))
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc), key=lambda e: list(e.path))
        if errors:
            where = "/".join(map(str, errors[0].absolute_path)) or "(root)"
            raise InputError(f"provenance does not match {schema_name}: {where}: {errors[0].message}")


def builder_id() -> str:
    server, workflow_ref = os.environ.get("GITHUB_SERVER_URL"), os.environ.get("GITHUB_WORKFLOW_REF")
    if server and workflow_ref:
        return f"{server}/{workflow_ref}"
    return LOCAL_BUILDER


def invocation_id() -> str:
    server, repo, run_id = (os.environ.get(k) for k in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID"))
    if server and repo and run_id:
        return f"{server}/{repo}/actions/runs/{run_id}/attempts/{os.environ.get('GITHUB_RUN_ATTEMPT', '1')}"
    return f"urn:uuid:{uuid.uuid4()}"


def run_details(build: dict[str, Any]) -> dict[str, Any]:
    """Who ran the build and when, the same for every subject (runDetails of SLSA v1)."""
    return {
        "builder_id": builder_id(),
        "builder_version": {"secure-iot-pipeline": "0.1.0"},
        "invocation_id": invocation_id(),
        "started_on": build["started"],
        "finished_on": build["finished"],
    }


def git_ref(ctx: Context, rec: StageRecord) -> str:
    if os.environ.get("GITHUB_REF"):
        return os.environ["GITHUB_REF"]
    done = runner.run(rec, ctx.tool("git"), ["symbolic-ref", "-q", "HEAD"], cwd=ctx.root, check=False)
    return done.stdout.strip() or "HEAD"


def tool_dependencies(ctx: Context, tools: dict[str, str]) -> list[ResourceDescriptor]:
    """The tools a stage ran, by version, and by sha256 where tools.lock pins them."""
    pinned = toolchain.load(toolchain.lock_path(ctx.root))
    deps = []
    for name, version in sorted(tools.items()):
        digest_set = {"sha256": ctx.tool(name).sha256} if name in pinned else {}  # host tools: version only
        deps.append(ResourceDescriptor(f"pkg:generic/{name}@{version}", digest_set, name))
    return deps


def from_firmware_evidence(ctx: Context, rec: StageRecord, subjects: list[tuple[str, str]]) -> Provenance:
    """The firmware stage's build: ``subjects`` (name, hex sha256: FIT, u-boot.bin, initramfs) from
    every input it recorded by digest — the pinned .debs and U-Boot source files of tools.lock
    [inputs.*], the config fragment, the .its template, the rootfs recipe — plus tools.lock and the
    toolchain it ran (cross compiler, mkimage, dtc …) by version and sha256."""
    build = ctx.evidence.stage("firmware")
    built = BuiltFirmware.read(ctx.evidence)
    revision = git_revision(ctx, rec)
    deps = [ResourceDescriptor(f"git+{source_url()}@{git_ref(ctx, rec)}", {"gitCommit": revision})]
    for art in build.get("inputs", []):
        if art.get("kind") == "file":
            name = str(art["name"])
            uri = f"file:{name}" if "/" in name else f"urn:secure-iot:input:{name}"  # a pinned download
            deps.append(ResourceDescriptor(uri, {"sha256": str(art["digest"]).removeprefix("sha256:")}, name))
    lock = ctx.inside("tools.lock")
    deps.append(ResourceDescriptor("file:tools.lock", {"sha256": atomic.sha256_file(lock)}, "tools.lock"))
    deps += tool_dependencies(ctx, build.get("tools", {}))
    (first_name, first_digest), *rest = subjects
    return Provenance(
        subject_name=first_name,
        subject_digest=first_digest,
        more_subjects=rest,
        build_type=FIRMWARE_BUILD_TYPE,
        external_parameters={
            "repository": source_url(),
            "ref": git_ref(ctx, rec),
            "commit": revision,
            "session": "firmware",
            "release": "firmware/release.toml",
        },
        internal_parameters={
            "sourceDateEpoch": built.source_date_epoch,
            "firmwareVersion": built.firmware_version,
            "securityVersion": built.security_version,
            "uBootCacheKey": built.u_boot_cache_key,
        },
        resolved_dependencies=deps,
        **run_details(build),
    )


def from_evidence(ctx: Context, rec: StageRecord) -> Provenance:
    build = ctx.evidence.stage("build")
    built = ImageBuild.read(ctx.evidence)
    revision = built.revision
    deps = [ResourceDescriptor(f"git+{built.source_url}@{git_ref(ctx, rec)}", {"gitCommit": revision})]
    deps.append(ResourceDescriptor(built.base_image.repository, {"sha256": built.base_image.hex}, "base-image"))
    for lock in LOCKS:
        path = ctx.inside(lock)
        if not path.is_file():
            raise EvidenceError(f"{lock}: missing; provenance names every lock file the build used")
        deps.append(ResourceDescriptor(f"file:{lock}", {"sha256": atomic.sha256_file(path)}, lock))
    deps += tool_dependencies(ctx, build.get("tools", {}))
    byproducts = [
        ResourceDescriptor(f"file:{art['name']}", {"sha256": art["digest"].removeprefix("sha256:")}, art["media_type"])
        for art in build.get("inputs", [])
        if art.get("kind") == "file"
    ]
    return Provenance(
        subject_name=built.image.repository,
        subject_digest=built.image.hex,
        external_parameters={
            "repository": built.source_url,
            "ref": git_ref(ctx, rec),
            "commit": revision,
            "session": "build",
            "containerfile": "app/Containerfile",
        },
        internal_parameters={
            "sourceDateEpoch": built.source_date_epoch,
            "baseSource": built.base_source,
            "isolation": "oci",
            "network": "none",
        },
        resolved_dependencies=deps,
        **run_details(build),
        byproducts=byproducts,
    )
