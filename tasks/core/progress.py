"""Live status for a long command: a spinner with elapsed time on a terminal, plain lines in CI.

runner.run() wraps every captured command in watch(), so Go builds, the root filesystem, image
and firmware builds, QEMU boots and downloads all show that they are alive, without each stage
asking for it. On a terminal the status line is transient (it leaves no trace in the scrollback);
elsewhere (CI logs, a pipe) one line every PLAIN_EVERY seconds says what is still running.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator

from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from tasks.core.console import console

PLAIN_EVERY = 30.0


def live() -> bool:
    return console.is_terminal and not os.environ.get("CI")


@contextlib.contextmanager
def watch(label: str, *, every: float = PLAIN_EVERY) -> Iterator[None]:
    if live():
        columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            progress.add_task(escape(label), total=None)
            yield
        return
    stop = threading.Event()
    t0 = time.monotonic()

    def heartbeat() -> None:
        while not stop.wait(every):
            print(f"  … {label}: still running ({time.monotonic() - t0:.0f}s)", file=sys.stderr, flush=True)

    thread = threading.Thread(target=heartbeat, name="progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
