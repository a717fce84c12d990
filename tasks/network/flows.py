"""The flow report: every flow a device sent through the edge, per device, each explained by an
allow rule or flagged (a device scanning its neighbours, talking to an unknown port, ...)."""

from __future__ import annotations

import csv
import io
import ipaddress
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tasks.context import Context
from tasks.core import runner
from tasks.core.errors import NetworkError
from tasks.core.evidence import StageRecord
from tasks.network import ruleset
from tasks.network.namespaces import stop
from tasks.network.plan import Plan
from tasks.network.state import State
from tasks.network.topology import FLOW_STORE, PROBES, TUNNEL_FLOW_STORE, start_probe

PROTOCOLS = {"TCP": "tcp", "UDP": "udp", "ICMP": "icmp"}


@dataclass(frozen=True)
class Flow:
    source: str
    target: str
    proto: str
    port: int
    packets: int
    octets: int
    first: str
    device: str  # the attached device that sent it
    target_zone: str
    allowed_by: str  # the allow rule, or "" when the allow-list does not explain it
    seen: str = "device LAN"  # or "tunnel": on the edge's fleet side, decrypted


def rotate(ctx: Context, rec: StageRecord, state: State) -> None:
    """Close the probes' current flow files (nfpcapd writes them out on SIGTERM) and start new probes."""
    for role in PROBES:
        probe = next((p for p in state.processes if p.role == role), None)
        if probe is None:
            raise NetworkError(f"no flow probe {role} in this topology; run `network -- up`")
        rec.details.setdefault("probe", []).append(f"{role} pid {probe.pid}: {stop(probe, grace=10.0)}")
        state.processes.remove(probe)
        state.save()
        start_probe(ctx, rec, state, role)


def parse_csv(text: str) -> list[dict[str, str]]:
    """nfdump -o csv: one header row, the flows, then an empty line and a summary block."""
    body = text.split("\n\n", 1)[0].split("\nSummary", 1)[0]
    return [row for row in csv.DictReader(io.StringIO(body)) if row.get("sa")]


def classify(plan: Plan, state: State, rows: list[dict[str, str]], *, tunnel: bool = False) -> list[Flow]:
    """Flows a device initiated, each with the allow rule that explains it.

    ``tunnel``: the rows came from the edge's fleet side, where only what left the tunnel and
    passed the filter shows (plaintext from a device to the fleet is dropped before), so an
    IPsec-only rule may explain them.
    """
    devices = {d.address: d.name for d in state.devices}
    flows = []
    for row in rows:
        source = row["sa"].strip()
        if source not in devices:
            continue  # replies and the edge's own traffic: a device is the initiator here
        target = ipaddress.IPv4Address(row["da"].strip())
        proto = PROTOCOLS.get(row["pr"].strip().upper(), row["pr"].strip().lower())
        port = int(row["dp"]) if proto in ("tcp", "udp") else 0
        rule = plan.explains(ipaddress.IPv4Address(source), target, proto, port, plaintext=not tunnel) if port else None
        index = plan.allow.index(rule) if rule else -1
        flows.append(
            Flow(
                source=source,
                target=str(target),
                proto=proto,
                port=port,
                packets=int(row["ipkt"]),
                octets=int(row["ibyt"]),
                first=row["ts"],
                device=devices[source],
                target_zone=plan.zone_of(target) or "unknown",
                allowed_by=ruleset.describe(index, rule) if rule else "",
                seen="tunnel" if tunnel else "device LAN",
            )
        )
    return flows


def read(ctx: Context, rec: StageRecord, state: State, name: str) -> list[dict[str, str]]:
    store = Path(state.directory) / name
    done = runner.run(rec, ctx.tool("nfdump"), ["-R", store, "-o", "csv"], check=False)
    if done.returncode != 0 and "No files" not in done.stdout + done.stderr:
        raise NetworkError(f"nfdump could not read {store}: {done.tail()}")
    return parse_csv(done.stdout)


def report(ctx: Context, rec: StageRecord, plan: Plan, state: State) -> dict[str, Any]:
    rotate(ctx, rec, state)
    flows = classify(plan, state, read(ctx, rec, state, FLOW_STORE))
    flows += classify(plan, state, read(ctx, rec, state, TUNNEL_FLOW_STORE), tunnel=True)
    per_device: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"flows": 0, "packets": 0, "octets": 0, "unexplained": 0}
    )
    for flow in flows:
        summary = per_device[flow.device]
        summary["flows"] += 1
        summary["packets"] += flow.packets
        summary["octets"] += flow.octets
        summary["unexplained"] += 0 if flow.allowed_by else 1
    return {
        "devices": dict(per_device),
        "flows": [asdict(f) for f in flows],
        "unexplained": [asdict(f) for f in flows if not f.allowed_by],
        "stores": [str(Path(state.directory) / s) for s in (FLOW_STORE, TUNNEL_FLOW_STORE)],
    }
