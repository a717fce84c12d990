"""The SBOM an image is *attested* with, verified and bound to its digest: what a re-scan judges.

Not a fresh syft run: the signed record of what shipped is what is judged. Each attested SBOM type
is tried in order of preference (SPDX, then CycloneDX); the newest statement that names the image's
digest wins (`cosign attest --replace` leaves one of each).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tasks.context import Context
from tasks.core import atomic
from tasks.core.errors import SigningError
from tasks.core.evidence import StageRecord
from tasks.core.image_ref import ImageRef
from tasks.core.media_types import CYCLONEDX_MEDIA_TYPE, SPDX_MEDIA_TYPE
from tasks.signing.signer import Signer
from tasks.signing.verify import statements, verify_statements

# The attested SBOM types, in order of preference: cosign --type -> media type of the file.
SBOM_TYPES = {"spdxjson": SPDX_MEDIA_TYPE, "cyclonedx": CYCLONEDX_MEDIA_TYPE}


def attested_sbom(ctx: Context, rec: StageRecord, signer: Signer, ref: str, workdir: Path) -> tuple[Path, str]:
    """The image's signed SBOM (its newest statement naming the digest), written for grype."""
    digest = ImageRef.parse(ref).hex
    tried = []
    for kind, media_type in SBOM_TYPES.items():
        done = verify_statements(ctx, rec, ref, kind, signer)
        found = [s for s in statements(done.stdout) if bound_to(s, digest)] if done.returncode == 0 else []
        if not found:
            tried.append(f"{kind}: {done.tail(1) if done.returncode else 'no statement names the digest'}")
            continue
        path = workdir / f"sbom.{kind}.json"
        atomic.write_json(path, found[-1]["predicate"])
        rec.add_output(path, media_type)
        return path, kind
    raise SigningError(f"{ref}: no signed SBOM attestation verifies ({'; '.join(tried)}); was it signed here?")


def bound_to(statement: dict[str, Any], digest: str) -> bool:
    return any(s.get("digest", {}).get("sha256") == digest for s in statement.get("subject", []))
