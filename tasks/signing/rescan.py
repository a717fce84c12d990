"""Talk 04 — continuous evaluation: re-scan what was signed, attest what is true today.

An image signed last month carries the vuln scan of last month. `nox -s rescan` takes the
SBOM the image is *attested* with (cosign verify-attestation with the project's key or
identity — not a fresh syft run: the signed record of what shipped is what is judged),
scans it with the current vulnerability database and the current vex/, and attests the new
result and the VEX it applied. Both types are time-dependent (gates.verify.evaluation):
`cosign attest --replace` leaves one statement of each, and verify and admission judge the
newest, so a newly published blocking vulnerability bites and a newer VEX answer clears it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tasks.context import Context
from tasks.core import atomic
from tasks.core.errors import SigningError
from tasks.core.evidence import StageRecord
from tasks.core.media_types import CYCLONEDX_MEDIA_TYPE, SPDX_MEDIA_TYPE
from tasks.signing.signer import Signer
from tasks.signing.verify import statements, verify_statements

# The attested SBOM types, in order of preference: cosign --type -> media type of the file.
SBOM_TYPES = {"spdxjson": SPDX_MEDIA_TYPE, "cyclonedx": CYCLONEDX_MEDIA_TYPE}


def attested_sbom(ctx: Context, rec: StageRecord, signer: Signer, ref: str, workdir: Path) -> tuple[Path, str]:
    """The image's signed SBOM (its newest statement naming the digest), written for grype."""
    digest = ref.split("@sha256:", 1)[1]
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
