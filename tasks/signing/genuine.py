"""The verified genuine firmware: the firmware stage's outputs as a later stage may use them.

Each output is re-hashed against the digest the firmware stage recorded (a file changed since is
refused), and the reference values are the predicate of the signed statement about the FIT, read
only once cosign verified it with the pipeline's key or identity: unsigned, another signer or an
edit fails closed (the signature decides, not the evidence digest). The boot, update and attest
stages boot it; the sign stage publishes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks import firmware
from tasks.context import Context
from tasks.core.errors import SigningError
from tasks.core.evidence import StageRecord
from tasks.core.media_types import (
    BOOTLOADER_MEDIA_TYPE,
    CONTROL_DTB_MEDIA_TYPE,
    FIT_MEDIA_TYPE,
    REFERENCE_VALUES_PREDICATE_TYPE,
    SIGSTORE_BUNDLE_MEDIA_TYPE,
)
from tasks.device.key_policy import AUTHORITY_DIR
from tasks.signing.blob_attestation import verified_predicate
from tasks.signing.signer import Signer, configured

BOOTABLE = (FIT_MEDIA_TYPE, BOOTLOADER_MEDIA_TYPE, CONTROL_DTB_MEDIA_TYPE)


@dataclass(frozen=True)
class VerifiedFirmware:
    paths: dict[str, Path]  # media type -> the firmware stage's file, unchanged since
    bundle: Path  # the reference values' signed bundle (its signature verified)
    bundle_name: str  # ... as the firmware stage's evidence names it
    reference: dict[str, Any]  # the reference values it signs


def verified_firmware(ctx: Context, rec: StageRecord, signer: Signer, media_types: Sequence[str]) -> VerifiedFirmware:
    """The firmware stage's outputs of ``media_types`` (the FIT among them), re-hashed and recorded as
    inputs, and the reference values whose signed bundle ``signer`` verified."""
    paths = {}
    for media in media_types:
        art = ctx.evidence.output("firmware", media)
        paths[media] = ctx.unchanged(art.name, art.digest)
        rec.add_input(paths[media], media)
    signed = ctx.evidence.output("firmware", SIGSTORE_BUNDLE_MEDIA_TYPE).name
    bundle = ctx.artifact(signed)
    reference = verified_predicate(
        ctx,
        rec,
        signer,
        paths[FIT_MEDIA_TYPE],
        REFERENCE_VALUES_PREDICATE_TYPE,
        bundle,
        remedy="rerun `nox -s firmware`",
    )
    return VerifiedFirmware(paths, bundle, signed, reference)


def genuine_firmware(ctx: Context, rec: StageRecord) -> firmware.Genuine:
    """What boots: the FIT, boot loader and control DTB, with the verified reference values (recorded
    in the evidence: the bundle, its predicate type, who it was verified against)."""
    verified = verified_firmware(ctx, rec, configured(ctx), BOOTABLE)
    rec.add_input(verified.bundle, SIGSTORE_BUNDLE_MEDIA_TYPE)
    rec.details["reference_values"] = {
        "bundle": verified.bundle_name,
        "predicate_type": REFERENCE_VALUES_PREDICATE_TYPE,
        "verified_by": configured(ctx).describe(),
    }
    paths = verified.paths
    return firmware.Genuine(
        paths[FIT_MEDIA_TYPE], paths[BOOTLOADER_MEDIA_TYPE], paths[CONTROL_DTB_MEDIA_TYPE], verified.reference
    )


@dataclass(frozen=True)
class FleetTrust:
    """What a stage that runs the fleet server gives it: the genuine firmware and its signed reference
    values (the bundle), the pipeline's cosign public key, and the policy authority's public key."""

    genuine: firmware.Genuine
    bundle: Path
    pipeline_key: Path
    authority: Path


def fleet_trust(ctx: Context, rec: StageRecord) -> FleetTrust:
    """Fails closed, one line each: no signed firmware, not local key mode, no policy authority."""
    genuine = genuine_firmware(ctx, rec)
    signer = configured(ctx)
    if signer.mode != "key" or not signer.public_key.is_file():
        raise SigningError(
            f"{signer.public_key}: the fleet server verifies reference values with the pipeline's "
            "cosign public key; run `nox -s keys firmware` (local key mode)"
        )
    authority = ctx.root / AUTHORITY_DIR / "authority.pub"
    if not authority.is_file():
        raise SigningError(f"{authority}: no policy authority public key; run `nox -s firmware` (it makes the key)")
    bundle = ctx.artifact(ctx.evidence.output("firmware", SIGSTORE_BUNDLE_MEDIA_TYPE).name)
    return FleetTrust(genuine, bundle, signer.public_key, authority)
