"""Talk 06/08 - Device firmware (issue #13): pinned sources, U-Boot, rootfs, the signed FIT and its
control DTB, reference values, the QEMU + swtpm boot and the tamper cases.

The stages use what is re-exported here; the modules below are one concern each.
"""

from __future__ import annotations

from tasks.firmware import slots
from tasks.firmware.boot import SlotBoot, boot_slot, cold_boot, env_tools, genuine_checks
from tasks.firmware.build import (
    CONTROL_DTB_NAME,
    FIT_NAME,
    INITRAMFS_NAME,
    ITS_NAME,
    REFERENCE_BUNDLE_NAME,
    REFERENCE_NAME,
    U_BOOT_NAME,
    Firmware,
    build_firmware,
)
from tasks.firmware.fit import RELEASE, parse_release
from tasks.firmware.measurements import FIT_PCR, KEY_NAME, KEY_PCR, MEASURED_PCRS
from tasks.firmware.qemu import BootRun, Device
from tasks.firmware.tamper import CASES, Case, Genuine, tamper_checks, tampered_device

__all__ = [
    "CASES",
    "CONTROL_DTB_NAME",
    "FIT_NAME",
    "FIT_PCR",
    "INITRAMFS_NAME",
    "ITS_NAME",
    "KEY_NAME",
    "KEY_PCR",
    "MEASURED_PCRS",
    "REFERENCE_BUNDLE_NAME",
    "REFERENCE_NAME",
    "RELEASE",
    "U_BOOT_NAME",
    "BootRun",
    "Case",
    "Device",
    "Firmware",
    "Genuine",
    "SlotBoot",
    "boot_slot",
    "build_firmware",
    "cold_boot",
    "env_tools",
    "genuine_checks",
    "parse_release",
    "slots",
    "tamper_checks",
    "tampered_device",
]
