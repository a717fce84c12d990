"""tasks/core/processes.py with real processes: stopped by PID only while the PID runs what was started,
SIGKILL after the grace, the log's tail on one line, and waits that fail closed."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

from tasks.core import processes, runner
from tasks.core.errors import NetworkError
from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool

PYTHON = Tool("python", "test", Path(sys.executable))


def _started(tmp_path: Path, code: str) -> int:
    proc = runner.start(StageRecord("test", tmp_path), PYTHON, ["-c", code], log=tmp_path / "p.log")
    time.sleep(0.3)  # the interpreter is up and has installed its handlers
    return proc.pid


def test_stop_pid_sigterm_then_sigkill_and_never_a_pid_running_something_else(tmp_path: Path) -> None:
    polite = _started(tmp_path, "import time; time.sleep(30)")
    assert processes.alive(polite, Path(sys.executable).name)
    assert processes.stop_pid(polite, "not-what-runs-there") == "not running"  # a recycled PID is left alone
    assert processes.alive(polite)
    assert processes.stop_pid(polite, sys.executable) == "stopped (SIGTERM)"
    assert not processes.alive(polite)

    stubborn = _started(tmp_path, "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(30)")
    assert processes.stop_pid(stubborn, grace=0.3) == "killed (SIGKILL)"
    assert not processes.alive(stubborn)
    assert processes.stop_pid(stubborn) == "not running"


def test_tail_is_one_line_and_says_when_there_is_nothing(tmp_path: Path) -> None:
    log = tmp_path / "daemon.log"
    assert processes.tail(log) == "(no log)"
    log.write_text("")
    assert processes.tail(log) == "(empty log)"
    log.write_text("one\ntwo\nthree\nfour\n")
    assert processes.tail(log) == "two | three | four"
    assert processes.tail(log, lines=1) == "four"


def test_wait_until_names_why_it_gave_up() -> None:
    def failed(why: str) -> Exception:
        return NetworkError(f"daemon {why}")

    processes.wait_until(lambda: True, lambda: True, timeout=1, failed=failed)
    # exited is never ready: what answers on its port then is another process (one that won the bind)
    with pytest.raises(NetworkError, match="daemon exited"):
        processes.wait_until(lambda: True, lambda: False, timeout=5, failed=failed)
    with pytest.raises(NetworkError, match="daemon exited"):
        processes.wait_until(lambda: False, lambda: False, timeout=5, failed=failed)
    started = time.monotonic()
    with pytest.raises(NetworkError, match="daemon timeout"):
        processes.wait_until(lambda: False, lambda: True, timeout=0.2, failed=failed)
    assert time.monotonic() - started < 2


def test_free_port_is_free_and_avoids_what_it_is_told() -> None:
    port = processes.free_port()
    assert not processes.accepts(port)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))  # nobody holds it
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        held = int(listener.getsockname()[1])
        assert processes.accepts(held)
        assert processes.bound_in_namespace(os.getpid(), "tcp", held)
        assert processes.free_port(avoid={held}) != held
