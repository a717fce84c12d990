"""The slot disk's layout (tasks/firmware/slots.py) is the one the boot command in the U-Boot fragment reads."""

from __future__ import annotations

from tasks.firmware import slots
from tests.support.project import REPO

FRAGMENT = (REPO / "firmware" / "u-boot" / "secure-iot.config").read_text()


def test_the_slot_disk_layout_is_the_boot_commands() -> None:
    assert f"virtio read ${{envaddr}} 0 {slots.ENV_SIZE // slots.BLOCK:#x}" in FRAGMENT
    assert f"env import -c ${{envaddr}} {slots.ENV_SIZE:#x} {' '.join(slots.VARIABLES)}" in FRAGMENT
    assert f"env export -c -s {slots.ENV_SIZE:#x} ${{envaddr}} {' '.join(slots.VARIABLES)}" in FRAGMENT
    for slot, start in slots.SLOT_START.items():
        assert f"setenv slot {slot}; setenv slotblk {start:#x}" in FRAGMENT
    assert f"virtio read ${{fit}} ${{slotblk}} {slots.SLOT_BLOCKS:#x}" in FRAGMENT
    assert slots.SLOT_START["B"] >= slots.SLOT_START["A"] + slots.SLOT_BLOCKS  # the slots do not overlap
    assert slots.SLOT_START["A"] * slots.BLOCK >= slots.ENV_SIZE


def test_other_slot() -> None:
    assert (slots.other("A"), slots.other("B")) == ("B", "A")


def test_the_console_says_which_slot_u_boot_chose() -> None:
    from tasks.firmware import console_log

    lines = [
        (0.2, "U-Boot 2023.01"),
        (0.5, "secure-iot: booting slot B, attempts left A=3 B=2"),
        (0.9, "secure-iot: refused: bootm failed"),
    ]
    report = console_log.parse(lines)
    assert (report.slot, report.attempts_left, report.refused) == ("B", {"A": 3, "B": 2}, True)
    assert console_log.parse(lines[:1]).slot == ""  # no slot line: U-Boot chose none
