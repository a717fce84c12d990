"""The real boot story: the signed firmware boots in QEMU against a manufactured device's own TPM,
and the measurements U-Boot made are what the device registers with.

The genuine build registers; the same FIT with one flipped byte, which U-Boot measures before it
refuses it (tests/e2e/test_boot_tamper.py shows the refusal), is refused by the server at
`reference-values`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tasks.firmware import env_tools, qemu, slots
from tests.support.fleet import Fleet, make_fleet

pytestmark = pytest.mark.slow


def boot_args(fleet: Fleet, files: Path, fit: Path, disk_path: Path) -> qemu.Device:
    """U-Boot boots ``fit`` from slot A of a fresh slot disk (tasks/firmware/slots.py)."""
    disk = slots.Disk.create(disk_path, env_tools(fleet.ctx), fleet.rec, fit)
    return qemu.Device(files / "u-boot.bin", files / "control.dtb", None, disk.path)


def test_genuine_boot_registers_and_a_tampered_boot_is_refused(firmware: Any, tmp_path: Path) -> None:
    files = firmware.out / "firmware"
    reference = json.loads((files / "reference-values.json").read_text())
    fleet = make_fleet(tmp_path, devices=2, golden=(reference,))
    tampered = tmp_path / "tampered.fit"
    data = bytearray((files / "image.fit").read_bytes())
    data[len(data) // 2] ^= 0x01  # inside the kernel payload
    tampered.write_bytes(bytes(data))

    # U-Boot measures the FIT, then refuses it and powers off: the TPM is taken at the measurement
    bad = boot_args(fleet, files, tampered, tmp_path / "tampered.img")
    response, console = fleet.register_booted(fleet.devices[1], bad, full_boot=False)
    assert "measured FIT into PCR 9" in console
    assert response.status_code == 403, response.text
    assert response.json()["step"] == "reference-values"

    genuine = boot_args(fleet, files, files / "image.fit", tmp_path / "genuine.img")
    response, console = fleet.register_booted(fleet.devices[0], genuine)
    assert "secure-iot agent: done" in console
    assert response.status_code == 201, response.text
    assert response.json()["firmware"] == reference["firmware_version"]
    assert fleet.attested() == [fleet.devices[0].device_id]
