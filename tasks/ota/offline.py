"""The offline update bundle: one uncompressed tar for a USB stick or a technician's laptop.

It holds the TUF metadata chain (every root version, the current timestamp, snapshot, targets
and the model's role) and the model's target file, under the same paths as the online
repository. The device reads it through ``TarFetcher``, a python-tuf fetcher: the ngclient
Updater and RAUC run exactly as online, so the same checks hold (an expired timestamp in an old
bundle is a freeze, refused).
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

from tuf.api.exceptions import DownloadHTTPError
from tuf.ngclient import FetcherInterface

from tasks.core import atomic
from tasks.ota.repository import Repository, role_name

SCHEME = "offline:///"
METADATA_URL = f"{SCHEME}metadata/"
TARGETS_URL = f"{SCHEME}targets/"


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    archive.addfile(info, io.BytesIO(data))


def write(repo: Repository, model: str, out: Path) -> list[str]:
    """``out``: the chain for ``model`` and its current target. Returns the member names."""
    meta = repo.metadata_dir
    names = sorted(p.name for p in meta.glob("*.root.json"))
    names.append("timestamp.json")
    names.append(f"{repo.snapshot.signed.version}.snapshot.json")
    names.append(f"{repo.targets.signed.version}.targets.json")
    role = repo.roles[role_name(model)]
    names.append(f"{role.signed.version}.{role_name(model)}.json")
    buffer = io.BytesIO()
    members = []
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name in names:
            _add(archive, f"metadata/{name}", (meta / name).read_bytes())
            members.append(f"metadata/{name}")
        for target in role.signed.targets.values():
            stored = repo.stored(target)
            name = f"targets/{stored.relative_to(repo.targets_dir).as_posix()}"
            _add(archive, name, stored.read_bytes())
            members.append(name)
    atomic.write_bytes(out, buffer.getvalue())
    return members


class TarFetcher(FetcherInterface):
    """Serves ``offline:///<path>`` from the tar's members; a missing member is a 404, as online."""

    def __init__(self, bundle: Path) -> None:
        self.bundle = bundle

    def _fetch(self, url: str) -> Iterator[bytes]:
        if not url.startswith(SCHEME):
            raise DownloadHTTPError(f"{url}: not in the offline bundle", 404)
        name = url.removeprefix(SCHEME)
        with tarfile.open(self.bundle, mode="r:") as archive:
            try:
                member = archive.getmember(name)
            except KeyError:
                raise DownloadHTTPError(f"{name}: not in the offline bundle {self.bundle.name}", 404) from None
            handle = archive.extractfile(member) if member.isfile() else None
            if handle is None:
                raise DownloadHTTPError(f"{name}: not a file in the offline bundle", 404)
            data = handle.read()
        return iter([data])
