"""The supply-chain subjects: what sbom, scan, provenance, sign and verify run about (`--subject`).

The image (the container the build pushed) and the firmware (what the firmware stage built,
pushed as an OCI artifact by `sign -- --subject firmware`) go through the same stages with the
same gates and policy; a `Subject` holds what differs — where its artifact and digest come
from, what its SBOM describes, its provenance, how it is signed and attested, what verify
checks — and how it names its evidence (tasks/core/subject.py). Each stage chooses one, once,
from its `--subject` argument.
"""

from __future__ import annotations

from typing import Protocol

from tasks import signing
from tasks.analysis.sbom_subject import RootArtifact
from tasks.analysis.sbom_subject import Subject as SbomSubject
from tasks.container.deployables import Deployable
from tasks.context import Context
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.image_ref import ImageRef
from tasks.core.subject import SubjectNames
from tasks.statements.provenance import Provenance
from tasks.subjects.firmware import FirmwareSubject
from tasks.subjects.image import ImageSubject


class Subject(Protocol):
    @property
    def names(self) -> SubjectNames:
        """Its evidence keys and file names."""

    @property
    def verified_as(self) -> str:
        """The key under which verify records what it verified (image, artifact)."""

    def sbom_sources(self, ctx: Context, rec: StageRecord) -> tuple[str, list[SbomSubject]]:
        """What the SBOMs are about (a reference, recorded in the report), and one SBOM subject each."""

    def deployables(self, ctx: Context, rec: StageRecord) -> dict[tuple[str, str, str], Deployable]:
        """The files the build installed, by SHA-512, for the SPDX 3 document's hashes."""

    def root_artifact(self, ctx: Context, rec: StageRecord, stem: str, ref: str) -> RootArtifact | None:
        """The deployable form of the SBOM ``stem`` describes (None: it has none)."""

    def provenance(self, ctx: Context, rec: StageRecord) -> tuple[Provenance, dict[str, object], str]:
        """Its build's provenance, what to record about it, and the one-line summary."""

    def sign(self, ctx: Context, rec: StageRecord, signer: signing.Signer) -> Verdict:
        """Sign it by digest, attach its attestations, bundle its blobs."""

    def signed(self, ctx: Context, override: str | None) -> tuple[ImageRef, str, list[str]]:
        """What verify checks: reference by digest, tag ('' for none), statements beyond the policy's."""


IMAGE: Subject = ImageSubject()
FIRMWARE: Subject = FirmwareSubject()
SUBJECTS: dict[str, Subject] = {subject.names.name: subject for subject in (IMAGE, FIRMWARE)}

__all__ = ["FIRMWARE", "IMAGE", "SUBJECTS", "Subject"]
