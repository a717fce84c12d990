"""The fleet server as a real process for the benchmarks: ``python -m secure_iot_server`` with the
environment given, ready when ``/readyz`` answers 200, stopped by its PID afterwards."""

from __future__ import annotations

import subprocess  # nosec B404 - starts this repository's own server
import sys
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@contextmanager
def serving(env: dict[str, str], port: int, log: Path, *, timeout: float = 30) -> Iterator[httpx.Client]:
    """A client of the server started with ``env`` on 127.0.0.1:``port``; its output appended to ``log``."""
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "secure_iot_server"], env=env, stdout=out, stderr=out)  # nosec B603
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=timeout) as client:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        if client.get("/readyz").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit(f"the server did not start: {log.read_text()[-400:]}")
                    time.sleep(0.1)
                yield client
        finally:
            proc.terminate()
            proc.wait(10)
