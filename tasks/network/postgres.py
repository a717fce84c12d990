"""Debian's PostgreSQL (tools.lock ``postgres``) as a process the project starts itself: the one home
for its mechanics, used by the network's fleet database (tasks/network/fleet_db.py) and by the
tests' throwaway server (tests/support/postgres.py).

initdb and postgres refuse to run as root: as root both run as the ``postgres`` user the Debian
package creates, through ``setpriv``, which execs (unlike ``runuser``, which forks and waits): the
PID the project records is the postmaster itself, so it is stopped by that PID and nothing
stands between. The postmaster writes its status into ``postmaster.pid``; "ready" there is the
readiness check, whatever namespace it listens in. SIGINT is its fast shutdown (sessions
ended, a checkpoint, exit); SIGTERM would wait for every client to leave.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import shutil
import signal
from collections.abc import Sequence
from pathlib import Path

from tasks.core import runner
from tasks.core.errors import ToolError
from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool

SERVICE_USER = "postgres"  # the Debian package's user: who initdb and postgres run as under root
SHUTDOWN = signal.SIGINT  # fast shutdown
STOP_GRACE_S = 10.0  # a checkpoint on a shared machine
READY = "ready"  # postmaster.pid's status line once it accepts connections
SCRAM_ITERATIONS = 4096  # PostgreSQL's own default (scram_iterations)
FAST = ("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")


def beside(server: Tool, name: str) -> Tool:
    """initdb, psql, ...: the binaries the pinned package installs next to postgres (same version)."""
    return Tool(name, server.version, server.path.with_name(name), route=server.route, packages=server.packages)


def superuser() -> str:
    """The database superuser initdb makes: the OS user postgres runs as (peer authentication maps them)."""
    return SERVICE_USER if os.geteuid() == 0 else os.environ.get("USER", SERVICE_USER)


def as_service_user(tool: Tool, args: Sequence[str | Path]) -> tuple[Tool, list[str | Path]]:
    """(tool, args) unchanged, or as root ``setpriv --reuid postgres ... -- <tool> <args>`` (it execs)."""
    if os.geteuid() != 0:
        return tool, list(args)
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise ToolError("postgres refuses root and setpriv (util-linux) is missing: install util-linux")
    ids = ["--reuid", SERVICE_USER, "--regid", SERVICE_USER, "--init-groups"]
    return Tool("setpriv", "system", Path(setpriv), route="system"), [*ids, "--", tool.path, *args]


def hand_over(*paths: Path) -> None:
    """Directories postgres writes into belong to the user it runs as (a no-op unless root)."""
    if os.geteuid() == 0:
        for path in paths:
            shutil.chown(path, SERVICE_USER, SERVICE_USER)


def share_with_group(directory: Path) -> None:
    """A directory of the caller's that postgres must pass through: its group becomes the service
    user's, traverse-only (0710), so no other user gains anything (a no-op unless root)."""
    if os.geteuid() == 0:
        shutil.chown(directory, group=SERVICE_USER)
        directory.chmod(0o710)


def initdb(rec: StageRecord, server: Tool, data: Path, *, auth: Sequence[str], durable: bool) -> None:
    """A new cluster in ``data`` (which must not exist; its parent is the service user's), UTF-8, C locale.

    ``auth``: initdb's --auth* options, the pg_hba.conf it writes; ``durable`` False skips its fsyncs.
    """
    args: list[str | Path] = ["-D", data, "-U", superuser(), *auth, "--encoding=UTF8", "--locale=C"]
    tool, argv = as_service_user(beside(server, "initdb"), [*args, *([] if durable else ["--no-sync"])])
    runner.run(rec, tool, argv, timeout=120)


def server_args(
    data: Path, address: str, port: int, sockets: Path, *, durable: bool, settings: Sequence[str] = ()
) -> list[str | Path]:
    """postgres' command line: one TCP address and port, its unix socket in ``sockets``, extra ``-c``
    settings; without ``durable`` no fsync (tests: speed over crash safety)."""
    fast = [] if durable else list(FAST)
    return ["-D", data, "-h", address, "-p", str(port), "-k", sockets, *fast, *settings]


def is_ready(data: Path) -> bool:
    """The postmaster of ``data`` accepts connections (its postmaster.pid's last line says so)."""
    try:
        lines = (data / "postmaster.pid").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return False
    return len(lines) >= 8 and lines[-1].strip() == READY


def psql(rec: StageRecord, server: Tool, sockets: Path, database: str, sql: str) -> str:
    """Run ``sql`` as the superuser over the unix socket (peer authentication), stopping at the first
    error; the statements go in on stdin, not on the command line `ps` and the evidence show."""
    args: list[str | Path] = [
        "-X",
        "-q",
        "-A",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        sockets,
        "-U",
        superuser(),
        "-d",
        database,
    ]
    tool, argv = as_service_user(beside(server, "psql"), args)
    return runner.run(rec, tool, argv, stdin=sql, timeout=60).stdout


def scram_verifier(password: str, *, iterations: int = SCRAM_ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802/7677, its own format):
    handed to CREATE ROLE instead of the password, so the server, its logs and an error message
    never see the password itself."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    salt_b64, stored_b64, server_b64 = (base64.b64encode(raw).decode() for raw in (salt, stored_key, server_key))
    return f"SCRAM-SHA-256${iterations}:{salt_b64}${stored_b64}:{server_b64}"
