"""A static HTTP server for the repository on 127.0.0.1, on a port the kernel picks, stopped by PID.

Python's own http.server (the interpreter running the pipeline), started as a managed background
process; its first line names the port. Plain HTTP on loopback: TUF's signatures, not the
transport, protect the metadata and targets (mTLS for enrolled devices is left for later).
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tasks.core import runner
from tasks.core.errors import ToolError
from tasks.core.evidence import StageRecord

PYTHON = runner.Tool("python3", f"{sys.version_info.major}.{sys.version_info.minor}", Path(sys.executable), "host")
SERVING = re.compile(r"Serving HTTP on 127\.0\.0\.1 port (\d+)")


@contextmanager
def serve(rec: StageRecord, directory: Path, log: Path, *, timeout: float = 10.0) -> Iterator[str]:
    """Yields the base URL of ``directory``; the server is stopped by its PID on exit."""
    log.unlink(missing_ok=True)
    proc = runner.start(rec, PYTHON, ["-u", "-m", "http.server", "--bind", "127.0.0.1", "--directory", directory, "0"],
                        log=log)  # fmt: skip
    (log.parent / "server.pid").write_text(f"{proc.pid}\n")
    try:
        deadline = time.monotonic() + timeout
        port = None
        while port is None:
            found = SERVING.search(log.read_text() if log.exists() else "")
            if found:
                port = int(found.group(1))
            elif proc.poll() is not None or time.monotonic() > deadline:
                raise ToolError(
                    f"the repository server did not start: {log.read_text()[-300:] if log.exists() else ''}"
                )
            else:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        rec.details.setdefault("servers", []).append(runner.stop(proc))
