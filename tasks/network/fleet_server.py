"""The real fleet server (app/, uvicorn over mTLS) on its address in the fleet zone.

It runs as the pipeline's own interpreter inside the fleet namespace (the command and its
settings: tasks/device/server_settings.py) with the trust directory it is given
(``SECURE_IOT_TRUST_DIR``: manufacturer CA, pipeline key, fleet CA) and a server
certificate for its address. Clients are verified against the fleet CA and the operator CAs
of that directory, so a device's certificate gives it the device role and nothing else. Its
database is the fleet zone's PostgreSQL (tasks/network/fleet_db.py, ``SECURE_IOT_DB_URL``; the
app migrates its schema at start), or SQLite in the state directory in a topology without one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tasks.context import Context
from tasks.core import atomic
from tasks.core.errors import NetworkError
from tasks.core.evidence import StageRecord
from tasks.device import operator_crl
from tasks.device.server_settings import ARGV, PYTHON, ServerSettings
from tasks.network.namespaces import start_in, wait_listening
from tasks.network.plan import Plan
from tasks.network.state import Process, State

HOST = "fleet-server"  # the topology's host that runs the real app; every other exposure is a stand-in
START_TIMEOUT = 30.0  # uvicorn's import and TLS set-up on a shared 2-core machine


@dataclass(frozen=True)
class FleetServer:
    """The server's inputs: its trust directory and its TLS identity (a certificate for its address)."""

    trust: Path
    cert: Path
    key: Path

    def as_dict(self) -> dict[str, str]:
        return {"server_trust": str(self.trust), "server_cert": str(self.cert), "server_key": str(self.key)}

    def check(self) -> None:
        for path in (self.trust / "fleet-ca.pem", self.cert, self.key):
            if not path.is_file():
                raise NetworkError(f"{path}: missing (the fleet server's --server-trust, --server-cert, --server-key)")


def client_ca_bundle(trust: Path, out: Path) -> Path:
    """The CAs whose client certificates the server verifies: the fleet CA and the operator CAs."""
    pems = [trust / "fleet-ca.pem", *operator_crl.ca_certificates(trust / "operator-ca")]  # not their CRLs
    atomic.write_text(out, "".join(p.read_text() for p in pems))
    return out


def start(ctx: Context, rec: StageRecord, plan: Plan, state: State, port: int, db_url: str | None) -> Process:
    """The app on its address; ``db_url``: its database (the URL carries the password: environment only)."""
    trust = Path(state.identity["server_trust"])
    directory = Path(state.directory)
    address = str(plan.hosts[HOST].address)
    settings = ServerSettings(
        host=address,
        port=port,
        db_path=directory / "fleet.db",
        trust_dir=trust,
        tls_cert=Path(state.identity["server_cert"]),
        tls_key=Path(state.identity["server_key"]),
        client_ca=client_ca_bundle(trust, directory / "server-client-ca.pem"),
        db_url=db_url,
    )
    env = settings.env(ctx.root / "app" / "src")
    process = start_in(ctx, rec, state, f"{HOST}:{port}", state.namespace("fleet"), PYTHON, list(ARGV), env=env)
    wait_listening(process, "tcp", port, f"the fleet server on {address}:{port}", timeout=START_TIMEOUT)
    state.listeners.append(f"{HOST}:tcp/{port}")
    state.save()
    return process
