"""What an allowed-signers file (ssh-keygen ALLOWED SIGNERS) may say to the commit gates.

git verifies a commit with ``ssh-keygen -Y verify -Overify-time=<committer date>``, and the
committer date is whatever the signer wrote. A key limited by ``valid-before`` therefore signs
forever by backdating, and ``valid-after`` or a ``cert-authority`` (whose certificates carry their
own validity) are judged at the same chosen moment. Such lines are refused: a key stops signing only
when a trusted commit removes its line (ADR 0024).
"""

from __future__ import annotations

import re

TIMED = ("valid-before", "valid-after", "cert-authority")
_KEY = re.compile(r"\s(?:ssh|ecdsa|sk|rsa)-[\w@.-]+\s+AAAA[A-Za-z0-9+/=]+")  # where a line's key starts
_OPTION = re.compile(r"(?:^|[\s,\"])(" + "|".join(TIMED) + r")(?=[=,\s\"]|$)", re.IGNORECASE)


def signer_lines(signers: bytes) -> frozenset[str]:
    """The lines that allow a signer (blank lines and comments say nothing), each stripped."""
    lines = (line.strip() for line in signers.decode(errors="replace").splitlines())
    return frozenset(line for line in lines if line and not line.startswith("#"))


def timed_line(signers: bytes) -> tuple[int, str] | None:
    """(line number, option) of the first line whose options make a key's trust depend on a date."""
    for number, line in enumerate(signers.decode(errors="replace").splitlines(), start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        key = _KEY.search(text)
        found = _OPTION.search(text[: key.start()] if key else text)  # the comment after a key says nothing
        if found:
            return number, found.group(1).lower()
    return None
