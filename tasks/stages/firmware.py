"""nox -s firmware"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from tasks import firmware, signing
from tasks.context import Context, source_date_epoch
from tasks.core import atomic
from tasks.core.console import console
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.media_types import (
    BOOTLOADER_MEDIA_TYPE,
    CONTROL_DTB_MEDIA_TYPE,
    FIT_MEDIA_TYPE,
    INITRAMFS_MEDIA_TYPE,
    ITS_MEDIA_TYPE,
    REFERENCE_VALUES_MEDIA_TYPE,
    REFERENCE_VALUES_PREDICATE_TYPE,
    SIGSTORE_BUNDLE_MEDIA_TYPE,
)
from tasks.device import key_policy

OUTPUTS = {
    firmware.FIT_NAME: FIT_MEDIA_TYPE,
    firmware.U_BOOT_NAME: BOOTLOADER_MEDIA_TYPE,
    firmware.CONTROL_DTB_NAME: CONTROL_DTB_MEDIA_TYPE,
    firmware.INITRAMFS_NAME: INITRAMFS_MEDIA_TYPE,
    firmware.ITS_NAME: ITS_MEDIA_TYPE,
    firmware.REFERENCE_NAME: REFERENCE_VALUES_MEDIA_TYPE,
}


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s firmware", description="build and sign the device firmware")
    parser.add_argument(
        "--rebuild-u-boot", action="store_true", help="build U-Boot from scratch and require the cached sha256"
    )
    args = parser.parse_args(argv)
    built = firmware.build_firmware(
        ctx, rec, ctx.stage_dir("firmware"), epoch=source_date_epoch(ctx, rec), rebuild_u_boot=args.rebuild_u_boot
    )
    # The device-key approval of this build (PolicyPCR of its PCRs 8/9 + the rollback counter), signed by
    # the policy authority, goes into the reference values: the cosign attestation below covers it too.
    approval = key_policy.approve(ctx, rec, built.reference, key_policy.authority(ctx, rec))
    built.reference["key_approval"] = approval.document()
    atomic.write_json(built.path(firmware.REFERENCE_NAME), built.reference)
    digests = {name: rec.add_output(built.path(name), media).digest for name, media in OUTPUTS.items()}
    # The golden values remote attestation and the boot stage trust: a signed statement about the FIT.
    signer = signing.configured(ctx)
    fit, reference = built.path(firmware.FIT_NAME), built.path(firmware.REFERENCE_NAME)
    bundle = built.path(firmware.REFERENCE_BUNDLE_NAME)
    signing.attest_blob(ctx, rec, signer, fit, REFERENCE_VALUES_PREDICATE_TYPE, reference, bundle)
    rec.add_output(bundle, SIGSTORE_BUNDLE_MEDIA_TYPE)
    rec.details.update(
        {
            "hardware_model": built.release.hardware_model,
            "firmware_version": built.release.version,
            "security_version": built.release.security_version,
            "min_security_version": built.release.min_security_version,
            "source_date_epoch": built.epoch,
            "kernel": {"release": built.kernel.release, "package": built.kernel.package},
            "u_boot": {
                "sha256": built.u_boot.sha256,
                "cache_key": built.u_boot.cache_key,
                "from_cache": built.u_boot.cached,
                "build_seconds": built.u_boot.build_seconds,
            },
            "fit_bytes": built.path(firmware.FIT_NAME).stat().st_size,
            "reference_pcrs": {k: built.reference["pcrs"][k] for k in map(str, firmware.MEASURED_PCRS)},
            "key_approval": {
                "policy": approval.policy.hex(),
                "counter_at_most": approval.counter_at_most,
                "authority": f"{key_policy.AUTHORITY_DIR}/authority.pub",
            },
            "reference_values": {
                "predicate_type": REFERENCE_VALUES_PREDICATE_TYPE,
                "bundle": bundle.name,
                "signer": signer.describe(),
            },
            "seconds": built.seconds,
        }
    )
    console.print(
        f"[green]firmware: pass[/] — {built.release.version} (security version {built.release.security_version}), "
        f"FIT {digests[firmware.FIT_NAME]}, U-Boot {'cached' if built.u_boot.cached else 'built'}, "
        f"reference values signed ({bundle.name})"
    )
    return "pass"
