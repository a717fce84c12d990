"""Where the pipeline keeps what outlives a run: tools, the Go caches, base root filesystems, outside the checkout."""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from collections.abc import Iterator
from pathlib import Path


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "secure-iot"


@contextlib.contextmanager
def locked(lockfile: Path, waiting: str = "") -> Iterator[None]:
    """One writer at a time for a cache entry (two sessions may fill the same one): an flock.

    ``waiting``: said once when another process holds the lock, before this one waits for it."""
    lockfile.parent.mkdir(parents=True, exist_ok=True)
    with lockfile.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting:
                print(f"  {waiting}", file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
