"""Wheel-shipped tools: each in its own virtualenv in the cache, from its hash lock."""

from __future__ import annotations

import re
import shutil
import sys
from importlib import metadata
from pathlib import Path

from tasks.core import atomic, runner
from tasks.core.errors import ToolError
from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool
from tasks.toolchain.lock import Pin
from tasks.toolchain.store import RouteUnavailable, entry_dir, store


def via_pypi(pin: Pin, rec: StageRecord, scratch: Path, root: Path) -> Tool:
    """A wheel-shipped tool gets its own virtualenv in the cache, from its hash lock."""
    if pin.pypi is None:
        raise RouteUnavailable("no pypi route pinned")
    lock = root / pin.pypi.lock
    if not lock.is_file():
        raise ToolError(f"{pin.name}: {lock} is missing; run `nox -s lock`")
    venv = entry_dir(pin) / "venv"
    shutil.rmtree(venv, ignore_errors=True)
    # uv (hash-locked in requirements/lock.txt, beside this interpreter): a virtualenv and a
    # --require-hashes install in ~2 s where venv + pip took ~25 s for semgrep on a cold machine
    uv = Tool("uv", "session", Path(sys.executable).parent / "uv", route="system")
    if not uv.path.is_file():
        raise ToolError(f"uv is not beside {sys.executable}: run the session through nox (requirements/lock.txt)")
    # --no-config: no uv.toml or [tool.uv] of the tree under test (or above it) redirects the install;
    # --no-build: wheels only, so nothing unhashed (an sdist's build backend) ever runs
    runner.run(rec, uv, ["venv", "--quiet", "--no-config", "--python", sys.executable, venv], timeout=300)
    try:
        runner.run(
            rec,
            uv,
            [
                "pip",
                "install",
                "--quiet",
                "--no-config",
                "--no-build",
                "--python",
                venv / "bin" / "python",
                "--require-hashes",
                "--no-deps",
                "-r",
                lock,
            ],
            timeout=1800,
        )
    except ToolError as exc:
        raise RouteUnavailable(str(exc)) from exc
    installed = metadata.distributions(path=[str(p) for p in venv.glob("lib/python*/site-packages")])
    versions = {_normal(d.metadata["Name"]): d.version for d in installed}
    if versions.get(_normal(pin.pypi.package)) != pin.version:
        raise ToolError(
            f"{pin.name}: {lock} installs {pin.pypi.package} {versions.get(_normal(pin.pypi.package))}, "
            f"tools.lock pins {pin.version}; make them agree"
        )
    shim = scratch / pin.binary
    shim.symlink_to(venv / "bin" / pin.binary)
    return store(
        pin, shim, "pypi", f"{pin.pypi.package}=={pin.version} ({pin.pypi.lock})", lock_sha256=atomic.sha256_file(lock)
    )


def _normal(name: str) -> str:
    """PEP 503 name normalization."""
    return re.sub(r"[-_.]+", "-", name).lower()
