"""The offline update bundle: one uncompressed tar for a USB stick or a technician's laptop.

It holds the TUF metadata chain (every root version, the current timestamp, snapshot, targets
and the model's role) and the model's target file, under the same paths as the online
repository. The device reads it through ``TarFetcher``, a python-tuf fetcher: the ngclient
Updater and RAUC run exactly as online, so the same checks hold (an expired timestamp in an old
bundle is a freeze, refused).

The stick is hostile input read before TUF has verified anything, so nothing on it is read
unbounded: the index reads tar headers only (each at most ``MAX_HEADER``, never past the file's
end, at most ``MAX_MEMBERS``) and accepts only regular, non-sparse members with plain names, each
once, whose size and data offset are not negative (a base-256 size field can say -1); a member is
streamed in chunks, so python-tuf's length limit stops an oversized one early.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from tuf.api.exceptions import DownloadError, DownloadHTTPError
from tuf.ngclient import FetcherInterface

from tasks.core import atomic
from tasks.ota.repository import Repository, role_name

SCHEME = "offline:///"
METADATA_URL = f"{SCHEME}metadata/"
TARGETS_URL = f"{SCHEME}targets/"
MAX_MEMBERS = 1024  # every root version, four role files, the model's targets: far fewer
MAX_HEADER = 64 << 10  # one PAX or GNU long-name header
CHUNK = 64 << 10


def _add(archive: tarfile.TarFile, name: str, handle: BinaryIO, size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    archive.addfile(info, handle)


def write(repo: Repository, model: str, out: Path) -> list[str]:
    """``out``: the chain for ``model`` and its current target. Returns the member names.

    The metadata are the bytes ``Repository.open`` verified (or this run signed), never re-read from
    the directory; each target is taken once, held to its signed hashes (``Repository.take``)."""
    names = [f"{version}.root.json" for version in range(1, repo.root.signed.version + 1)]  # the verified chain
    names.append("timestamp.json")
    names.append(f"{repo.snapshot.signed.version}.snapshot.json")
    names.append(f"{repo.targets.signed.version}.targets.json")
    role = repo.roles[role_name(model)]
    names.append(f"{role.signed.version}.{role_name(model)}.json")
    buffer = io.BytesIO()
    members = []
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in names:
            data = repo.metadata(name)
            _add(archive, f"metadata/{name}", io.BytesIO(data), len(data))
            members.append(f"metadata/{name}")
        for target in role.signed.targets.values():
            name = f"targets/{repo.stored(target).relative_to(repo.targets_dir).as_posix()}"
            with repo.take(target) as copy, copy.path.open("rb") as handle:
                _add(archive, name, handle, copy.digest.length)
            members.append(name)
    atomic.write_bytes(out, buffer.getvalue())
    return members


@dataclass(frozen=True)
class Member:
    """Where a regular member's bytes lie in the bundle file."""

    offset: int
    size: int


class _Bounded:
    """The bundle file as tarfile sees it: no read past its end and none larger than a header can be.

    The index only ever reads headers (tarfile reads a PAX or GNU long-name header whole, at the
    size the header claims), never member data, so a read over ``MAX_HEADER`` is a hostile header."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self.handle, self.size = handle, size

    def read(self, n: int = -1) -> bytes:
        left = max(self.size - self.handle.tell(), 0)
        if n < 0 or n > left:
            n = left
        if n > MAX_HEADER:
            raise BadBundle(f"a tar header claims {n} bytes (at most {MAX_HEADER})")
        return self.handle.read(n)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        return self.handle.seek(offset, whence)

    def tell(self) -> int:
        return self.handle.tell()


class BadBundle(DownloadError):
    """The offline bundle is not one this reader accepts; the update is refused (client.UpdateRefused)."""


def _checked_name(member: tarfile.TarInfo) -> str:
    name = member.name
    parts = name.split("/")
    if (
        member.type not in (tarfile.REGTYPE, tarfile.AREGTYPE)
        or member.sparse is not None
        or any(key.startswith("GNU.sparse") for key in member.pax_headers)
    ):
        raise BadBundle(f"{name!r}: not a regular, non-sparse file")
    if parts[0] not in ("metadata", "targets") or any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
        raise BadBundle(f"{name!r}: not a plain path under metadata/ or targets/")
    return name


def index(bundle: Path) -> dict[str, Member]:
    """The bundle's members by name, from their headers alone: at most ``MAX_MEMBERS``, each a regular
    non-sparse file under metadata/ or targets/ with a plain path, no name twice, data inside the file."""
    found: dict[str, Member] = {}
    try:
        with bundle.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            with tarfile.open(fileobj=_Bounded(handle, size), mode="r:") as archive:  # type: ignore[call-overload]
                while (member := archive.next()) is not None:
                    if len(found) >= MAX_MEMBERS:
                        raise BadBundle(f"more than {MAX_MEMBERS} members")
                    name = _checked_name(member)
                    if name in found:
                        raise BadBundle(f"{name!r} twice")
                    if member.size < 0 or member.offset_data < 0:  # base-256 fields can be negative
                        raise BadBundle(f"{name!r}: a negative size or offset in its header")
                    if member.offset_data + member.size > size:
                        raise BadBundle(f"{name!r} claims {member.size} bytes past the end of the file")
                    found[name] = Member(member.offset_data, member.size)
                    archive.members.clear()  # the index is ours; tarfile need not keep every header
    except BadBundle as exc:
        raise BadBundle(f"offline bundle {bundle.name}: {exc}") from None
    except (OSError, tarfile.TarError, ValueError, EOFError, UnicodeError) as exc:
        raise BadBundle(f"offline bundle {bundle.name}: not a readable tar ({type(exc).__name__}: {exc})") from exc
    return found


def _stream(bundle: Path, name: str, member: Member) -> Iterator[bytes]:
    """The member's bytes in chunks: the Updater counts them against its length limit as they come."""
    with bundle.open("rb") as handle:
        handle.seek(member.offset)
        left = member.size
        while left > 0:
            chunk = handle.read(min(CHUNK, left))
            if not chunk:
                raise BadBundle(f"{name}: the offline bundle {bundle.name} ends inside it")
            left -= len(chunk)
            yield chunk


class TarFetcher(FetcherInterface):
    """Serves ``offline:///<path>`` from the tar's members; a missing member is a 404, as online.

    Nothing is read before it is bounded: the index reads headers only (``index``), and a member is
    streamed in ``CHUNK``-sized pieces, so python-tuf's max_length stops an oversized one early."""

    def __init__(self, bundle: Path) -> None:
        self.bundle = bundle
        self._index: dict[str, Member] | None = None

    def _fetch(self, url: str) -> Iterator[bytes]:
        if not url.startswith(SCHEME):
            raise DownloadHTTPError(f"{url}: not in the offline bundle", 404)
        name = url.removeprefix(SCHEME)
        if self._index is None:
            self._index = index(self.bundle)
        member = self._index.get(name)
        if member is None:
            raise DownloadHTTPError(f"{name}: not in the offline bundle {self.bundle.name}", 404)
        return _stream(self.bundle, name, member)
