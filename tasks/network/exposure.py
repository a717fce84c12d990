"""The continuous scan: nmap from the ops zone against every host, compared with the declared exposure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from defusedxml import ElementTree

from tasks.context import Context
from tasks.core.checks import Check
from tasks.core.errors import NetworkError
from tasks.core.evidence import StageRecord
from tasks.network import ipsec
from tasks.network.namespaces import run_in
from tasks.network.plan import Plan
from tasks.network.state import State


@dataclass(frozen=True)
class OpenPort:
    address: str
    proto: str
    port: int
    service: str


def parse_nmap(xml: str) -> list[OpenPort]:
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as exc:
        raise NetworkError(f"nmap XML unreadable: {exc}") from exc
    found = []
    for host in root.iter("host"):
        address = next((a.get("addr", "") for a in host.iter("address") if a.get("addrtype") == "ipv4"), "")
        for port in host.iter("port"):
            state = port.find("state")
            if state is not None and state.get("state") == "open":
                service = port.find("service")
                found.append(
                    OpenPort(
                        address,
                        port.get("protocol", ""),
                        int(port.get("portid", "0")),
                        service.get("name", "") if service is not None else "",
                    )
                )
    return found


def targets(plan: Plan, state: State) -> list[str]:
    hosts = [str(h.address) for h in plan.hosts.values() if h.zone != "ops"]
    return hosts + [d.address for d in state.devices if d.admitted]


def scan(ctx: Context, rec: StageRecord, plan: Plan, state: State, out: Path, ports: str = "1-65535") -> list[Check]:
    """A TCP connect scan of every host in every zone from ops; any open port not declared fails.

    Where ops reaches the other zones only through an operator's tunnel, a scan without one would see
    every port closed and pass on no evidence: it is refused instead.
    """
    if "ops" in ipsec.tunnelled(plan) and not ipsec.operator_connected(ctx, rec, state):
        raise NetworkError(
            "ops reaches the other zones only through an operator's tunnel and none is up: "
            "run `nox -s network -- operator --cert OPERATOR.pem --key OPERATOR.key` first"
        )
    xml = out / "nmap.xml"
    run_in(
        ctx,
        rec,
        state.namespace("ops"),
        "nmap",
        ["-sT", "-Pn", "-n", "-T4", "--max-retries", "1", "-p", ports, "-oX", xml, *targets(plan, state)],
        timeout=600,
    )
    rec.add_output(xml, "application/xml")
    found = parse_nmap(xml.read_text(encoding="utf-8"))
    declared = {(str(plan.hosts[e.host].address), e.proto, e.port): e for e in plan.exposure}
    checks = []
    for port in found:
        key = (port.address, port.proto, port.port)
        if key in declared:
            checks.append(Check(f"{port.address} {port.proto}/{port.port}", True, f"declared: {declared[key].service}"))
        else:
            checks.append(
                Check(
                    f"{port.address} {port.proto}/{port.port}",
                    False,
                    f"open ({port.service or 'unknown'}), not declared in infra/network",
                )
            )
    seen = {(p.address, p.proto, p.port) for p in found}
    for key, exposure in declared.items():
        if key not in seen:
            checks.append(Check(f"{key[0]} {key[1]}/{key[2]}", True, f"declared ({exposure.host}) but closed"))
    return checks
