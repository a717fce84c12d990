"""Watch a directory with the kernel's inotify (libc through ctypes) and record each file's mode as it
appears: how a test sees whether a secret was ever at its path with a wider mode than its final one."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import stat
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

IN_ATTRIB = 0x00000004
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
EVENT = struct.Struct("iIII")  # wd, mask, cookie, len; then the name, NUL-padded
NAMES = {IN_ATTRIB: "attrib", IN_MOVED_TO: "moved_to", IN_CREATE: "create"}


@dataclass
class Seen:
    """Every event on the directory in order, as (what, name, mode when stat-ed right on the event or None)."""

    events: list[tuple[str, str, int | None]] = field(default_factory=list)

    def modes(self, name: str) -> set[int]:
        return {mode for _, n, mode in self.events if n == name and mode is not None}

    def changed_after_it_appeared(self, name: str) -> bool:
        """An attribute change at ``name`` once it was there: it was visible with another mode first."""
        appeared = False
        for what, n, _ in self.events:
            if n != name:
                continue
            if what in ("create", "moved_to"):
                appeared = True
            elif what == "attrib" and appeared:
                return True
        return False


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


@contextmanager
def watching(directory: Path) -> Iterator[Seen]:
    """Record create, moved-to and attribute events in ``directory`` while the body runs."""
    libc = _libc()
    fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1")
    if libc.inotify_add_watch(fd, os.fsencode(directory), IN_CREATE | IN_MOVED_TO | IN_ATTRIB) < 0:
        os.close(fd)
        raise OSError(ctypes.get_errno(), f"inotify_add_watch {directory}")
    seen, done = Seen(), threading.Event()

    def drain() -> None:
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        offset = 0
        while offset < len(data):
            _, mask, _, length = EVENT.unpack_from(data, offset)
            name = data[offset + EVENT.size : offset + EVENT.size + length].rstrip(b"\0").decode()
            offset += EVENT.size + length
            try:
                mode: int | None = stat.S_IMODE(os.lstat(directory / name).st_mode)
            except FileNotFoundError:
                mode = None
            for bit, what in NAMES.items():
                if mask & bit:
                    seen.events.append((what, name, mode))

    def loop() -> None:
        while not done.is_set():
            if select.select([fd], [], [], 0.05)[0]:
                drain()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        done.set()
        thread.join()
        drain()  # what the kernel queued after the loop's last read
        os.close(fd)
