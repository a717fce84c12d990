"""Reference values: what a genuine boot of one signed build extends into the TPM, computed from its files.

The event log is the boot command's (firmware/u-boot/secure-iot.config), in order:
  PCR 8 (KEY_PCR) <- sha256(rsa,modulus of the required key in the control DTB): the trust anchor U-Boot uses;
  PCR 9 (FIT_PCR) <- sha256(the whole FIT, FDT totalsize bytes): the firmware image.
Nothing else extends PCRs 0-9 on this device (no measuring ROM or TF-A below U-Boot; IMA starts
before the TPM driver loads), so PCRs 0-7 stay zero: any other value is an unexplained measurement.
Pure functions over bytes: the build writes the document, the boot stage compares against it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tasks.core.errors import InputError
from tasks.firmware import fdt

KEY_NAME = "secure-iot-fw"  # key-name-hint in the FIT, /signature/key-<name> in the control DTB
# The PCR layout, named once: what the boot command extends (the device key's PolicyPCR, the
# reference values and the event log a device registers with all follow it).
KEY_PCR = 8  # the required key's modulus: the trust anchor U-Boot verifies with
FIT_PCR = 9  # the whole FIT: the firmware image
MEASURED_PCRS = (KEY_PCR, FIT_PCR)  # in the order the boot command extends them
PCRS = range(10)  # what the device reports; nothing below U-Boot measures, so 0-7 stay zero
ZERO = "00" * 32
BANK = "sha256"


@dataclass(frozen=True)
class Event:
    pcr: int
    digest: str
    what: str


def extend(pcr: str, digest: str) -> str:
    """TPM2_PCR_Extend in the sha256 bank: new = sha256(old || digest)."""
    return hashlib.sha256(bytes.fromhex(pcr) + bytes.fromhex(digest)).hexdigest()


def required_key_modulus(control_dtb: bytes) -> bytes:
    """The modulus of the key U-Boot verifies with (what the boot command hashes into PCR 8)."""
    try:
        key = fdt.parse(control_dtb).root.find(f"/signature/key-{KEY_NAME}")
        modulus, bits = key.get("rsa,modulus"), fdt.cell(key, "rsa,num-bits")
    except (KeyError, ValueError) as exc:
        raise InputError(f"control DTB: no usable /signature/key-{KEY_NAME} ({exc})") from exc
    if len(modulus) != bits // 8:
        raise InputError(f"control DTB: rsa,modulus is {len(modulus)} bytes, rsa,num-bits says {bits}")
    return modulus


def events(fit: bytes, control_dtb: bytes) -> list[Event]:
    if fdt.totalsize(fit) != len(fit):
        raise InputError(
            f"FIT: FDT totalsize {fdt.totalsize(fit)} != file size {len(fit)}; U-Boot measures totalsize bytes"
        )
    return [
        Event(
            KEY_PCR,
            hashlib.sha256(required_key_modulus(control_dtb)).hexdigest(),
            f"U-Boot control DTB: rsa,modulus of the required key-{KEY_NAME}",
        ),
        Event(FIT_PCR, hashlib.sha256(fit).hexdigest(), "FIT image (the whole file: FDT totalsize bytes)"),
    ]


def expected_pcrs(log: list[Event]) -> dict[int, str]:
    pcrs = dict.fromkeys(PCRS, ZERO)
    for event in log:
        pcrs[event.pcr] = extend(pcrs[event.pcr], event.digest)
    return pcrs


def reference_values(
    fit: bytes, control_dtb: bytes, firmware_version: str, security_version: int, hardware_model: str
) -> dict[str, Any]:
    """The reference-values document of one signed build (JSON)."""
    log = events(fit, control_dtb)
    return {
        "hardware_model": hardware_model,
        "firmware_version": firmware_version,
        "security_version": security_version,
        "fit_sha256": hashlib.sha256(fit).hexdigest(),
        "pcr_bank": BANK,
        "event_log": [{"pcr": e.pcr, "digest": e.digest, "what": e.what} for e in log],
        "pcrs": {str(i): v for i, v in expected_pcrs(log).items()},
    }


def expected(reference: Mapping[str, Any]) -> dict[int, str]:
    """The PCR values of a reference-values document, checked for shape."""
    pcrs = reference.get("pcrs")
    if not isinstance(pcrs, dict) or {str(i) for i in PCRS} - set(pcrs):
        raise InputError(f"reference values: expected pcrs 0-{PCRS[-1]}")
    return {i: str(pcrs[str(i)]) for i in PCRS}


def differences(measured: Mapping[int, str], reference: Mapping[str, Any]) -> dict[int, str]:
    """PCR -> what differs from the reference values (a PCR the device did not report differs too)."""
    out = {}
    for index, want in expected(reference).items():
        got = measured.get(index)
        if got != want:
            out[index] = f"measured {got or 'nothing'}, expected {want}"
    return out


def event_digests(reference: Mapping[str, Any]) -> list[str]:
    log = reference.get("event_log")
    if not isinstance(log, list):
        raise InputError("reference values: expected an event_log list")
    return [str(e["digest"]) for e in log]
