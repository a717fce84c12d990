"""The pinned toolchain: tools.lock's model, resolution through its routes, the tool cache.

Knows no stage. `resolve(name, root)` is the one entry point; one module per install route.
"""

from __future__ import annotations

from tasks.toolchain.lock import Pin, current_platform, load
from tasks.toolchain.resolve import bin_dir, install, lock_path, put_first_on_path, resolve

__all__ = ["Pin", "bin_dir", "current_platform", "install", "load", "lock_path", "put_first_on_path", "resolve"]
