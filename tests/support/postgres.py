"""A throwaway PostgreSQL for the storage tests and bench/attest.py: Debian's postgres (tools.lock),
initdb into a temp dir, listening on 127.0.0.1 at a free port and on a unix socket in that dir,
stopped by PID.

initdb and postgres refuse to run as root: as root both run as the `postgres` user the Debian
package creates (runuser), and the data dir is handed to that user. Trust authentication is
enough: only 127.0.0.1 and a socket in a 0700 directory reach it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess  # nosec B404 - only its TimeoutExpired; processes go through tasks.core.runner
import tempfile
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
from secure_iot_server.database import dispose_engines
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tasks import toolchain
from tasks.core import processes, runner
from tasks.core.errors import ToolError
from tasks.core.evidence import StageRecord
from tasks.core.processes import free_port
from tasks.core.runner import Tool

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

from tests.support.project import REPO

SERVICE_USER = "postgres"
WAIT_S = 30.0


def _as_service_user(tool: Tool, args: Sequence[str | Path]) -> tuple[Tool, list[str | Path]]:
    """(tool, args) unchanged, or as root `runuser -u postgres -- <tool> <args>`."""
    if os.geteuid() != 0:
        return tool, list(args)
    runuser = shutil.which("runuser")
    if runuser is None:
        raise ToolError("postgres refuses root and runuser (util-linux) is missing")
    return Tool("runuser", "system", Path(runuser), route="system"), ["-u", SERVICE_USER, "--", tool.path, *args]


@contextlib.contextmanager
def running_postgres(
    rec: StageRecord | None = None, *, database: str = "fleet", durable: bool = False
) -> Iterator[str]:
    """Yield a SQLAlchemy URL (psycopg) of a fresh, empty database; stop the server by PID after.

    Tests run it without fsync (speed); ``durable`` keeps PostgreSQL's defaults (the benchmark).
    """
    rec = rec or StageRecord(stage="postgres", root=REPO)
    server = toolchain.resolve("postgres", REPO, rec)
    initdb = Tool("initdb", server.version, server.path.with_name("initdb"), route=server.route)
    work = Path(tempfile.mkdtemp(prefix="secure-iot-pg-"))
    data, sockets = work / "data", work / "run"
    sockets.mkdir(mode=0o700)
    if os.geteuid() == 0:
        shutil.chown(work, SERVICE_USER)
        shutil.chown(sockets, SERVICE_USER)
    user = _user()
    try:
        tool, args = _as_service_user(
            initdb, ["-D", data, "-U", user, "--auth=trust", "--no-sync", "--encoding=UTF8", "--locale=C"]
        )
        runner.run(rec, tool, args, timeout=120)
        port = free_port()
        fast = ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        settings = [] if durable else fast
        tool, args = _as_service_user(
            server, ["-D", data, "-h", "127.0.0.1", "-p", str(port), "-k", sockets, *settings]
        )
        proc = runner.start(rec, tool, args, log=work / "postgres.log")
        try:
            _wait_ready(proc.poll, port, work / "postgres.log")
            url = f"postgresql+psycopg://{user}@127.0.0.1:{port}/postgres"
            _create_database(url, database)
            yield url.rsplit("/", 1)[0] + f"/{database}"
        finally:
            dispose_engines()
            # SIGINT is postgres' fast shutdown (SIGTERM, processes.stop's, waits for clients to leave).
            # runuser does not pass SIGINT on, so it goes to the postmaster we started, by the PID
            # it wrote into its data dir; processes.stop then reaps runuser (or stops what is left).
            postmaster = data / "postmaster.pid"
            if proc.poll() is None and postmaster.is_file():
                os.kill(int(postmaster.read_text().split()[0]), signal.SIGINT)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(10)
            rec.details.setdefault("postgres", []).append({"pid": proc.pid, "stopped": processes.stop(proc, grace=10)})
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _wait_ready(poll: Callable[[], int | None], port: int, log: Path) -> None:
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            with psycopg.connect(host="127.0.0.1", port=port, dbname="postgres", user=_user(), connect_timeout=2):
                return
        except psycopg.OperationalError:
            pass
        exited = poll()
        if exited is not None or time.monotonic() > deadline:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
            raise ToolError(f"postgres did not accept connections on 127.0.0.1:{port} (exit {exited}): {tail}")
        time.sleep(0.1)


def _user() -> str:
    """The database superuser initdb makes: the OS user postgres runs as."""
    return SERVICE_USER if os.geteuid() == 0 else os.environ.get("USER", "postgres")


def _create_database(url: str, name: str) -> None:
    engine = create_engine(url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))  # name: this module's own constant, not input
    engine.dispose()


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new empty database on a running server (one per test), dropped after it."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    _create_database(server_url, name)
    try:
        yield server_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        dispose_engines()
        engine = create_engine(server_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))  # name made above, not input
        engine.dispose()
