"""The device's slot disk: one U-Boot environment and two firmware slots (A/B), as the boot command reads it.

Raw layout (512-byte blocks, no partition table; the numbers are the boot command's in
firmware/u-boot/secure-iot.config, and a unit test holds the two together):

    block 0x0000, 0x20 blocks    U-Boot environment (CRC32 + ``k=v\\0`` pairs, 16 KiB): BOOT_ORDER,
                                 BOOT_A_LEFT, BOOT_B_LEFT - RAUC's U-Boot integration convention
    block 0x0800, 0x10000 blocks slot A: a signed FIT (32 MiB at most)
    block 0x10800, 0x10000 blocks slot B

U-Boot imports only those three variables (``env import -c ... BOOT_ORDER BOOT_A_LEFT
BOOT_B_LEFT``), decrements the chosen slot's counter and writes them back *before* it loads the
slot, so a slot that never comes up healthy runs out of attempts and the next in BOOT_ORDER boots.
The host side reads and writes the same environment with libubootenv's fw_printenv / fw_setenv -
the tools RAUC's uboot backend calls - through a fw_env.config that names the disk file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tasks.core import runner
from tasks.core.errors import InputError, ToolError
from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool

BLOCK = 512
ENV_SIZE = 0x4000  # bytes; 0x20 blocks at block 0
SLOT_START = {"A": 0x800, "B": 0x10800}  # first block of each slot
SLOT_BLOCKS = 0x10000  # 32 MiB per slot
DISK_BYTES = (SLOT_START["B"] + SLOT_BLOCKS) * BLOCK
ATTEMPTS = 3  # RAUC's default boot attempts per slot
VARIABLES = ("BOOT_ORDER", "BOOT_A_LEFT", "BOOT_B_LEFT")


def other(slot: str) -> str:
    if slot not in SLOT_START:
        raise InputError(f"no slot {slot!r} (slots: A, B)")
    return "B" if slot == "A" else "A"


@dataclass(frozen=True)
class EnvTools:
    mkenvimage: Tool
    fw_setenv: Tool
    fw_printenv: Tool


@dataclass(frozen=True)
class Disk:
    """A slot disk file and the tools that edit its environment; every command goes into ``rec``."""

    path: Path
    tools: EnvTools
    rec: StageRecord

    @classmethod
    def create(
        cls,
        path: Path,
        tools: EnvTools,
        rec: StageRecord,
        slot_a: Path,
        *,
        slot_b: Path | None = None,
        order: str = "A B",
    ) -> Disk:
        """A new (sparse) disk: slot A holds ``slot_a``, both slots ``ATTEMPTS`` tries, ``order`` first."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        with tmp.open("wb") as handle:
            handle.truncate(DISK_BYTES)
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=".env-") as work:
            text = Path(work) / "env.txt"
            text.write_text(f"BOOT_ORDER={order}\nBOOT_A_LEFT={ATTEMPTS}\nBOOT_B_LEFT={ATTEMPTS}\n")
            image = Path(work) / "env.bin"
            runner.run(rec, tools.mkenvimage, ["-s", hex(ENV_SIZE), "-o", image, text])
            _write_at(tmp, 0, image.read_bytes(), ENV_SIZE)
        disk = cls(tmp, tools, rec)
        disk.write_slot("A", slot_a)
        if slot_b is not None:
            disk.write_slot("B", slot_b)
        os.replace(tmp, path)
        return cls(path, tools, rec)

    def write_slot(self, slot: str, image: Path) -> None:
        """``image`` into ``slot``; the environment is not touched (U-Boot reads the FIT's own length)."""
        other(slot)
        data = image.read_bytes()
        _write_at(self.path, SLOT_START[slot] * BLOCK, data, SLOT_BLOCKS * BLOCK)

    def read_slot(self, slot: str, length: int) -> bytes:
        other(slot)
        with self.path.open("rb") as handle:
            handle.seek(SLOT_START[slot] * BLOCK)
            return handle.read(length)

    @contextmanager
    def _config(self) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="secure-iot-fwenv-") as work:
            config = Path(work) / "fw_env.config"
            config.write_text(f"{self.path.resolve()} 0x0 {ENV_SIZE:#x}\n")
            yield config

    def env(self) -> dict[str, str]:
        """BOOT_ORDER and the two counters as U-Boot last wrote them (fw_printenv)."""
        with self._config() as config:
            done = runner.run(self.rec, self.tools.fw_printenv, ["-c", config], check=False)
        if done.returncode != 0:
            raise ToolError(f"fw_printenv cannot read the environment of {self.path}: {done.tail(2)}")
        values = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
        return {k: values.get(k, "") for k in VARIABLES}

    def set_env(self, values: Mapping[str, str]) -> None:
        """fw_setenv -s: all values in one write of the environment (a cut leaves the old one or the new)."""
        unknown = sorted(set(values) - set(VARIABLES))
        if unknown:
            raise InputError(f"not a boot variable: {', '.join(unknown)} (the boot command imports only {VARIABLES})")
        with self._config() as config:
            script = config.with_name("script")
            script.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
            runner.run(self.rec, self.tools.fw_setenv, ["-c", config, "-s", script])

    # What RAUC's uboot backend does (src/bootchooser.c, uboot_set_primary / uboot_set_state):
    def set_primary(self, slot: str) -> None:
        """The slot boots first next time with a full set of attempts (``rauc install`` after writing it)."""
        self.set_env({"BOOT_ORDER": f"{slot} {other(slot)}", f"BOOT_{slot}_LEFT": str(ATTEMPTS)})

    def mark_good(self, slot: str) -> None:
        """``rauc status mark-good``: the slot's attempts refilled, the order left as it is."""
        other(slot)
        self.set_env({f"BOOT_{slot}_LEFT": str(ATTEMPTS)})

    def mark_bad(self, slot: str) -> None:
        """``rauc status mark-bad``: no attempts left, so U-Boot never picks the slot again."""
        other(slot)
        self.set_env({f"BOOT_{slot}_LEFT": "0"})


def _write_at(path: Path, offset: int, data: bytes, room: int) -> None:
    if len(data) > room:
        raise InputError(f"{len(data)} bytes do not fit in {room} bytes at offset {offset:#x} of {path}")
    with path.open("r+b") as handle:
        handle.seek(offset)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
