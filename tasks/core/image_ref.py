"""An image reference by digest (``[registry/]path@sha256:<hex>``): the only way the pipeline names an image.

A tag can be moved to other content; a digest cannot. So a reference is parsed once, where it
enters (an argument, the evidence), and a tag alone is refused there with one line, instead of
each reader splitting the text on ``@`` and checking for ``sha256:`` in its own way. cosign keeps
an image's signatures and attestations under tags derived from its digest (``sha256-<hex>.sig``
and ``.att``, its tag scheme where a registry has no referrers API); they are spelled here only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tasks.core.errors import InputError

SIGNATURE_SUFFIX = ".sig"
ATTESTATION_SUFFIX = ".att"

# The distribution reference grammar (distribution/reference): an optional registry host[:port],
# lowercase path components, and a tag only beside the digest (the digest decides; the tag stays in
# the repository as written); so no flag-like leading "-", no whitespace or control characters.
_HOST_PART = r"(?:[A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9])"
_PATH_PART = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_REPOSITORY = rf"(?:{_HOST_PART}(?:\.{_HOST_PART})*(?::[0-9]+)?/)?{_PATH_PART}(?:/{_PATH_PART})*(?::{_TAG})?"
_REFERENCE = re.compile(rf"(?P<repository>{_REPOSITORY})@(?P<digest>sha256:[0-9a-f]{{64}})")


@dataclass(frozen=True)
class ImageRef:
    """``repository@digest``; ``str()`` gives the text back as parsed."""

    repository: str  # registry host (when there is one) and path, e.g. 127.0.0.1:5000/secure-iot-app
    digest: str  # sha256:<64 hex digits>

    @classmethod
    def parse(cls, text: str, *, what: str = "") -> ImageRef:
        """``text`` as a reference by digest; a tag (or anything else) is refused, named by ``what``."""
        found = _REFERENCE.fullmatch(text)
        if found is None:
            label = f"{what} " if what else ""
            raise InputError(
                f"{label}{text}: an image must be given by digest (name@sha256:<64 hex digits>), not by a tag"
            )
        return cls(found["repository"], found["digest"])

    @classmethod
    def maybe(cls, text: str) -> ImageRef | None:
        """``text`` as a reference by digest, or None when it is not one (a tag, empty)."""
        found = _REFERENCE.fullmatch(text)
        return cls(found["repository"], found["digest"]) if found else None

    def __str__(self) -> str:
        return f"{self.repository}@{self.digest}"

    @property
    def hex(self) -> str:
        """The digest's hex digits, without ``sha256:`` (what an in-toto subject's digest holds)."""
        return self.digest.removeprefix("sha256:")

    @property
    def registry(self) -> str:
        """The registry host[:port] the repository names, or "" (a Docker Hub short name)."""
        first, sep, _ = self.repository.partition("/")
        return first if sep and ("." in first or ":" in first or first == "localhost") else ""

    @property
    def path(self) -> str:
        """The repository without its registry, as the registry's API names it."""
        return self.repository.removeprefix(f"{self.registry}/") if self.registry else self.repository

    def tagged(self, tag: str) -> str:
        """``repository:tag``: the same repository under ``tag``."""
        return f"{self.repository}:{tag}"

    def cosign_tag(self, suffix: str) -> str:
        """cosign's tag for this digest's signatures (``SIGNATURE_SUFFIX``) or attestations."""
        return f"sha256-{self.hex}{suffix}"

    @property
    def signature_tag(self) -> str:
        return self.cosign_tag(SIGNATURE_SUFFIX)

    @property
    def attestation_tag(self) -> str:
        return self.cosign_tag(ATTESTATION_SUFFIX)
