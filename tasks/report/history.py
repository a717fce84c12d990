"""A small history of earlier runs (out/history.json): when, and each stage's duration and verdict.

Kept so the report can plot stage durations over the last runs; only those two fields are kept,
the full evidence of a run stays in out/evidence.json.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tasks.core import atomic

KEEP = 12


def load(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []  # no history yet, or an unreadable one: the plot starts afresh
    return [e for e in data.get("runs", []) if isinstance(e, dict)] if isinstance(data, dict) else []


def entry(evidence: Mapping[str, Any]) -> dict[str, Any]:
    stages = evidence.get("stages") or {}
    return {
        "when": str(evidence.get("updated", "")),
        "stages": {
            str(name): {"duration_s": float(rec.get("duration_s", 0.0)), "verdict": str(rec.get("verdict", "?"))}
            for name, rec in stages.items()
            if name != "report"
        },
    }


def append(path: Path, evidence: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The history with this run added (once: a second report of the same evidence adds nothing)."""
    runs = load(path)
    new = entry(evidence)
    if not runs or runs[-1].get("stages") != new["stages"]:
        runs.append(new)
    runs = runs[-KEEP:]
    atomic.write_json(path, {"runs": runs})
    return runs
