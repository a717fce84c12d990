"""Property tests of the device side's event-log parser: the console of a measured boot (what U-Boot printed as
it measured, what the agent printed) is the guest's, and a compromised guest prints anything. For any console
text, and for edits of real consoles (tests/fixtures/firmware), console_log.parse returns a report and
measured_boot.event_log returns one (PCR, digest) for each measured PCR or raises ToolError with one line;
a genuine console parses to the reference values' event log. The examples the properties found are pinned.
"""

from __future__ import annotations

import json

from hypothesis import example, given, settings
from hypothesis import strategies as st

from tasks.core.errors import ToolError
from tasks.device import measured_boot
from tasks.firmware import console_log
from tasks.firmware.measurements import MEASURED_PCRS
from tests.support.project import REPO

FIXTURES = REPO / "tests" / "fixtures" / "firmware"
CONSOLES = {name: (FIXTURES / f"{name}.console.log").read_text() for name in ("genuine", "flipped-byte", "rollback")}
REFERENCE = json.loads((FIXTURES / "reference-values.json").read_text())


def untimed(console: str) -> str:
    """The console as QEMU wrote it (the fixtures carry the seconds the boot stage adds)."""
    return "\n".join(line for _, line in console_log.timed_lines(console))


GENUINE = untimed(CONSOLES["genuine"])
DIGEST = "sha256 for 48000000 ... 48bb398f ==> " + "ab" * 32
LINES = st.sampled_from([line for console in CONSOLES.values() for line in untimed(console).splitlines()])
HUGE = "9" * 5000  # int() refuses more than 4300 digits


@st.composite
def edited_console(draw: st.DrawFn) -> str:
    """A real console with lines removed, repeated, taken from another boot, or with any text in them."""
    lines = untimed(CONSOLES[draw(st.sampled_from(sorted(CONSOLES)))]).splitlines()
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(lines)))
        edit = draw(st.sampled_from(["delete", "repeat", "insert", "text"]))
        if edit == "delete" and at < len(lines):
            del lines[at]
        elif edit == "repeat" and at < len(lines):
            lines.insert(at, lines[at])
        elif edit == "insert":
            lines.insert(at, draw(LINES))
        else:
            lines.insert(at, draw(st.text(max_size=80)))
    return "\n".join(lines)


def test_a_genuine_console_is_the_reference_values_event_log() -> None:
    expected = [(e["pcr"], e["digest"]) for e in REFERENCE["event_log"]]
    assert measured_boot.event_log(GENUINE) == expected
    report = console_log.parse(console_log.timed_lines(CONSOLES["genuine"]))
    assert report.firmware == (REFERENCE["firmware_version"], REFERENCE["security_version"])
    assert report.pcrs == {int(i): v for i, v in REFERENCE["pcrs"].items()}


@settings(max_examples=300, deadline=None)
@given(console=st.text(max_size=400) | edited_console())
@example(console=DIGEST)  # found: a boot that printed one measurement raised zip()'s bare ValueError
@example(console=f"{DIGEST}\n{DIGEST}\n{DIGEST}")  # found: one more than measured, likewise
@example(console=f"PCR {HUGE} sha256 {'00' * 32}")  # found: int() of 5000 digits raised ValueError
@example(console=f"secure-iot firmware 1.1.0 security-version {HUGE}")  # found: likewise
def test_any_console_parses_to_a_report_and_an_event_log_or_one_refusal(console: str) -> None:
    report = console_log.parse((0.0, line) for line in console.splitlines())
    assert all(0 <= pcr <= 99 for pcr in report.pcrs)
    try:
        log = measured_boot.event_log(console)
    except ToolError as refused:
        assert "\n" not in str(refused)
        return
    assert [pcr for pcr, _ in log] == list(MEASURED_PCRS)
