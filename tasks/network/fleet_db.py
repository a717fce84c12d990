"""The fleet database: a real PostgreSQL (tasks/network/postgres.py) on the fleet-db address in the
fleet zone, the fleet server's storage.

Its data directory, unix socket and password file live in the network's state directory and
are removed by ``down``. It listens on its declared address and port only; pg_hba.conf is
written from the topology: the exposure's ``clients`` (the fleet server's address, /32) may log
in as the app's role to the app's database with scram-sha-256, and the superuser only over the
unix socket (a 0700 directory, peer authentication), for the set-up and an operator.

The app's password: 32 random bytes (``secrets.token_urlsafe``) written once to a 0600 file in
the state directory and handed to the fleet server in ``SECURE_IOT_DB_URL`` (its environment,
readable by root only); PostgreSQL is given only its SCRAM verifier; it is never printed nor
put on a command line.
"""

from __future__ import annotations

import ipaddress
import secrets
import shutil
from pathlib import Path

from tasks.context import Context
from tasks.core import atomic
from tasks.core.checks import Check
from tasks.core.errors import NetworkError
from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool
from tasks.network import postgres
from tasks.network.namespaces import ip, start_in, wait_ready
from tasks.network.plan import Exposure, Plan
from tasks.network.state import Process, State

HOST = "fleet-db"
DATABASE = "fleet"
ROLE = "fleet"  # the app's role: owns its database (the app migrates its schema), nothing else
START_TIMEOUT = 60.0  # a checkpoint-free start, but a shared 2-core machine


def data_dir(state: State) -> Path:
    return Path(state.directory) / "fleet-db"


def socket_dir(state: State) -> Path:
    """The superuser's way in: a unix socket in a directory only the service user can enter."""
    return Path(state.directory) / "fleet-db-run"


def password_file(state: State) -> Path:
    return Path(state.directory) / "fleet-db.password"


def hba(clients: list[ipaddress.IPv4Address]) -> str:
    """pg_hba.conf: the superuser over the socket (peer), the app's role from its clients' addresses only."""
    lines = ["# tasks/network/fleet_db.py, from infra/network/topology.toml: nothing else may connect"]
    lines.append(f"local\tall\t{postgres.superuser()}\t\tpeer")
    lines += [f"host\t{DATABASE}\t{ROLE}\t{address}/32\tscram-sha-256" for address in clients]
    return "\n".join(lines) + "\n"


def url(plan: Plan, state: State, exposure: Exposure) -> str:
    """The fleet server's SECURE_IOT_DB_URL (psycopg 3), with the password from its 0600 file."""
    password = password_file(state).read_text(encoding="utf-8").strip()
    address = plan.hosts[HOST].address
    return f"postgresql+psycopg://{ROLE}:{password}@{address}:{exposure.port}/{DATABASE}"


def start(ctx: Context, rec: StageRecord, plan: Plan, state: State, exposure: Exposure) -> Process:
    """initdb, pg_hba from the topology, postgres on the fleet-db address only, then the app's role and
    database. Fails closed on what an earlier run left (a data directory ``down`` did not remove)."""
    data, sockets = data_dir(state), socket_dir(state)
    if data.exists():
        raise NetworkError(
            f"{data}: left by an earlier run; check no postgres runs on it (pgrep -af {data}), then remove it"
        )
    clients = [plan.hosts[c].address for c in exposure.clients]
    if not clients:
        raise NetworkError(f"infra/network/topology.toml: exposure {HOST} tcp/{exposure.port} names no clients")
    _reachable(Path(state.directory))
    server = ctx.tool("postgres")
    for directory in (data, sockets):
        directory.mkdir(mode=0o700, exist_ok=True)  # initdb takes an empty directory its user owns
    postgres.hand_over(data, sockets)
    postgres.initdb(rec, server, data, auth=["--auth-local=peer", "--auth-host=reject"], durable=True)
    atomic.write_text(data / "pg_hba.conf", hba(clients), mode=0o600)
    postgres.hand_over(data / "pg_hba.conf")
    _source_address(ctx, rec, plan, state)
    process = _launch(ctx, rec, plan, state, server, exposure.port)
    _create_role(rec, server, state)
    state.listeners.append(f"{HOST}:tcp/{exposure.port}")
    state.save()
    return process


def _reachable(directory: Path) -> None:
    """The service user must enter the state directory to reach its data directory: every directory
    above it lets others traverse it (fail closed, naming the one that does not); the state
    directory itself is opened to the service user's group only (0710)."""
    for ancestor in reversed(directory.parents):
        if not ancestor.stat().st_mode & 0o001:
            raise NetworkError(
                f"{ancestor}: the {postgres.SERVICE_USER} user cannot enter it (mode "
                f"{ancestor.stat().st_mode & 0o777:o}); use a --state under directories others may traverse"
            )
    postgres.share_with_group(directory)


def _source_address(ctx: Context, rec: StageRecord, plan: Plan, state: State) -> None:
    """Both fleet hosts' addresses sit in the one fleet namespace: a connection between them takes its
    source from the local route, so that route names the fleet server's address (what pg_hba admits)."""
    db, server = plan.hosts[HOST].address, plan.hosts["fleet-server"].address
    ns = state.namespace("fleet")
    route = ["route", "replace", "local", str(db), "dev", "eth0", "table", "local", "proto", "kernel"]
    ip(ctx, rec, ["-n", ns, *route, "scope", "host", "src", str(server)])


def _launch(ctx: Context, rec: StageRecord, plan: Plan, state: State, server: Tool, port: int) -> Process:
    """postgres in the fleet namespace, recorded by PID with its fast shutdown, waited for until ready."""
    data, address = data_dir(state), str(plan.hosts[HOST].address)
    settings = ["-c", "log_connections=on", "-c", "password_encryption=scram-sha-256"]
    args = postgres.server_args(data, address, port, socket_dir(state), durable=True, settings=settings)
    tool, argv = postgres.as_service_user(server, args)
    process = start_in(
        ctx,
        rec,
        state,
        f"postgres:{HOST}",
        state.namespace("fleet"),
        tool,
        argv,
        becomes=server,
        stop_signal=postgres.SHUTDOWN,
        stop_grace=postgres.STOP_GRACE_S,
    )
    wait_ready(lambda: postgres.is_ready(data), process, f"postgres on {address}:{port}", timeout=START_TIMEOUT)
    return process


def _create_role(rec: StageRecord, server: Tool, state: State) -> None:
    """The app's role (login, its SCRAM verifier only) and its database, owned by it; the password file first."""
    password = secrets.token_urlsafe(32)  # URL-safe: it goes into SECURE_IOT_DB_URL unquoted
    atomic.write_secret(password_file(state), password + "\n")
    verifier = postgres.scram_verifier(password)
    sql = f"CREATE ROLE {ROLE} LOGIN PASSWORD '{verifier}';\nCREATE DATABASE {DATABASE} OWNER {ROLE};\n"
    postgres.psql(rec, server, socket_dir(state), "postgres", sql)


def remove(state: State) -> Check:
    """After its process was stopped: the data directory, the socket directory and the password go.

    A postmaster.pid still there means postgres did not shut down: everything is left for a look.
    """
    data = data_dir(state)
    if (data / "postmaster.pid").exists():
        return Check("fleet database removed", False, f"{data}/postmaster.pid: postgres did not shut down")
    for directory in (data, socket_dir(state)):
        shutil.rmtree(directory, ignore_errors=True)
    password_file(state).unlink(missing_ok=True)
    left = [str(p) for p in (data, socket_dir(state), password_file(state)) if p.exists()]
    return Check("fleet database removed", not left, ", ".join(left) or "data, socket and password gone")
