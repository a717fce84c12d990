"""Where the pipeline keeps what outlives a run: tools, the Go caches, base root filesystems, outside the checkout."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "secure-iot"
