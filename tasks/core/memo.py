"""A remembered answer, kept under the key of everything it depended on: a re-run's cheap re-check.

One file per question (its last answer), so a memo directory does not grow with each change.
Whatever cannot be read back, or was stored under another key, is simply not recalled: the caller
asks the tool again. Used for cosign's verify answers (tasks/signing/verified.py) and OPA's
decisions (tasks/policy/rego.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tasks.core import atomic


def recall(memo: Path, key: str | None) -> dict[str, Any] | None:
    """The record stored at ``memo`` under ``key``; None if there is none, it is unreadable, or its key differs."""
    if key is None or not memo.is_file():
        return None
    try:
        stored = json.loads(memo.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return stored if isinstance(stored, dict) and stored.get("key") == key else None


def remember(memo: Path, key: str, record: Mapping[str, Any]) -> None:
    """Store ``record`` at ``memo`` under ``key`` (atomically: a reader sees the old record or the new)."""
    atomic.write_json(memo, {**record, "key": key})
