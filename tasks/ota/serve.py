"""The update repository on 127.0.0.1, on a port the kernel picks, stopped by PID.

Plain: Python's own http.server (the interpreter running the pipeline). With ``ServerTls``: HTTPS
for enrolled, unrevoked devices only - uvicorn (the fleet server's ASGI server) running
tasks/ota/repository_app.py over the directory (tasks/ota/repository_server.py), requiring a
client certificate from the fleet CA that issues device certificates at registration (#14) and
not on the fleet CA's current CRL (tasks/device/revocations.py keeps it fresh): a device without one, or a
quarantined one, fails the handshake and gets no metadata at all. TUF's signatures still protect
the content; mTLS decides who may even see which releases exist. The first line naming the port
is awaited.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tasks.core import processes, runner
from tasks.core.errors import ToolError
from tasks.core.evidence import StageRecord

PYTHON = runner.Tool("python3", f"{sys.version_info.major}.{sys.version_info.minor}", Path(sys.executable), "host")
SERVING = re.compile(r"Serving HTTP on 127\.0\.0\.1 port (\d+)|Uvicorn running on https://127\.0\.0\.1:(\d+)")
ROOT = Path(__file__).resolve().parents[2]  # the checkout whose tasks/ package the server imports


@dataclass(frozen=True)
class ServerTls:
    """The server's certificate and key, the CA whose certificates are the enrolled devices', and that
    CA's CRL (PEM; read again whenever the file changes)."""

    cert: Path
    key: Path
    client_ca: Path
    crl: Path


def _command(directory: Path, tls: ServerTls | None) -> list[str | Path]:
    if tls is None:
        return ["-u", "-m", "http.server", "--bind", "127.0.0.1", "--directory", directory, "0"]
    return ["-u", "-m", "tasks.ota.repository_server", tls.cert, tls.key, tls.client_ca, tls.crl]


@contextmanager
def serve(
    rec: StageRecord, directory: Path, log: Path, *, tls: ServerTls | None = None, timeout: float = 15.0
) -> Iterator[str]:
    """Yields the base URL of ``directory``; the server is stopped by its PID on exit."""
    log.unlink(missing_ok=True)
    env = {"SECURE_IOT_OTA_REPOSITORY": str(directory.resolve()), "PYTHONPATH": str(ROOT)}
    proc = runner.start(rec, PYTHON, _command(directory, tls), log=log, env=env)
    (log.parent / "server.pid").write_text(f"{proc.pid}\n")
    try:
        serving: list[int] = []

        def announced() -> bool:
            found = SERVING.search(log.read_text() if log.exists() else "")
            serving.extend([int(found.group(1) or found.group(2))] if found else [])
            return bool(serving)

        def failed(why: str) -> Exception:
            return ToolError(f"the repository server did not start ({why}): {processes.tail(log)}")

        processes.wait_until(announced, lambda: proc.poll() is None, timeout=timeout, failed=failed)
        port = serving[0]
        yield f"{'http' if tls is None else 'https'}://127.0.0.1:{port}"
    finally:
        rec.details.setdefault("servers", []).append(processes.stop(proc))
