"""nox -s release"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from typing import Any

from tasks import ota
from tasks.context import Context
from tasks.core.checks import Check, conclude
from tasks.core.errors import InputError
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.media_types import (
    FIT_MEDIA_TYPE,
    OTA_OFFLINE_MEDIA_TYPE,
    PREDICATE_MEDIA_TYPE,
    RAUC_BUNDLE_MEDIA_TYPE,
    STATEMENT_MEDIA_TYPE,
    TUF_METADATA_MEDIA_TYPE,
)
from tasks.core.recorded import BuiltFirmware

NO_PROVENANCE = "the firmware stage's evidence carries no SLSA provenance for this FIT; none is claimed"


def provenance(firmware: dict[str, Any]) -> dict[str, Any]:
    """The digest of the firmware's SLSA provenance if its evidence has one, else an explicit absence."""
    found = [
        o for o in firmware.get("outputs", []) if o.get("media_type") in (PREDICATE_MEDIA_TYPE, STATEMENT_MEDIA_TYPE)
    ]
    if found:
        return {"slsa_provenance": found[0]["digest"]}
    return {"slsa_provenance": None, "slsa_provenance_note": NO_PROVENANCE}


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(
        prog="nox -s release", description="publish the firmware as a TUF-signed RAUC bundle"
    )
    parser.add_argument("--model", help="hardware model (default: infra/ota/repository.toml's default_model)")
    parser.add_argument("--offline-bundle", action="store_true", help="also write one file for a USB stick")
    args = parser.parse_args(argv)
    config_path = ctx.inside(ota.CONFIG)
    rec.add_input(config_path, "application/toml")
    config = ota.load_config(config_path)
    model = args.model or config.default_model
    firmware = ctx.evidence.stage("firmware")
    fit_art = ctx.evidence.output("firmware", FIT_MEDIA_TYPE)
    fit = ctx.unchanged(fit_art.name, fit_art.digest)
    rec.add_input(fit, FIT_MEDIA_TYPE)
    built = BuiltFirmware.read(ctx.evidence)
    if built.hardware_model != model:
        raise InputError(
            f"the firmware was built for model {built.hardware_model} ({fit_art.name}); refusing to publish it "
            f"for model {model}: build it for that model (firmware/release.toml hardware_model)"
        )
    version, security_version = built.firmware_version, built.security_version
    custom = {
        "firmware_version": version,
        "security_version": security_version,
        "hardware_model": model,
        "fit_digest": fit_art.digest,
        **provenance(firmware),
    }
    out = ctx.stage_dir("release")
    keys = ota.TufKeys(ctx.root / ota.KEY_DIR / "tuf")
    pki = ota.rauc_pki(ctx.tool("openssl"), rec, ctx.root / ota.KEY_DIR / "rauc")
    rauc, mksquashfs = ctx.tool("rauc"), ctx.tool("mksquashfs")
    repo = ota.Repository.open(out / "repository", keys, config)
    current = repo.roles[ota.role_name(model)].signed.targets.get(ota.target_path(model))
    if current is not None and current.custom.get("fit_digest") == fit_art.digest:
        repo.refresh_timestamp()  # same firmware: only a fresh timestamp, no new target version
        target = current
        rec.details["published"] = "unchanged (same FIT), timestamp refreshed"
    else:
        made = ota.bundle.build(
            rauc,
            mksquashfs,
            rec,
            pki,
            fit,
            out / "bundles" / f"{model}-{version}.raucb",
            model=model,
            version=version,
            security_version=security_version,
            fit_digest=fit_art.digest,
        )
        rec.add_output(made, RAUC_BUNDLE_MEDIA_TYPE)
        with ota.taken.taken(made, "nothing was published or signed") as copy:  # verified and signed as taken
            ota.bundle.check(
                rauc, mksquashfs, rec, copy.path, model=model, keyring=pki.ca_cert, work=out / "bundle-check"
            )
            target = repo.publish(model, copy, custom)
        rec.details["published"] = "new target"
    for name in ("timestamp.json", f"{repo.snapshot.signed.version}.snapshot.json"):
        rec.add_output(repo.metadata_dir / name, TUF_METADATA_MEDIA_TYPE)
    rec.details.update(
        {
            "model": model,
            "target": target.path,
            "length": target.length,
            "sha256": target.hashes["sha256"],
            "custom": target.custom,
            "versions": {
                "root": repo.root.signed.version,
                "targets": repo.targets.signed.version,
                "snapshot": repo.snapshot.signed.version,
                "timestamp": repo.timestamp.signed.version,
            },
        }
    )
    # Self-check: a factory-fresh device (root v1, the update CA) takes the release through TUF and RAUC.
    wanted = {"firmware_version", "security_version", "hardware_model", "slsa_provenance"}
    checks = [
        Check(
            "custom metadata",
            wanted <= set(target.custom),
            f"{sorted(target.custom)}",
            "firmware version, security version, model, provenance (or its absence)",
        )
    ]
    sources: list[tuple[str, ota.Source | None]] = [("online", None)]
    if args.offline_bundle:
        bundle_file = out / f"offline-{model}-{version}.tar"
        members = ota.offline.write(repo, model, bundle_file)
        rec.add_output(bundle_file, OTA_OFFLINE_MEDIA_TYPE)
        rec.details["offline_bundle"] = {"file": ctx.rel(bundle_file), "members": members}
        sources.append(("offline", ota.Source.offline(bundle_file)))
    with ota.serve(rec, repo.directory, out / "server.log") as url:
        for how, source in sources:
            device_dir = out / "devices" / how
            shutil.rmtree(device_dir, ignore_errors=True)
            device = ota.Device.provision(
                device_dir,
                model=model,
                trusted_root=repo.trusted_root(1),
                keyring=pki.ca_cert,
                fit=fit,
                version="factory",
                security_version=0,
            )
            try:
                got = ota.update(device, source or ota.Source.http(url), rauc=rauc, mksquashfs=mksquashfs, rec=rec)
                passed = got.result == "installed" and got.version == version
                shown = f"{got.result} {got.version} into slot {got.slot}"
                checks.append(Check(f"{how} update", passed, shown, f"installed {version}"))
            except ota.UpdateRefused as exc:
                checks.append(Check(f"{how} update", False, str(exc), f"installed {version}"))
    return conclude(rec, f"release {version} for {model}", checks, report=out / "report.json", document=rec.details)
