"""What an SBOM is about, as plain values: the stages' subjects name them without loading the SBOM
libraries (spdx-tools, cyclonedx's JSON-schema validator: seconds of import on every stage that
only needs these types; sbom_complete and sbom_spdx3 do the work)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from tasks.core.image_ref import ImageRef


@dataclass(frozen=True)
class Root:
    """The component an SBOM describes: what the producer knows of it (empty: keep syft's)."""

    version: str = ""
    purl: str = ""
    license: str = ""  # an SPDX licence expression the artifact declares (OCI licenses label)


@dataclass(frozen=True)
class Subject:
    """One SBOM the pipeline makes: its file stem, what syft scans (``registry:ref@digest``,
    ``dir:path``, ``file:blob``), syft's extra arguments and what the producer knows of it."""

    stem: str
    source: str
    extra: tuple[str, ...]
    root: Root


@dataclass(frozen=True)
class RootArtifact:
    """The deployable form of the root component (the image manifest, the FIT), when known."""

    filename: str
    sha512: str
    purpose: str  # software_SoftwarePurpose of the file: container | firmware


def oci_purl(ref: str) -> str:
    """``host/repo@sha256:…`` → the package URL of that image, by digest (purl spec, type oci)."""
    image = ImageRef.parse(ref)
    name = image.repository.rsplit("/", 1)[-1]
    return f"pkg:oci/{name}@{quote(image.digest)}?repository_url={quote(image.repository, safe='/:')}"
