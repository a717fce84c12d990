"""Atomic file writes: a temp file in the same directory, fsync, then rename.

The temp file is made by ``mkstemp`` (O_EXCL, 0600) and gets its final mode before the rename,
so a file is never seen at its path with any other mode than its final one. A secret (a private
key, a kubeconfig with one) goes through ``write_secret``: 0600 from its first byte to the end;
never ``write_bytes`` and a chmod afterwards, which leaves it readable at its path meanwhile.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

SECRET_MODE = 0o600


@contextmanager
def replacing(path: Path, *, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A handle whose bytes become ``path`` when the block ends (fsync, then rename): readers see the old
    or the new file, never half. If the block raises, nothing is written. The temp file is 0600 until
    the rename, then ``mode``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes(path: Path, data: bytes, *, mode: int = 0o644) -> None:
    """Write ``data`` to ``path`` so that readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path, mode=mode) as handle:
        handle.write(data)


def write_secret(path: Path, data: bytes | str) -> None:
    """A secret at ``path``: owner-only (0600) from the moment it exists, at the temp name and at its own."""
    write_bytes(path, data.encode("utf-8") if isinstance(data, str) else data, mode=SECRET_MODE)


def write_text(path: Path, text: str, *, mode: int = 0o644) -> None:
    write_bytes(path, text.encode("utf-8"), mode=mode)


def write_json(path: Path, obj: Any, *, mode: int = 0o644) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n", mode=mode)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
