"""What one stage recorded for another, read typed: the evidence's hand-overs.

Stages meet only through out/evidence.json (evidence.py). A stage writes its record's
``details`` freely; what a *later* stage reads back from it is typed here, once: the built
image and its tag, the firmware's version and security version, what was signed, the release,
the vulnerability DB a scan used. Each type's ``read`` takes the last passing record and checks
every field it returns, the way python-tuf's ``Metadata[T]`` types the metadata it reads: a
missing record, a missing key, a value of the wrong type or an image not by digest fails closed
with one line that names the record and the command that writes it again. The record names are
evidence keys (``stage`` or ``stage:subject``, tasks.pipeline.record_name), not imports: core still
knows no stage's code.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Self, TypeVar

from tasks.core.errors import EvidenceError, InputError
from tasks.core.evidence import EvidenceStore, command_for, output_of
from tasks.core.image_ref import ImageRef
from tasks.core.media_types import MANIFEST_MEDIA_TYPE

T = TypeVar("T")


class MalformedRecord(EvidenceError):
    """A passing record that does not hold what its reader needs: never a reason to fall back to a default."""


class Record:
    """One passing stage record, read by type: each accessor fails closed on what it cannot vouch for."""

    def __init__(self, evidence: EvidenceStore, name: str) -> None:
        self.evidence, self.name = evidence, name
        self.data: Mapping[str, Any] = evidence.stage(name)  # refuses a missing or failed record
        details = self.data.get("details")
        self.details: Mapping[str, Any] = details if isinstance(details, Mapping) else {}

    def malformed(self, what: str) -> MalformedRecord:
        return MalformedRecord(f"the {self.name} record {what}: rerun `{command_for(self.name)}`")

    def _typed(self, where: Mapping[str, Any], key: str, kind: type[T], path: str) -> T:
        value = where.get(key)
        # bool is an int to Python; a recorded true is no version number
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            shown = "nothing" if value is None else f"{type(value).__name__} {value!r}"
            raise self.malformed(f"has {shown} as {path}, not of type {kind.__name__}")
        return value

    def text(self, key: str, *, within: str = "", empty: bool = True) -> str:
        """``details[key]`` (or ``details[within][key]``), a string; ``empty=False``: a non-empty one."""
        value = self._typed(self.section(within), key, str, _path(within, key))
        if not value and not empty:
            raise self.malformed(f"has an empty {_path(within, key)}")
        return value

    def integer(self, key: str, *, within: str = "") -> int:
        """``details[key]`` (or ``details[within][key]``), an integer."""
        return self._typed(self.section(within), key, int, _path(within, key))

    def section(self, key: str) -> Mapping[str, Any]:
        """``details[key]``, a mapping (``""``: the details themselves)."""
        if not key:
            return self.details
        value = self.details.get(key)
        if not isinstance(value, Mapping):
            raise self.malformed(f"has no mapping as details.{key}")
        return value

    def instant(self, key: str) -> str:
        """A time the record itself carries (``started``, ``finished``)."""
        value = self._typed(self.data, key, str, key)
        if not value:
            raise self.malformed(f"has an empty {key}")
        return value

    def image(self, value: str, where: str) -> ImageRef:
        """``value`` (found at ``where`` in this record) as an image by digest."""
        try:
            return ImageRef.parse(value)
        except InputError as exc:
            raise self.malformed(f"names {value!r} as {where}, not an image by digest") from exc

    def pushed(self) -> ImageRef:
        """The record's OCI manifest output, by digest: what the stage pushed (from the same read of
        the record as its details, so a tag and an image never come from two different runs)."""
        art = output_of(self.data, self.name, MANIFEST_MEDIA_TYPE, self.evidence.path)
        image = self.image(art.name, "its manifest output")
        if image.digest != art.digest:
            raise self.malformed(f"names {art.name} but records its digest as {art.digest}")
        return image


class Recorded(abc.ABC):
    """A typed hand-over: ``read`` takes the last passing ``RECORD`` and ``of`` checks what it holds."""

    RECORD: ClassVar[str]

    def __init_subclass__(cls, *, record: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.RECORD = record

    @classmethod
    def read(cls, evidence: EvidenceStore, record: str = "") -> Self:
        """From record ``record`` (default ``RECORD``; a subject's run is ``<stage>:<subject>``)."""
        return cls.of(Record(evidence, record or cls.RECORD))

    @classmethod
    @abc.abstractmethod
    def of(cls, rec: Record) -> Self:
        """The hand-over in ``rec``, each field checked (``Record``'s accessors fail closed)."""


def _path(within: str, key: str) -> str:
    return f"details.{within}.{key}" if within else f"details.{key}"


@dataclass(frozen=True)
class BuiltImage(Recorded, record="build"):
    """`nox -s build`: the image it pushed, by digest (its manifest output: all most readers need)."""

    image: ImageRef

    @classmethod
    def of(cls, rec: Record) -> Self:
        return cls(rec.pushed())


@dataclass(frozen=True)
class ImageBuild(Recorded, record="build"):
    """`nox -s build`, all of it: the image, the tag it pushed it under, what and where it was built from
    (for the provenance, and for verify's check that the tag still names the digest)."""

    image: ImageRef
    tag: str
    base_source: str  # mmdebstrap (built here) or upstream (--base)
    revision: str
    source_url: str
    source_date_epoch: int
    base_image: ImageRef  # the base it was built on, by digest (built here, or --base's)

    @classmethod
    def of(cls, rec: Record) -> Self:
        return cls(
            image=rec.pushed(),
            tag=rec.text("tag", empty=False),  # verify checks the tag still names the digest
            base_source=rec.text("base_source"),
            revision=rec.text("revision"),
            source_url=rec.text("source_url"),
            source_date_epoch=rec.integer("source_date_epoch"),
            base_image=rec.image(rec.text("base_image"), "details.base_image"),
        )


@dataclass(frozen=True)
class BuiltFirmware(Recorded, record="firmware"):
    """`nox -s firmware`: the release it built (firmware/release.toml) and how it was built."""

    firmware_version: str
    security_version: int
    source_date_epoch: int
    u_boot_cache_key: str
    hardware_model: str

    @classmethod
    def of(cls, rec: Record) -> Self:
        return cls(
            hardware_model=rec.text("hardware_model"),
            firmware_version=rec.text("firmware_version"),
            security_version=rec.integer("security_version"),
            source_date_epoch=rec.integer("source_date_epoch"),
            u_boot_cache_key=rec.text("cache_key", within="u_boot"),
        )


@dataclass(frozen=True)
class SignedImage(Recorded, record="sign"):
    """`nox -s sign`: the image it signed and attested, by digest."""

    image: ImageRef

    @classmethod
    def of(cls, rec: Record) -> Self:
        return cls(rec.image(rec.text("image"), "details.image"))


@dataclass(frozen=True)
class SignedFirmware(Recorded, record="sign:firmware"):
    """`nox -s sign -- --subject firmware`: the OCI artifact it pushed and signed, and its tag (the version)."""

    artifact: ImageRef
    tag: str

    @classmethod
    def of(cls, rec: Record) -> Self:
        return cls(rec.pushed(), rec.text("tag", empty=False))


@dataclass(frozen=True)
class PublishedRelease(Recorded, record="release"):
    """`nox -s release`: what the TUF targets metadata says of the published firmware."""

    security_version: int

    @classmethod
    def of(cls, rec: Record) -> Self:
        return cls(rec.integer("security_version", within="custom"))


@dataclass(frozen=True)
class Scanned(Recorded, record="scan"):
    """`nox -s scan` (for one subject): the grype and vulnerability DB it judged with, and when."""

    grype: str  # its version, "" when the record names none
    db_source: str
    db_built: str
    started: str
    finished: str

    @classmethod
    def of(cls, rec: Record) -> Self:
        tools = rec.data.get("tools")
        return cls(
            grype=str(tools.get("grype", "")) if isinstance(tools, Mapping) else "",
            db_source=rec.text("source", within="db"),
            db_built=rec.text("built", within="db"),
            started=rec.instant("started"),
            finished=rec.instant("finished"),
        )
