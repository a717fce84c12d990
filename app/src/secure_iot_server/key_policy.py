"""The device key's policy: PolicyAuthorize by the fleet's policy authority, approvals per signed build.

The key a device registers with is bound to no particular build. Its authPolicy is

    PolicyAuthorize(name of the policy authority's RSA key, empty policyRef)

(the TCG pattern systemd's signed PCR policies use), so the TPM lets it sign only in a session
whose digest the authority approved. Each signed build carries, inside its reference-values
attestation, one approval:

    approved = PolicyPCR(8, 9 = the build's expected values) ; PolicyNV(rollback counter <= its security version)

signed by the authority (RSASSA-SHA256 over the digest). A device booted into that build satisfies
the key's policy with that approval; after a signed update it uses the new build's, with the same
key and the same certificate. Once a newer build is marked good the device raises its TPM counter
(TPM2_NV_Increment) to that build's security version, and from then on every older approval fails
PolicyNV: a rolled-back device cannot use its key, whatever it presents.

The server computes all of it offline: the key's expected authPolicy from the authority's public
key, and each build's approval from its signed event log; a bundle whose approval is not exactly
that, or not signed by the authority, never becomes golden.
"""

from __future__ import annotations

import hmac

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from . import tpm
from .attestation import POLICY_PCRS, replay
from .reference_values import Golden, ReferenceValuesError

ROLLBACK_COUNTER_INDEX = 0x01500020  # the factory defines it (owner NV range); = tasks/device/key_policy.py
AUTHORITY_BITS = 2048


def key_policy(authority: rsa.RSAPublicKey) -> bytes:
    """The authPolicy every genuine device key carries: PolicyAuthorize by the authority."""
    return tpm.policy_authorize_digest(tpm.external_rsa_name(authority))


def approval(build: Golden) -> bytes:
    """The policy digest the authority approves for one signed build: its PCRs 8 and 9, and the counter at
    most its security version."""
    counter = tpm.nv_name(ROLLBACK_COUNTER_INDEX, tpm.NV_COUNTER_ATTRIBUTES, tpm.NV_COUNTER_SIZE)
    pcr = tpm.policy_pcr_digest(POLICY_PCRS, replay(list(build.events)))
    at_most = build.security_version.to_bytes(tpm.NV_COUNTER_SIZE, "big")
    return tpm.policy_nv_digest(pcr, counter, at_most, tpm.TPM_EO_UNSIGNED_LE)


def verify_approval(build: Golden, authority: rsa.RSAPublicKey) -> None:
    """The build's approval is exactly what its signed values imply, and the authority signed it."""
    if not 1 <= build.security_version < 1 << 8 * tpm.NV_COUNTER_SIZE:
        raise ReferenceValuesError(
            f"security_version must be 1 to 2^{8 * tpm.NV_COUNTER_SIZE}-1: the TPM counter starts at 1 "
            f"and has {tpm.NV_COUNTER_SIZE} bytes"
        )
    if not hmac.compare_digest(build.approval, approval(build)):
        raise ReferenceValuesError(
            f"key_approval: {build.approval.hex()} is not PolicyPCR({list(POLICY_PCRS)}) ; "
            f"PolicyNV(counter <= {build.security_version}) of this build"
        )
    try:
        authority.verify(build.approval_signature, build.approval, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise ReferenceValuesError("key_approval: not signed by the fleet's policy authority") from None
