"""The device's root filesystem as a directory tree: the initramfs (cpio newc, gzip) unpacked.

For tools that read a root filesystem (OpenSCAP's oscap-chroot). Regular files, directories
and symbolic links only (device nodes are skipped: nothing reads them and creating them needs
privileges); every name must stay inside the target directory, and links are created, never
followed.
"""

from __future__ import annotations

import gzip
import stat
from pathlib import Path, PurePosixPath

from tasks.core.errors import InputError

MAGIC = b"070701"
HEADER = 110  # magic + 13 fields of 8 hex digits


def _pad(offset: int) -> int:
    return offset + (-offset % 4)


def unpack_initramfs(archive: Path, target: Path) -> int:
    """Unpack ``archive`` into the empty directory ``target``; returns the number of entries written."""
    try:
        data = gzip.decompress(archive.read_bytes())
    except (OSError, EOFError) as exc:
        raise InputError(f"{archive}: not a gzip-compressed initramfs ({exc})") from exc
    target.mkdir(parents=True, exist_ok=True)
    offset, written = 0, 0
    while True:
        head = data[offset : offset + HEADER]
        if len(head) < HEADER or head[:6] != MAGIC:
            raise InputError(f"{archive}: not a cpio newc archive at byte {offset}")
        fields = [int(head[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name = data[offset + HEADER : offset + HEADER + namesize - 1].decode()
        offset = _pad(offset + HEADER + namesize)
        body = data[offset : offset + size]
        offset = _pad(offset + size)
        if name == "TRAILER!!!":
            return written
        relative = PurePosixPath(name)
        if relative.is_absolute() or ".." in relative.parts:
            raise InputError(f"{archive}: entry {name!r} points outside the root filesystem")
        path = target / relative
        if stat.S_ISDIR(mode):
            path.mkdir(parents=True, exist_ok=True)
        elif stat.S_ISLNK(mode):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.symlink_to(body.decode())
        elif stat.S_ISREG(mode):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
            path.chmod(stat.S_IMODE(mode))
        else:
            continue  # device nodes, fifos
        written += 1
