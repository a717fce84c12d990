"""How a supply-chain subject (`--subject`: the image, or the firmware) names what it leaves.

sbom, scan, provenance, sign and verify run once per subject; the runs sit beside each other
in one evidence file and one directory per stage. The image came first, so its evidence keys
and file names are the plain ones (``scan``, ``grype.json``); every other subject's carry its
name (``scan:firmware``, ``firmware.grype.json``; tasks.pipeline.record_name reads the same
keys off the arguments). What each subject *does* differently is tasks/subjects.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SubjectNames:
    name: str
    primary: bool  # the image: the pipeline's original, unqualified evidence keys and file names
    rootfs: bool  # it has a root filesystem OpenSCAP evaluates (the compliance attestation)

    def record(self, stage: str) -> str:
        """The evidence key of ``stage`` run about this subject."""
        return stage if self.primary else f"{stage}:{self.name}"

    def file(self, name: str) -> str:
        """The name of this subject's ``name`` in a directory the subjects share."""
        return name if self.primary else f"{self.name}.{name}"


IMAGE_NAMES = SubjectNames("image", primary=True, rootfs=True)
FIRMWARE_NAMES = SubjectNames("firmware", primary=False, rootfs=False)
