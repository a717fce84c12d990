"""What the reference device said on its serial console: U-Boot's verdicts, its measurements, the agent's PCRs.

The console is the one channel out of the device here, so it is parsed line by line, each line
with the seconds since QEMU started. The agent's records are its machine format (one a line,
firmware/agent/secure-iot-agent); U-Boot's lines are its own, matched exactly where they decide.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from tasks.firmware.measurements import FIT_PCR

# Console milestones: name -> the first line that marks it.
MILESTONES = {
    "u-boot": re.compile(r"^U-Boot 20\d\d"),
    "fit-measured": re.compile(rf"^secure-iot: measured FIT into PCR {FIT_PCR}"),
    "signature-verified": re.compile(r"Verifying Hash Integrity \.\.\. sha\d+,rsa\d+:\S+\+ OK"),
    "starting-kernel": re.compile(r"Starting kernel"),
    "userland": re.compile(r"^secure-iot init: userland"),
    "agent-done": re.compile(r"^secure-iot agent: done"),
    "poweroff": re.compile(r"^secure-iot init: poweroff"),
}
# What U-Boot (or the boot command it runs) prints when it refuses an image, and a kernel panic.
REFUSAL = re.compile(
    r"Bad Data Hash|Bad hash value|Failed to verify required signature|Verification failed"
    r"|ERROR: can't get|Could not find configuration|secure-iot: refused:|Kernel panic",
    re.IGNORECASE,
)
SIGNATURE = re.compile(r"Verifying Hash Integrity \.\.\. (sha\d+,rsa\d+:\S+)\+ OK")
# Numbers are bounded where they are matched (int() refuses more than 4300 digits with a ValueError).
PCR_LINE = re.compile(r"^PCR (\d{1,2}) sha256 ([0-9a-f]{64})$")
U_BOOT_DIGEST = re.compile(r"^sha256 for [0-9a-f]+ \.\.\. [0-9a-f]+ ==> ([0-9a-f]{64})$")
FIRMWARE_LINE = re.compile(r"^secure-iot firmware (\S+) security-version (\d{1,20})$")  # the TPM counter: 8 bytes
SLOT_LINE = re.compile(r"^secure-iot: booting slot ([AB]), attempts left A=([0-9a-f]+) B=([0-9a-f]+)$")


@dataclass
class BootReport:
    milestones: dict[str, float] = field(default_factory=dict)
    refusals: list[tuple[float, str]] = field(default_factory=list)
    u_boot_digests: list[str] = field(default_factory=list)  # what the boot command hashed, in order
    signature: str = ""  # the algorithm and key U-Boot verified the configuration with
    firmware: tuple[str, int] | None = None  # version and security version the agent read
    pcrs: dict[int, str] = field(default_factory=dict)
    agent_errors: list[str] = field(default_factory=list)
    slot: str = ""  # the slot U-Boot chose from the slot disk's BOOT_ORDER (empty: it chose none)
    attempts_left: dict[str, int] = field(default_factory=dict)  # after U-Boot counted this boot

    @property
    def reached_userland(self) -> bool:
        return "userland" in self.milestones

    @property
    def refused(self) -> bool:
        """U-Boot refused: it said why, and no kernel was started."""
        return bool(self.refusals) and "starting-kernel" not in self.milestones

    @property
    def reason(self) -> str:
        """The first refusal line: U-Boot also prints a generic one (Bad Data Hash) after others."""
        return self.refusals[0][1].strip() if self.refusals else ""


def parse(lines: Iterable[tuple[float, str]]) -> BootReport:
    report = BootReport()
    for seconds, raw in lines:
        line = raw.strip()
        for name, pattern in MILESTONES.items():
            if name not in report.milestones and pattern.search(line):
                report.milestones[name] = round(seconds, 3)
        in_u_boot = "starting-kernel" not in report.milestones
        if REFUSAL.search(line) and (in_u_boot or "Kernel panic" in line):
            report.refusals.append((round(seconds, 3), line))
        if in_u_boot and (m := U_BOOT_DIGEST.match(line)):
            report.u_boot_digests.append(m.group(1))
        if in_u_boot and not report.slot and (m := SLOT_LINE.match(line)):
            report.slot = m.group(1)
            report.attempts_left = {"A": int(m.group(2), 16), "B": int(m.group(3), 16)}
        if in_u_boot and (m := SIGNATURE.search(line)):
            report.signature = m.group(1)
        if m := PCR_LINE.match(line):
            report.pcrs[int(m.group(1))] = m.group(2)
        elif m := FIRMWARE_LINE.match(line):
            report.firmware = (m.group(1), int(m.group(2)))
        elif line.startswith("AGENT-ERROR"):
            report.agent_errors.append(line)
    return report


def timed_lines(text: str) -> list[tuple[float, str]]:
    """Read back a console log written by the boot (``[   1.234] line``)."""
    out = []
    for line in text.splitlines():
        if match := re.match(r"^\[\s*(\d+\.\d+)\] ?(.*)$", line):
            out.append((float(match.group(1)), match.group(2)))
    return out
