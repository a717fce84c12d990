"""A file of the OTA repository taken once: opened without following a link, hashed as it is read.

The repository directory is writable by whoever serves or caches it, who holds no key. Were the
signer to check a path and then use the path again (hash a bundle, RAUC-verify it, then hash and
copy it once more to sign it), that writer could swap the file between the steps and have bytes
signed that nobody verified. So a file is read once, through one descriptor opened with
``O_NOFOLLOW`` (a planted symlink is refused, not followed; a FIFO is refused, not waited on),
and every later step uses what that read produced:

- ``read``: the bytes themselves (metadata, at most a few MiB);
- ``taken``: a private copy in a new 0700 directory, hashed while it is written and held to the
  expected length and hashes; RAUC verifies that copy and ``store`` writes that copy into the
  repository, hashing it again as it goes, so the signed hashes are those of the verified bytes.
"""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tasks.core import atomic
from tasks.core.errors import VerificationError

CHUNK = 1 << 20
ALGORITHMS = ("sha256",)  # what the signer puts in a target's hashes


@dataclass(frozen=True)
class Digest:
    """A file's length and hashes, as a TUF target or metadata file names them."""

    length: int
    hashes: dict[str, str]

    def shown(self) -> str:
        return f"{self.length} bytes, " + ", ".join(f"{a} {h[:16]}…" for a, h in sorted(self.hashes.items()))


@dataclass(frozen=True)
class Taken:
    """A private copy of a file and the digest computed while it was written."""

    path: Path
    digest: Digest


@contextmanager
def opened(path: Path, remedy: str) -> Iterator[BinaryIO]:
    """``path`` open for reading, if it is a regular file reached without following a final symlink."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise VerificationError(f"{path}: missing, a symlink or unreadable ({exc.strerror}); {remedy}") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise VerificationError(f"{path}: not a regular file; {remedy}")
        yield handle


def read(path: Path, limit: int, remedy: str) -> bytes:
    """The bytes of ``path`` (at most ``limit``), read once through ``opened``."""
    with opened(path, remedy) as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise VerificationError(f"{path}: larger than {limit} bytes; {remedy}")
    return data


def _digest(path: Path, source: BinaryIO, algorithms: Iterable[str], sink: BinaryIO | None, remedy: str) -> Digest:
    try:
        hashers = {name: hashlib.new(name) for name in algorithms}
    except ValueError as exc:
        raise VerificationError(f"{path}: a hash algorithm this signer does not know ({exc}); {remedy}") from None
    length = 0
    while chunk := source.read(CHUNK):
        length += len(chunk)
        for hasher in hashers.values():
            hasher.update(chunk)
        if sink is not None:
            sink.write(chunk)
    return Digest(length, {name: hasher.hexdigest() for name, hasher in hashers.items()})


def _held_to(path: Path, got: Digest, expected: Digest, what: str, remedy: str) -> None:
    if got != expected:
        raise VerificationError(f"{path}: not {what} ({got.shown()}, expected {expected.shown()}); {remedy}")


def check(path: Path, expected: Digest, what: str, remedy: str) -> None:
    """``path`` has ``expected``'s length and hashes (``what`` names it in the refusal)."""
    with opened(path, remedy) as source:
        got = _digest(path, source, expected.hashes, None, remedy)
    _held_to(path, got, expected, what, remedy)


@contextmanager
def taken(
    path: Path, remedy: str, *, expected: Digest | None = None, what: str = "the expected file"
) -> Iterator[Taken]:
    """A private copy of ``path`` (a new 0700 directory, removed afterwards), held to ``expected`` if given."""
    with tempfile.TemporaryDirectory(prefix="secure-iot-taken-") as private:
        copy = Path(private) / path.name
        with opened(path, remedy) as source, copy.open("xb") as sink:
            got = _digest(path, source, expected.hashes if expected else ALGORITHMS, sink, remedy)
        if expected is not None:
            _held_to(path, got, expected, what, remedy)
        yield Taken(copy, got)


def store(copy: Taken, destination: Path, *, mode: int = 0o644) -> None:
    """``copy`` at ``destination``, whole or not at all, hashed again as it is written: refused (nothing
    written) unless it is still the bytes ``copy.digest`` names."""
    remedy = "the private copy changed after it was taken; nothing was signed"
    with atomic.replacing(destination, mode=mode) as sink, opened(copy.path, remedy) as source:
        got = _digest(copy.path, source, copy.digest.hashes, sink, remedy)
        _held_to(copy.path, got, copy.digest, "the bytes that were taken and verified", remedy)
