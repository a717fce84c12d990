"""Blobs as one OCI artifact (talk 02/06): `oras push` with an artifactType and a media type per
layer, so the registry holds the firmware by digest and cosign signs and attests it like an image.

The manifest is reproducible: oras would stamp org.opencontainers.image.created with the wall
clock, so the build's SOURCE_DATE_EPOCH is given instead — the same blobs give the same digest.
The manifest oras pushed is exported and hashed here: that digest is what gets signed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tasks.container import oci_registry
from tasks.context import Context
from tasks.core import runner
from tasks.core.errors import RegistryError
from tasks.core.evidence import StageRecord
from tasks.core.media_types import MANIFEST_MEDIA_TYPE


@dataclass(frozen=True)
class Pushed:
    ref: str  # repository@sha256:...
    digest: str
    manifest: Path


def push(
    ctx: Context,
    rec: StageRecord,
    repository: str,
    tag: str,
    artifact_type: str,
    layers: Sequence[tuple[Path, str]],
    *,
    epoch: int,
    annotations: Mapping[str, str] | None = None,
    manifest: Path,
) -> Pushed:
    """Push ``layers`` (file, media type; all in one directory) as one artifact under ``tag``."""
    folders = {path.parent for path, _ in layers}
    if len(folders) != 1:
        raise RegistryError(f"oras push: layers must share one directory, got {sorted(map(str, folders))}")
    created = dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    notes = {"org.opencontainers.image.created": created, **(annotations or {})}
    manifest.unlink(missing_ok=True)
    runner.run(
        rec,
        ctx.tool("oras"),
        [
            "push",
            *(["--plain-http"] if oci_registry.is_local(repository) else []),
            "--no-tty",
            "--artifact-type",
            artifact_type,
            *[a for k, v in sorted(notes.items()) for a in ("-a", f"{k}={v}")],
            "--export-manifest",
            manifest,
            f"{repository}:{tag}",
            *[f"{path.name}:{media}" for path, media in layers],
        ],
        cwd=folders.pop(),
        timeout=600,
    )
    body = manifest.read_bytes()
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise RegistryError(f"{manifest}: oras exported no JSON manifest ({exc})") from exc
    if parsed.get("mediaType") != MANIFEST_MEDIA_TYPE or parsed.get("artifactType") != artifact_type:
        raise RegistryError(f"{manifest}: not an OCI manifest of artifactType {artifact_type}")
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    return Pushed(f"{repository}@{digest}", digest, manifest)
