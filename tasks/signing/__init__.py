"""Talk 02 - Identity and signatures: the signer (key or keyless), local keys, attaching
signatures and attestations, cosign verify, and the verified genuine firmware (the firmware
stage's outputs with their signed reference values) that the boot, update, attest and sign stages use.
"""

from __future__ import annotations

from tasks.signing.attach import (
    BUNDLE_SUFFIX,
    OPENVEX_CONTEXT,
    Attestation,
    attestations,
    blobs,
    bound_to_firmware,
    bound_to_image,
    openvex_document,
    recorded,
    sign_blob,
    vuln_predicate,
)
from tasks.signing.blob_attestation import KEYMODE_TRUSTED_ROOT, attest_blob, statement_of, verified_predicate
from tasks.signing.genuine import FleetTrust, VerifiedFirmware, fleet_trust, genuine_firmware, verified_firmware
from tasks.signing.signer import (
    GITHUB_ISSUER,
    REPOSITORY_PLACEHOLDER,
    Mode,
    Signer,
    configured,
    keyless_identity,
    registry_flags,
)
from tasks.signing.verify import diagnose, statements, tag_still_points_at, verify_attestation

__all__ = [
    "BUNDLE_SUFFIX",
    "GITHUB_ISSUER",
    "KEYMODE_TRUSTED_ROOT",
    "OPENVEX_CONTEXT",
    "REPOSITORY_PLACEHOLDER",
    "Attestation",
    "FleetTrust",
    "Mode",
    "Signer",
    "VerifiedFirmware",
    "attest_blob",
    "attestations",
    "blobs",
    "bound_to_firmware",
    "bound_to_image",
    "configured",
    "diagnose",
    "fleet_trust",
    "genuine_firmware",
    "keyless_identity",
    "openvex_document",
    "recorded",
    "registry_flags",
    "sign_blob",
    "statement_of",
    "statements",
    "tag_still_points_at",
    "verified_firmware",
    "verified_predicate",
    "verify_attestation",
    "vuln_predicate",
]
