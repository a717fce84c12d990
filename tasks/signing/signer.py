"""Who signs and how: key mode (local, offline) or keyless mode (CI: GitHub OIDC, Fulcio, Rekor).

SECURE_IOT_SIGNING=key|keyless chooses; the rest of sign/verify does not fork on it beyond
the cosign flags built here. Key mode never contacts a transparency log and only talks
to the registry the image is in.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tasks.container import oci_registry
from tasks.context import Context
from tasks.core.errors import PolicyError, SigningError
from tasks.core.repository import source_repository
from tasks.policy.security_policy import Policy

Mode = Literal["key", "keyless"]
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"


@dataclass(frozen=True)
class Signer:
    mode: Mode
    key_dir: Path
    identity_regexp: str = ""
    issuer: str = GITHUB_ISSUER

    @property
    def private_key(self) -> Path:
        return self.key_dir / "cosign.key"

    @property
    def public_key(self) -> Path:
        return self.key_dir / "cosign.pub"

    def sign_flags(self) -> list[str]:
        """Flags for cosign sign / attest / sign-blob."""
        if self.mode == "keyless":
            return ["--yes"]
        if not self.private_key.is_file():
            raise SigningError(f"{self.private_key}: no signing key; run `nox -s keys` (COSIGN_PASSWORD may be empty)")
        return ["--yes", "--key", str(self.private_key), "--tlog-upload=false"]

    def env(self) -> dict[str, str]:
        """cosign reads the key's password from COSIGN_PASSWORD; never let it prompt."""
        return {"COSIGN_PASSWORD": os.environ.get("COSIGN_PASSWORD", "")} if self.mode == "key" else {}

    def verify_flags(self) -> list[str]:
        """Flags for cosign verify / verify-attestation / verify-blob."""
        if self.mode == "keyless":
            return ["--certificate-identity-regexp", self.identity_regexp, "--certificate-oidc-issuer", self.issuer]
        if not self.public_key.is_file():
            raise SigningError(f"{self.public_key}: no public key to verify with; run `nox -s keys` first")
        return ["--key", str(self.public_key), "--insecure-ignore-tlog=true"]

    def describe(self) -> dict[str, str]:
        if self.mode == "keyless":
            return {"mode": "keyless", "issuer": self.issuer, "identity_regexp": self.identity_regexp}
        return {"mode": "key", "public_key": str(self.public_key)}


REPOSITORY_PLACEHOLDER = "{repository}"


def keyless_identity(policy: Policy) -> str:
    """gates.verify.keyless_identity with {repository} filled in from GITHUB_REPOSITORY.

    The regular expression pins the signing workflow to this repository; "" when unset.
    """
    identity = str(policy.gate("verify").settings.get("keyless_identity", ""))
    if REPOSITORY_PLACEHOLDER not in identity:
        return identity
    repository = source_repository()
    if not repository:
        raise PolicyError(
            f"{policy.path}: gates.verify.keyless_identity names {REPOSITORY_PLACEHOLDER}: set GITHUB_REPOSITORY "
            "(or SECURE_IOT_SOURCE_REPOSITORY) to owner/name"
        )
    return identity.replace(REPOSITORY_PLACEHOLDER, re.escape(repository))


def configured(ctx: Context) -> Signer:
    mode = os.environ.get("SECURE_IOT_SIGNING", "key")
    key_dir = Path(os.environ.get("SECURE_IOT_KEY_DIR", ctx.root / ".keys"))
    if mode == "key":
        return Signer("key", key_dir)
    if mode == "keyless":
        settings = ctx.policy.gate("verify").settings
        identity = keyless_identity(ctx.policy)
        if not identity:
            raise PolicyError(f"{ctx.policy_path}: gates.verify.keyless_identity is required for keyless mode")
        return Signer("keyless", key_dir, identity, str(settings.get("keyless_issuer", GITHUB_ISSUER)))
    raise SigningError(f"SECURE_IOT_SIGNING={mode!r}: expected 'key' (local keys) or 'keyless' (CI OIDC)")


def registry_flags(ref: str) -> list[str]:
    """Plain HTTP is allowed for the loopback registry only."""
    return ["--allow-insecure-registry", "--allow-http-registry"] if oci_registry.is_local(ref) else []
