"""A device's calls to the fleet server from its own namespace: update check and telemetry over mTLS.

curl runs inside the device's namespace with the device's enrolled certificate and trusts the
fleet CA for the server; the calls go through the device's IPsec tunnel (its routes send the
fleet zone into ``ipsec0``), so they are mTLS inside IPsec, and the flow report sees them on
the edge's decrypted side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tasks.context import Context
from tasks.core.errors import NetworkError
from tasks.core.evidence import StageRecord
from tasks.network.fleet_server import HOST
from tasks.network.namespaces import run_in
from tasks.network.plan import Plan
from tasks.network.port_access import Credentials
from tasks.network.state import State

TIMEOUT = 10
CONNECT_TIMEOUT = 3  # a dropped SYN (plaintext to the fleet) is a refusal: no need to wait out TIMEOUT


@dataclass(frozen=True)
class Call:
    endpoint: str
    status: int  # the HTTP status; 0 when no answer came (refused, dropped, TLS failed)
    body: str


def _port(plan: Plan) -> int:
    port = next((e.port for e in plan.exposure if e.host == HOST and e.proto == "tcp"), None)
    if port is None:
        raise NetworkError(f"infra/network/topology.toml declares no tcp exposure for {HOST}")
    return port


def _call(
    ctx: Context, rec: StageRecord, state: State, namespace: str, creds: Credentials, url: str, data: str | None = None
) -> tuple[int, str]:
    args: list[str | Path] = [
        "--silent",
        "--show-error",
        "--max-time",
        str(TIMEOUT),
        "--connect-timeout",
        str(CONNECT_TIMEOUT),
        "--cacert",
        state.identity["ca"],
        "--cert",
        creds.cert,
        "--key",
        creds.key,
        "--write-out",
        "\n%{http_code}",
    ]
    if data is not None:
        args += ["--json", data]
    done = run_in(ctx, rec, namespace, "curl", [*args, url], check=False, timeout=TIMEOUT + 10)
    if done.returncode != 0:
        return 0, (done.stderr.strip() or done.stdout.strip())[-300:]
    body, _, code = done.stdout.rpartition("\n")
    return int(code), body


def check_in(
    ctx: Context, rec: StageRecord, plan: Plan, state: State, name: str, creds: Credentials, security_version: int = 0
) -> list[Call]:
    """The device's update check and telemetry, as it would make them in the field."""
    device = state.device(name)
    if device is None:
        raise NetworkError(f"device {name} is not attached; run `network -- attach {name}` first")
    for path in (creds.cert, creds.key):
        if not path.is_file():
            raise NetworkError(f"{path}: missing (the device's enrolled certificate and key)")
    base = f"https://{plan.hosts[HOST].address}:{_port(plan)}"
    update = f"{base}/updates/check?security_version={security_version}"
    telemetry = json.dumps({"uptime_s": 60, "firmware_version": "1.0.0"})
    return [
        Call("GET /updates/check", *_call(ctx, rec, state, device.namespace, creds, update)),
        Call("POST /telemetry", *_call(ctx, rec, state, device.namespace, creds, f"{base}/telemetry", telemetry)),
    ]
