"""Where the pipeline keeps what outlives a run: tools, the Go caches, base root filesystems, outside the checkout."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "secure-iot"


@contextlib.contextmanager
def locked(lockfile: Path) -> Iterator[None]:
    """One writer at a time for a cache entry (two sessions may fill the same one): an flock."""
    lockfile.parent.mkdir(parents=True, exist_ok=True)
    with lockfile.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
