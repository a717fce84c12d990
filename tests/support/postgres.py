"""A throwaway PostgreSQL for the storage tests and bench/attest.py: Debian's postgres (tools.lock),
initdb into a temp dir, listening on 127.0.0.1 at a free port and on a unix socket in that dir,
stopped by PID. How it runs (as root: as the package's postgres user; readiness; fast shutdown) is
tasks/network/postgres.py's, which the network's fleet database uses too.

Trust authentication is enough here: only 127.0.0.1 and a socket in a 0700 directory reach it.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from secure_iot_server.database import dispose_engines
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tasks import toolchain
from tasks.core import processes, runner
from tasks.core.errors import ToolError
from tasks.core.evidence import StageRecord
from tasks.core.processes import free_port
from tasks.network import postgres

if TYPE_CHECKING:
    from collections.abc import Iterator

from tests.support.project import REPO

WAIT_S = 30.0


@contextlib.contextmanager
def running_postgres(
    rec: StageRecord | None = None, *, database: str = "fleet", durable: bool = False
) -> Iterator[str]:
    """Yield a SQLAlchemy URL (psycopg) of a fresh, empty database; stop the server by PID after.

    Tests run it without fsync (speed); ``durable`` keeps PostgreSQL's defaults (the benchmark).
    """
    rec = rec or StageRecord(stage="postgres", root=REPO)
    server = toolchain.resolve("postgres", REPO, rec)
    work = Path(tempfile.mkdtemp(prefix="secure-iot-pg-"))
    data, sockets = work / "data", work / "run"
    sockets.mkdir(mode=0o700)
    postgres.hand_over(work, sockets)
    try:
        postgres.initdb(rec, server, data, auth=["--auth=trust"], durable=durable)
        port = free_port()
        tool, args = postgres.as_service_user(
            server, postgres.server_args(data, "127.0.0.1", port, sockets, durable=durable)
        )
        log = work / "postgres.log"
        proc = runner.start(rec, tool, args, log=log)  # setpriv execs: proc.pid is the postmaster
        try:
            processes.wait_until(
                lambda: postgres.is_ready(data),
                lambda: proc.poll() is None,
                timeout=WAIT_S,
                failed=lambda why: ToolError(f"postgres on 127.0.0.1:{port}: {why}: {processes.tail(log, 1)}"),
            )
            url = f"postgresql+psycopg://{postgres.superuser()}@127.0.0.1:{port}/postgres"
            _create_database(url, database)
            yield url.rsplit("/", 1)[0] + f"/{database}"
        finally:
            dispose_engines()
            stopped = processes.stop(proc, grace=postgres.STOP_GRACE_S, sig=postgres.SHUTDOWN)
            rec.details.setdefault("postgres", []).append({"pid": proc.pid, "stopped": stopped})
    finally:
        shutil.rmtree(work, ignore_errors=True)


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
