"""What cosign verified, remembered by the content it verified: a re-run's cheap re-check.

In key mode without a transparency log, `cosign verify` and `cosign verify-attestation` are a
function of the cosign binary, its arguments, the public key's bytes, the image digest and the
signature (``sha256-<hex>.sig``) or attestation (``.att``) manifest the registry serves; that
manifest is content-addressed, so its digest pins every layer cosign read. A re-run that finds
the loopback registry serving the same manifest (one GET, hashed here from the bytes), with the
same key file and the same cosign, gets the answer cosign gave then, without a cosign process:
the signatures are still present, by the bytes. Recorded in the evidence under ``reused``.

Only a passing answer is remembered, and only when the manifest did not change while cosign
ran. Anything else runs cosign: keyless signing (certificates, the transparency log), a remote
registry, ``SECURE_IOT_FORCE=1``, another manifest, a missing or unreadable memo.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

from tasks.container import oci_registry
from tasks.core import atomic, memo, runner
from tasks.core.evidence import StageRecord, now
from tasks.core.image_ref import ImageRef
from tasks.core.runner import Tool
from tasks.signing.signer import Signer


def attached_manifest(ref: str, suffix: str) -> str | None:
    """The digest of the manifest under cosign's tag for ``ref``'s signatures or attestations
    (``suffix``: image_ref.SIGNATURE_SUFFIX or ATTESTATION_SUFFIX)."""
    image = ImageRef.maybe(ref)
    return oci_registry.manifest_digest(image.repository, image.cosign_tag(suffix)) if image else None


def _memo_key(cosign: Tool, argv: Sequence[str], manifest: str) -> str:
    stat = cosign.path.stat()
    files = {str(a): atomic.sha256_file(Path(a)) for a in argv if str(a).startswith("/") and Path(a).is_file()}
    document = {
        "cosign": [str(cosign.path), cosign.version, stat.st_size, stat.st_mtime_ns],  # pinned, checked at install
        "argv": [str(a) for a in argv],
        "files": files,
        "manifest": manifest,
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def cosign_verify(
    rec: StageRecord,
    cosign: Tool,
    signer: Signer,
    argv: Sequence[str],
    ref: str,
    suffix: str,
    memo_dir: Path,
    *,
    timeout: int = 600,
) -> runner.Completed:
    """`cosign <argv>` (a verify or verify-attestation of ``ref``), or its remembered answer when
    the registry serves the very manifest that answer was about (see the module docstring)."""
    rememberable = signer.mode == "key" and oci_registry.is_local(ref) and os.environ.get("SECURE_IOT_FORCE") != "1"
    manifest = attached_manifest(ref, suffix) if rememberable else None
    key = _memo_key(cosign, argv, manifest) if manifest else None
    # one memo per command (its last passing answer), so the directory does not grow with each change
    memo_file = memo_dir / f"{hashlib.sha256(chr(0).join(map(str, argv)).encode()).hexdigest()}.json"
    stored = memo.recall(memo_file, key)
    if stored is not None and stored.get("manifest") == manifest and isinstance(stored.get("stdout"), str):
        rec.details.setdefault("reused", []).append(
            {"command": f"cosign {argv[0]}", "manifest": manifest, "verified": stored.get("verified", "")}
        )
        return runner.Completed([str(cosign.path), *map(str, argv)], 0, stored["stdout"], "")
    done = runner.run(rec, cosign, list(argv), check=False, timeout=timeout)
    if key is not None and done.returncode == 0 and attached_manifest(ref, suffix) == manifest:
        record = {"manifest": manifest, "argv": [str(a) for a in argv], "stdout": done.stdout, "verified": now()}
        memo.remember(memo_file, key, record)
    return done
