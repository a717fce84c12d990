"""The update client's A/B bookkeeping against a boot loader (tasks/ota/client.py), without a boot."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks import ota
from tasks.core.errors import VerificationError


class Loader:
    """Records what the client asks of the boot loader (RAUC's uboot backend calls)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def write_slot(self, slot: str, image: Path) -> None:
        self.calls.append(("write", slot))

    def set_primary(self, slot: str) -> None:
        self.calls.append(("primary", slot))

    def mark_good(self, slot: str) -> None:
        self.calls.append(("good", slot))

    def mark_bad(self, slot: str) -> None:
        self.calls.append(("bad", slot))


@pytest.fixture
def device(tmp_path: Path) -> ota.Device:
    (tmp_path / "ca.pem").write_text("ca")
    (tmp_path / "n.fit").write_bytes(b"N")
    dev = ota.Device.provision(
        tmp_path / "dev",
        model="m",
        trusted_root=b"{}",
        keyring=tmp_path / "ca.pem",
        fit=tmp_path / "n.fit",
        version="1.1.0",
        security_version=2,
    )
    state = dev.state  # as update() leaves it after installing 1.2.0 into B
    state["slots"]["B"] = {"version": "1.2.0", "security_version": 3, "bundle_sha256": "x", "status": "pending"}
    state["primary"] = state["pending"] = "B"
    dev.save(state)
    return dev


def test_a_healthy_boot_of_the_pending_slot_marks_it_good_and_only_then_raises_the_counter(device: ota.Device) -> None:
    loader = Loader()
    assert device.boot_result(healthy=False, booted="B", boot=loader)["security_counter"] == 2
    state = device.boot_result(healthy=True, booted="B", boot=loader)
    assert (state["active"], state["security_counter"], state["pending"]) == ("B", 3, None)
    assert state["last_update"] == {"result": "installed", "slot": "B", "version": "1.2.0"}
    assert loader.calls == [("good", "B")]


def test_a_healthy_boot_of_the_old_slot_while_one_is_pending_is_a_fallback(device: ota.Device) -> None:
    loader = Loader()
    state = device.boot_result(healthy=True, booted="A", boot=loader)
    assert state["last_update"] == {"result": "fell back", "slot": "B", "version": "1.2.0", "running": "1.1.0"}
    assert (state["active"], state["primary"], state["security_counter"]) == ("A", "A", 2)
    assert state["slots"]["B"]["status"] == "bad"
    assert loader.calls == [("good", "A"), ("bad", "B")]


def test_a_booted_slot_without_its_boot_loader_is_refused(device: ota.Device) -> None:
    with pytest.raises(VerificationError, match="without the boot loader"):
        device.boot_result(healthy=True, booted="B")
