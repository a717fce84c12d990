"""RAUC update bundles: made by the release, verified and extracted by the device.

A bundle is verity format (dm-verity hash tree over the squashfs payload, covered by the CMS
signature), compatible ``secure-iot/<model>``, one image ``firmware`` (the signed FIT) for the
A/B firmware slot class. The device's RAUC configuration names its keyring (the update CA only)
and ``check-purpose=codesign`` (the signer carries the codeSigning EKU).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.core import atomic, runner
from tasks.core.errors import VerificationError
from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool
from tasks.ota.keys import RaucPki

SLOT_CLASS = "firmware"
IMAGE_NAME = "image.fit"


def compatible(model: str) -> str:
    return f"secure-iot/{model}"


def manifest(model: str, version: str, security_version: int, fit_digest: str) -> str:
    return (
        "[update]\n"
        f"compatible={compatible(model)}\n"
        f"version={version}\n"
        f"build={fit_digest}\n"
        f"description=secure-iot firmware {version} (security version {security_version})\n\n"
        "[bundle]\nformat=verity\n\n"
        f"[image.{SLOT_CLASS}]\nfilename={IMAGE_NAME}\n"
    )


def _env(mksquashfs: Tool) -> dict[str, str]:
    """rauc runs mksquashfs/unsquashfs from PATH: put the pinned one first."""
    return {"PATH": f"{mksquashfs.path.parent}{os.pathsep}{os.environ.get('PATH', '')}"}


def build(
    rauc: Tool,
    mksquashfs: Tool,
    rec: StageRecord,
    pki: RaucPki,
    fit: Path,
    out: Path,
    *,
    model: str,
    version: str,
    security_version: int,
    fit_digest: str,
) -> Path:
    """``out``: a signed verity bundle carrying ``fit``, written atomically."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".bundle-") as tmp:
        content = Path(tmp) / "content"
        content.mkdir()
        shutil.copyfile(fit, content / IMAGE_NAME)
        atomic.write_text(content / "manifest.raucm", manifest(model, version, security_version, fit_digest))
        made = Path(tmp) / out.name
        runner.run(
            rec,
            rauc,
            ["bundle", f"--cert={pki.signer_cert}", f"--key={pki.signer_key}", content, made],
            env=_env(mksquashfs),
        )
        os.replace(made, out)
    return out


def system_conf(model: str, keyring: Path, slots: Path) -> str:
    """The device's RAUC system.conf (noop bootloader: the A/B switch is the client's, README says why)."""
    return (
        f"[system]\ncompatible={compatible(model)}\nbootloader=noop\n\n"
        f"[keyring]\npath={keyring}\ncheck-purpose=codesign\n\n"
        f"[slot.{SLOT_CLASS}.0]\ndevice={slots}/A/{IMAGE_NAME}\ntype=raw\nbootname=A\n\n"
        f"[slot.{SLOT_CLASS}.1]\ndevice={slots}/B/{IMAGE_NAME}\ntype=raw\nbootname=B\n"
    )


@dataclass(frozen=True)
class Verified:
    compatible: str
    version: str
    build: str
    image: Path  # the extracted, verity-checked firmware image


def verify_and_extract(
    rauc: Tool, mksquashfs: Tool, rec: StageRecord, conf: Path, bundle: Path, into: Path
) -> Verified:
    """``rauc info`` (signature against the device keyring), then ``rauc extract`` (the verity payload)."""
    info = runner.run(
        rec, rauc, [f"--conf={conf}", "info", "--output-format=json", bundle], check=False, env=_env(mksquashfs)
    )
    if info.returncode != 0:
        raise VerificationError(f"rauc refused the bundle: {info.tail(2)}")
    try:
        meta: dict[str, Any] = json.loads(info.stdout.strip().splitlines()[-1])
        images = [next(iter(i)) for i in meta["images"]]
    except (ValueError, IndexError, KeyError, TypeError, StopIteration) as exc:
        raise VerificationError(f"rauc info printed no bundle description ({exc})") from exc
    if images != [SLOT_CLASS]:
        raise VerificationError(f"bundle carries images {images}, expected exactly [{SLOT_CLASS!r}]")
    shutil.rmtree(into, ignore_errors=True)
    into.parent.mkdir(parents=True, exist_ok=True)
    done = runner.run(rec, rauc, [f"--conf={conf}", "extract", bundle, into], check=False, env=_env(mksquashfs))
    if done.returncode != 0:
        shutil.rmtree(into, ignore_errors=True)
        raise VerificationError(f"rauc extract refused the bundle: {done.tail(2)}")
    return Verified(str(meta["compatible"]), str(meta["version"]), str(meta.get("build") or ""), into / IMAGE_NAME)


def check(
    rauc: Tool, mksquashfs: Tool, rec: StageRecord, bundle: Path, *, model: str, keyring: Path, work: Path
) -> Verified:
    """What a device of ``model`` would check (signature, verity payload, compatible), done before publishing."""
    conf = work / "system.conf"
    atomic.write_text(conf, system_conf(model, keyring, work / "slots"))
    checked = verify_and_extract(rauc, mksquashfs, rec, conf, bundle, work / "extract")
    shutil.rmtree(work / "extract", ignore_errors=True)
    if checked.compatible != compatible(model):
        raise VerificationError(f"{bundle.name}: compatible {checked.compatible!r}, expected {compatible(model)!r}")
    return checked
