"""processes.wait_listening: returns once a started process listens; fails closed, named, if it dies or never does."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tasks.core import processes, runner
from tasks.core.errors import ToolError
from tasks.core.evidence import StageRecord
from tasks.core.processes import free_port
from tasks.core.runner import Tool

PYTHON = Tool("python", "test", Path(sys.executable))


def test_waits_for_a_real_listener_and_names_one_that_dies(tmp_path: Path) -> None:
    rec, port = StageRecord("test", tmp_path), free_port()
    serve = f"import socket,time; s=socket.socket(); time.sleep(0.3); s.bind(('127.0.0.1',{port})); s.listen(); time.sleep(9)"  # noqa: E501
    proc = runner.start(rec, PYTHON, ["-c", serve], log=tmp_path / "serve.log")
    try:
        processes.wait_listening(proc, port, "the listener", timeout=10)
    finally:
        processes.stop(proc)
    dead = runner.start(rec, PYTHON, ["-c", "raise SystemExit(3)"], log=tmp_path / "dead.log")
    with pytest.raises(ToolError, match=r"the server did not listen on 127\.0\.0\.1:\d+ \(exited 3\)"):
        processes.wait_listening(dead, free_port(), "the server", timeout=10)
