"""Talk 02/08 — an in-toto statement about a blob, signed into a Sigstore bundle file, and read back
only after verification.

`cosign attest-blob --new-bundle-format` signs a statement whose subject is the blob by sha256
(the firmware's FIT) and whose predicate is a document of ours (the reference values); the
bundle travels next to the blob. `cosign verify-blob-attestation` checks signature, subject
digest and predicate type offline; only then is the predicate taken out of the bundle's DSSE
envelope — a consumer never reads golden values from an unverified file.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

from tasks.context import Context
from tasks.core import runner
from tasks.core.errors import VerificationError
from tasks.core.evidence import StageRecord
from tasks.core.media_types import STATEMENT_MEDIA_TYPE
from tasks.signing.signer import Signer

# An empty Sigstore trusted root: key-mode bundles carry no certificate or log entry, and
# cosign wants a trusted root file for the new bundle format (README, "Verify by hand").
KEYMODE_TRUSTED_ROOT = "infra/policies/sigstore/trusted-root-keymode.json"


def attest_blob(
    ctx: Context, rec: StageRecord, signer: Signer, subject: Path, predicate_type: str, predicate: Path, bundle: Path
) -> Path:
    """Sign the statement (subject: ``subject`` by sha256) into ``bundle``, replacing an older one."""
    bundle.unlink(missing_ok=True)
    runner.run(
        rec,
        ctx.tool("cosign"),
        [
            "attest-blob",
            *signer.sign_flags(),
            "--new-bundle-format",
            "--bundle",
            bundle,
            "--type",
            predicate_type,
            "--predicate",
            predicate,
            subject,
        ],
        env=signer.env(),
        timeout=300,
    )
    return bundle


def verify_flags(ctx: Context, signer: Signer) -> list[str]:
    """cosign verify-blob(-attestation) flags for a new-format bundle, offline in key mode."""
    flags = [*signer.verify_flags(), "--new-bundle-format"]
    if signer.mode == "key":
        flags += ["--trusted-root", str(ctx.inside(KEYMODE_TRUSTED_ROOT))]
    return flags


def verified_predicate(
    ctx: Context,
    rec: StageRecord,
    signer: Signer,
    subject: Path,
    predicate_type: str,
    bundle: Path,
    *,
    remedy: str = "rerun the stage that signs it",
) -> dict[str, Any]:
    """The predicate of ``bundle`` once cosign verified it for ``subject`` and ``predicate_type``;
    VerificationError (fail closed) otherwise: unsigned, another key, edited, another blob or type."""
    if not bundle.is_file():
        raise VerificationError(f"{bundle}: no signed {predicate_type} statement; {remedy}")
    done = runner.run(
        rec,
        ctx.tool("cosign"),
        ["verify-blob-attestation", *verify_flags(ctx, signer), "--bundle", bundle, "--type", predicate_type, subject],
        check=False,
        timeout=300,
    )
    if done.returncode != 0:
        why = done.tail(1)
        if "signatures do not match threshold" in why or "invalid signature" in why:
            who = signer.describe().get("public_key") or signer.identity_regexp
            why = f"its signature does not verify with {who} (edited after signing, or another signer) — {why}"
        raise VerificationError(f"{bundle.name}: not verified for {subject.name}: {why}")
    statement = statement_of(bundle)
    # cosign checked these; checked again here because the predicate is read from the same bytes
    digest = hashlib.sha256(subject.read_bytes()).hexdigest()
    subjects = {str(s.get("digest", {}).get("sha256", "")) for s in statement.get("subject", [])}
    if statement.get("predicateType") != predicate_type or digest not in subjects:
        raise VerificationError(f"{bundle.name}: statement is not a {predicate_type} about sha256:{digest}")
    predicate = statement.get("predicate")
    if not isinstance(predicate, dict):
        raise VerificationError(f"{bundle.name}: the statement has no predicate object")
    return predicate


def statement_of(bundle: Path) -> dict[str, Any]:
    """The in-toto statement inside a Sigstore bundle's DSSE envelope (not verified here)."""
    try:
        envelope = json.loads(bundle.read_text(encoding="utf-8"))["dsseEnvelope"]
        if envelope.get("payloadType") != STATEMENT_MEDIA_TYPE:
            raise ValueError(f"payloadType {envelope.get('payloadType')!r}")
        statement = json.loads(base64.b64decode(envelope["payload"]))
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise VerificationError(f"{bundle}: not a Sigstore bundle with an in-toto statement ({exc})") from exc
    if not isinstance(statement, dict):
        raise VerificationError(f"{bundle}: the DSSE payload is not a statement object")
    return statement
