"""runner.wait_listening: returns once a started process listens; fails closed, named, if it dies or never does."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from tasks.core import runner
from tasks.core.errors import ToolError
from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool

PYTHON = Tool("python", "test", Path(sys.executable))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_waits_for_a_real_listener_and_names_one_that_dies(tmp_path: Path) -> None:
    rec, port = StageRecord("test", tmp_path), _free_port()
    serve = f"import socket,time; s=socket.socket(); time.sleep(0.3); s.bind(('127.0.0.1',{port})); s.listen(); time.sleep(9)"  # noqa: E501
    proc = runner.start(rec, PYTHON, ["-c", serve], log=tmp_path / "serve.log")
    try:
        runner.wait_listening(proc, port, "the listener", timeout=10)
    finally:
        runner.stop(proc)
    dead = runner.start(rec, PYTHON, ["-c", "raise SystemExit(3)"], log=tmp_path / "dead.log")
    with pytest.raises(ToolError, match=r"the server did not listen on 127\.0\.0\.1:\d+ \(exited 3\)"):
        runner.wait_listening(dead, _free_port(), "the server", timeout=10)
