"""The device update client, host-side: the guest has no Python, so this runs beside the QEMU device.

One update, in order: TUF refresh (python-tuf ngclient: root chain, timestamp, snapshot, targets,
the model's delegated role) -> the model's one target path -> its signed custom metadata (model,
security version >= the device's counter) -> download (length and hash checked before anything
is kept) -> RAUC checks the bundle against the device keyring (signature, codesign purpose,
verity payload, compatible) -> the image goes into the inactive slot, which becomes primary and
"pending". The security-version counter rises only in ``boot_result(healthy=True)``, after the
new slot is marked good; an unhealthy slot falls back to the old one.

The device is a directory: ``tuf/`` (trusted metadata), ``rauc/`` (system.conf, keyring),
``slots/A|B/image.fit`` and ``state.json``. Given a ``BootSlots`` (the QEMU device's slot disk,
tasks/firmware/slots.py), the install also does what RAUC's uboot backend does: the image into
the inactive slot of the disk, then BOOT_ORDER / BOOT_x_LEFT so U-Boot tries it first; and
``boot_result`` takes the slot U-Boot really booted, so a fallback is seen, not assumed.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tuf.api import exceptions as tuf_errors
from tuf.ngclient import FetcherInterface, Updater, UpdaterConfig

from tasks.core import atomic
from tasks.core.errors import VerificationError
from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool
from tasks.ota import bundle, offline
from tasks.ota.mtls import DeviceTls, MtlsFetcher
from tasks.ota.repository import target_path


class UpdateRefused(VerificationError):
    """The update was refused; the device is unchanged (still on its slot, same counter)."""


class BootSlots(Protocol):
    """The boot loader's side of the A/B switch (RAUC's bootloader backend)."""

    def write_slot(self, slot: str, image: Path) -> None: ...
    def set_primary(self, slot: str) -> None: ...
    def mark_good(self, slot: str) -> None: ...
    def mark_bad(self, slot: str) -> None: ...


@dataclass(frozen=True)
class Source:
    """Where the metadata and targets come from: a URL, or an offline bundle through its fetcher."""

    metadata_url: str
    targets_url: str
    fetcher: FetcherInterface | None = None

    @classmethod
    def http(cls, base: str, fetcher: FetcherInterface | None = None) -> Source:
        return cls(f"{base}/metadata/", f"{base}/targets/", fetcher)

    @classmethod
    def https(cls, base: str, tls: DeviceTls) -> Source:
        """The mTLS repository (ota.serve with ServerTls): the device presents its fleet certificate."""
        return cls(f"{base}/metadata/", f"{base}/targets/", MtlsFetcher(tls))

    @classmethod
    def offline(cls, path: Path) -> Source:
        return cls(offline.METADATA_URL, offline.TARGETS_URL, offline.TarFetcher(path))


@dataclass(frozen=True)
class Outcome:
    result: str  # "installed" | "up-to-date"
    slot: str = ""
    version: str = ""
    security_version: int = 0


class Device:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def provision(
        cls,
        directory: Path,
        *,
        model: str,
        trusted_root: bytes,
        keyring: Path,
        fit: Path,
        version: str,
        security_version: int,
        group: str | None = None,
    ) -> Device:
        """A device at the factory: slot A holds ``fit`` (good), root v1 and the update CA are its anchors."""
        dev = cls(directory)
        atomic.write_bytes(directory / "tuf" / "root.json", trusted_root)
        atomic.write_bytes(directory / "rauc" / "keyring.pem", keyring.read_bytes())
        conf = bundle.system_conf(model, directory / "rauc" / "keyring.pem", directory / "slots")
        atomic.write_text(directory / "rauc" / "system.conf", conf)
        atomic.write_bytes(directory / "slots" / "A" / bundle.IMAGE_NAME, fit.read_bytes())
        (directory / "slots" / "B").mkdir(parents=True, exist_ok=True)
        slot = {"version": version, "security_version": security_version, "bundle_sha256": "", "status": "good"}
        dev.save(
            {
                "model": model,
                "group": group,
                "active": "A",
                "primary": "A",
                "security_counter": security_version,
                "slots": {"A": slot, "B": None},
                "pending": None,
            }
        )
        return dev

    @property
    def state(self) -> dict[str, Any]:
        return dict(json.loads((self.directory / "state.json").read_text()))

    def save(self, state: dict[str, Any]) -> None:
        atomic.write_json(self.directory / "state.json", state)

    @property
    def inactive(self) -> str:
        return "B" if self.state["active"] == "A" else "A"

    def boot_result(self, *, healthy: bool, booted: str | None = None, boot: BootSlots | None = None) -> dict[str, Any]:
        """After a boot. Without ``booted`` (no boot loader here) the primary slot is taken to have
        booted: good -> it becomes active and the counter may rise; bad -> fall back at once.

        With ``booted`` (the slot U-Boot chose, from its console) and ``boot``: an unhealthy boot
        changes nothing here (U-Boot has already counted the attempt); a healthy boot of the pending
        slot marks it good and only then raises the counter; a healthy boot of another slot while
        one is pending means U-Boot fell back: the pending slot is marked bad and the failure is
        reported in ``state["last_update"]``.
        """
        state = self.state
        slot = state["pending"]
        if booted is not None:
            return self._booted(state, booted, healthy=healthy, boot=boot)
        if slot is None:
            return state
        if healthy:
            state["slots"][slot]["status"] = "good"
            state["active"] = slot
            state["security_counter"] = max(state["security_counter"], state["slots"][slot]["security_version"])
        else:
            state["slots"][slot]["status"] = "bad"
            state["primary"] = state["active"]
        state["pending"] = None
        self.save(state)
        return state

    def _booted(self, state: dict[str, Any], booted: str, *, healthy: bool, boot: BootSlots | None) -> dict[str, Any]:
        if boot is None:
            raise VerificationError("a booted slot is reported without the boot loader that chose it")
        if not healthy:
            return state
        slot = state["pending"]
        boot.mark_good(booted)
        if slot == booted:
            state["slots"][slot]["status"] = "good"
            state["active"] = slot
            state["security_counter"] = max(state["security_counter"], state["slots"][slot]["security_version"])
            state["last_update"] = {"result": "installed", "slot": slot, "version": state["slots"][slot]["version"]}
            state["pending"] = None
        elif slot is not None:
            boot.mark_bad(slot)
            failed = state["slots"][slot]
            failed["status"] = "bad"
            state["primary"] = state["active"] = booted
            state["last_update"] = {
                "result": "fell back",
                "slot": slot,
                "version": failed["version"],
                "running": state["slots"][booted]["version"],
            }
            state["pending"] = None
        self.save(state)
        return state


def _updater(device: Device, source: Source) -> Updater:
    return Updater(
        metadata_dir=str(device.directory / "tuf"),
        metadata_base_url=source.metadata_url,
        target_dir=str(device.directory / "downloads"),
        target_base_url=source.targets_url,
        fetcher=source.fetcher,
        config=UpdaterConfig(prefix_targets_with_hash=True),
        bootstrap=None,  # the provisioned tuf/root.json (and whatever newer root it already walked to)
    )


def update(
    device: Device, source: Source, *, rauc: Tool, mksquashfs: Tool, rec: StageRecord, boot: BootSlots | None = None
) -> Outcome:
    """One update attempt; whatever fails, no download is left behind (a cut download restarts, never resumes)."""
    downloads = device.directory / "downloads"
    shutil.rmtree(downloads, ignore_errors=True)
    try:
        return _update(device, source, downloads, rauc=rauc, mksquashfs=mksquashfs, rec=rec, boot=boot)
    finally:
        shutil.rmtree(downloads, ignore_errors=True)


def _update(
    device: Device,
    source: Source,
    downloads: Path,
    *,
    rauc: Tool,
    mksquashfs: Tool,
    rec: StageRecord,
    boot: BootSlots | None,
) -> Outcome:
    state = device.state
    model = state["model"]
    try:
        updater = _updater(device, source)
        updater.refresh()
        path = target_path(model, state.get("group"))
        info = updater.get_targetinfo(path)
        if info is None:
            raise UpdateRefused(f"no target {path} signed by the role of model {model}")
        custom = info.custom
        if custom.get("hardware_model") != model:
            raise UpdateRefused(f"target is for model {custom.get('hardware_model')!r}, this device is {model!r}")
        active = state["slots"][state["active"]]
        if info.hashes["sha256"] == active["bundle_sha256"]:
            return Outcome("up-to-date", state["active"], active["version"], active["security_version"])
        security_version = int(custom["security_version"])
        if security_version < state["security_counter"]:
            raise UpdateRefused(
                f"firmware {custom.get('firmware_version')} has security version {security_version}, "
                f"below the device's counter {state['security_counter']}"
            )
        partial = downloads / f".{info.hashes['sha256']}.raucb.part"
        updater.download_target(info, filepath=str(partial))
    except tuf_errors.RepositoryError as exc:
        raise UpdateRefused(f"TUF refused the repository: {type(exc).__name__}: {exc}") from exc
    except (tuf_errors.DownloadError, OSError) as exc:
        raise UpdateRefused(f"download failed, nothing kept: {type(exc).__name__}: {exc}") from exc
    except (KeyError, ValueError, TypeError) as exc:
        raise UpdateRefused(f"target custom metadata is incomplete ({exc})") from exc
    got = partial.with_name(partial.name.removeprefix(".").removesuffix(".part"))
    os.replace(partial, got)
    try:
        checked = bundle.verify_and_extract(
            rauc, mksquashfs, rec, device.directory / "rauc" / "system.conf", got, downloads / "extract"
        )
        if checked.compatible != bundle.compatible(model):
            raise UpdateRefused(f"bundle is compatible {checked.compatible!r}, device is {bundle.compatible(model)!r}")
        if checked.version != custom.get("firmware_version"):
            raise UpdateRefused(f"bundle version {checked.version} != signed target's {custom.get('firmware_version')}")
    except UpdateRefused:
        raise
    except VerificationError as exc:
        raise UpdateRefused(str(exc)) from exc
    slot = device.inactive
    atomic.write_bytes(device.directory / "slots" / slot / bundle.IMAGE_NAME, checked.image.read_bytes())
    if boot is not None:
        # RAUC's uboot backend: write the inactive slot, then make it primary. A cut before the
        # second step leaves BOOT_ORDER as it was: the old slot boots.
        boot.write_slot(slot, checked.image)
        boot.set_primary(slot)
    state["slots"][slot] = {
        "version": checked.version,
        "security_version": security_version,
        "bundle_sha256": info.hashes["sha256"],
        "status": "pending",
    }
    state["primary"], state["pending"] = slot, slot
    device.save(state)
    return Outcome("installed", slot, checked.version, security_version)
