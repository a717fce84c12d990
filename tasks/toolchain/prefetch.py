"""Build the pipeline's source-built tools in the background while the stages before them run.

A cold machine builds five Go tools for the default pipeline (gosec, opa, regal, grype, cosign:
~520 s on 2 cores one after the other). A stage that needs one waits for it, and while it waits
the machine's second core and its network sit idle; the stages before it (bandit and semgrep,
the Debian root and the image build, the SBOMs) barely use the CPU. So the pipeline starts
`python -m tasks tools --jobs 2 <names>` (the `tools` stage, the one way tools are installed: its
commands and their outcome go into the evidence as any `nox -s tools`) as a child process at its
start, with its output in out/tools/prefetch.log. A stage that needs a tool still resolves it
itself: the per-tool install lock makes it wait for a build under way (it says so) and then find
it in the cache, its sha256 checked as always. The child is stopped by PID when the pipeline ends
(a failed stage does not leave builds running). Nothing is prefetched when every tool is cached.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

from tasks.core import processes
from tasks.core.console import console
from tasks.toolchain.lock import load
from tasks.toolchain.resolve import lock_path
from tasks.toolchain.store import RECEIPT, entry_dir

PR_SET_PDEATHSIG = 1
JOBS = 2  # two builds at once: one compiles while the other downloads or links


def missing(root: Path, names: Sequence[str]) -> list[str]:
    """The tools of ``names`` with no cache entry yet (the receipt alone: sha256 is checked on use)."""
    pins = load(lock_path(root))
    return [n for n in dict.fromkeys(names) if n in pins and not (entry_dir(pins[n]) / RECEIPT).is_file()]


def _die_with_parent() -> None:
    """In the child: SIGTERM when the pipeline dies, even by SIGKILL (Linux prctl PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


@contextlib.contextmanager
def background(root: Path, out: Path, names: Sequence[str]) -> Iterator[subprocess.Popen[bytes] | None]:
    """Install ``names`` in a child process for as long as the block runs; stop it at the end."""
    wanted = missing(root, names)
    if not wanted:
        yield None
        return
    log = out / "tools" / "prefetch.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)  # a link planted in out/ is replaced, not written through
    console.print(f"  building in the background: {', '.join(wanted)} (log: {log.relative_to(out.parent)})")
    with log.open("wb") as handle:
        child = subprocess.Popen(
            [sys.executable, "-m", "tasks", "tools", "--jobs", str(JOBS), *wanted],
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],  # where `python -m tasks` is importable
            env={**os.environ, "SECURE_IOT_ROOT": str(root), "COLUMNS": "160"},
            start_new_session=True,  # its own process group: stopped with its go builds
            preexec_fn=_die_with_parent,  # one prctl call in the child, no lock taken
        )
    try:
        yield child
    finally:
        processes.stop(child, grace=10.0, group=True)  # with its go builds, which share its group
