"""Normalized findings and severities, shared by every gate (SAST, vulnerabilities, compliance)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from rich.table import Table

from tasks.core.console import console
from tasks.core.errors import InputError


class Severity(IntEnum):
    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str) -> Severity:
        key = text.strip().upper()
        aliases = {"NEGLIGIBLE": "INFO", "UNKNOWN": "INFO", "NOTE": "LOW", "MODERATE": "MEDIUM"}
        try:
            return cls[aliases.get(key, key)]
        except KeyError:
            raise InputError(f"unknown severity '{text}' (use info, low, medium, high, critical)") from None

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Finding:
    """One finding from one tool, in the project's own terms.

    ``location`` is ``file:line`` for code findings and ``package@version`` for
    dependency findings; ``path``/``package`` hold the part waivers scope on.
    """

    tool: str
    rule: str
    severity: Severity
    location: str
    message: str
    path: str = ""
    package: str = ""
    aliases: tuple[str, ...] = ()

    def ids(self) -> set[str]:
        """Every id a waiver or VEX statement may name this finding by."""
        return {self.rule, *self.aliases}

    def as_json(self) -> dict[str, object]:
        data: dict[str, object] = dict(self.__dict__)
        data["severity"] = str(self.severity)
        data["aliases"] = list(self.aliases)
        return data


def findings_table(title: str, findings: Iterable[Finding]) -> None:
    rows = list(findings)
    if not rows:
        return
    table = Table(title=title, title_justify="left")
    for col in ("severity", "tool", "rule", "location", "message"):
        table.add_column(col, overflow="fold")
    for f in rows:
        table.add_row(str(f.severity), f.tool, f.rule, f.location, f.message[:160])
    console.print(table)
