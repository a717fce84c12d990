"""Bring the zones up and down: namespaces, veth pairs, the device bridge, addresses, rules, daemons.

Zones ``edge`` (the gateway), ``fleet`` and ``ops`` are one namespace each; every device gets
its own namespace when it is attached (tasks.network.port_access). All veth ends are created
inside the namespaces, so the host keeps no interface of ours and deleting the namespaces
removes every link and rule with them.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tasks.context import Context
from tasks.core import atomic
from tasks.core.checks import Check
from tasks.core.errors import InputError, NetworkError
from tasks.core.evidence import StageRecord
from tasks.network import crl, fleet_db, fleet_server, ipsec, ruleset
from tasks.network import state as state_mod
from tasks.network.crl import Authority
from tasks.network.namespaces import ip, is_ours, run_in, start_in, stop, wait_listening
from tasks.network.plan import Plan
from tasks.network.state import Process, State

if TYPE_CHECKING:
    from cryptography import x509

ZONES = ("edge", "fleet", "ops")
DEVICE_BRIDGE = ruleset.ZONE_INTERFACES["devices"]
UPLINK = ruleset.ZONE_INTERFACES["internet"]
FLOW_STORE = "flows"  # the device LAN (br-dev): every packet a device sends, refused ones included
TUNNEL_FLOW_STORE = "flows-tunnel"  # the edge's fleet side (fleet0): what left the tunnel, decrypted
PROBES = {
    "nfpcapd": (DEVICE_BRIDGE, FLOW_STORE),
    "nfpcapd:tunnel": (ruleset.ZONE_INTERFACES["fleet"], TUNNEL_FLOW_STORE),
}


@dataclass(frozen=True)
class Identity:
    """The edge's EAP-TLS inputs (the fleet CA of #14 in production, any CA in tests), and the operator CA
    (with its CRL) whose certificates open the ops zone's tunnel."""

    ca: Path
    cert: Path
    key: Path
    crl: Path | None = None
    operator_ca: Path | None = None
    operator_crl: Path | None = None

    def as_dict(self) -> dict[str, str]:
        out = {"ca": str(self.ca), "cert": str(self.cert), "key": str(self.key)}
        if self.crl is not None:
            out["crl"] = str(self.crl)
        if self.operator_ca is not None:
            out["operator-ca"] = str(self.operator_ca)
        return out

    def crls(self) -> dict[Authority, tuple[Path, Path]]:
        """Each authority's CRL given at ``up``, with the CA it must be signed by."""
        given = {crl.FLEET: (self.crl, self.ca), crl.OPERATORS: (self.operator_crl, self.operator_ca)}
        return {a: (path, ca) for a, (path, ca) in given.items() if path is not None and ca is not None}


def _veth(ctx: Context, rec: StageRecord, state: State, a: tuple[str, str], b: tuple[str, str]) -> None:
    (ns_a, if_a), (ns_b, if_b) = a, b
    ip(ctx, rec, ["link", "add", if_a, "netns", ns_a, "type", "veth", "peer", "name", if_b, "netns", ns_b])
    state.links.append(f"{ns_a}:{if_a}<->{ns_b}:{if_b}")
    state.save()
    for ns, name in (a, b):
        ip(ctx, rec, ["-n", ns, "link", "set", name, "up"])


def _address(
    ctx: Context, rec: StageRecord, ns: str, dev: str, address: ipaddress.IPv4Address, net: ipaddress.IPv4Network
) -> None:
    ip(ctx, rec, ["-n", ns, "addr", "add", f"{address}/{net.prefixlen}", "dev", dev])


def start_listener(ctx: Context, rec: StageRecord, state: State, host: str, address: str, port: int) -> Process:
    """A stand-in service: ncat keeps accepting on address:port in the fleet zone."""
    process = start_in(
        ctx,
        rec,
        state,
        f"listener:{host}:{port}",
        state.namespace("fleet"),
        "ncat",
        ["--listen", "--keep-open", address, str(port)],
    )
    wait_listening(process, "tcp", port, f"listener {host}:{port}")
    state.listeners.append(f"{host}:tcp/{port}")
    state.save()
    return process


def up(
    ctx: Context, rec: StageRecord, plan: Plan, directory: Path, identity: Identity, server: fleet_server.FleetServer
) -> State:
    """Build the zones; on any failure everything made so far is removed again (fail closed)."""
    existing = state_mod.load(directory)
    if existing is not None:
        raise NetworkError(
            f"a topology is already up ({existing.prefix}, {existing.path}); run `network -- down` first"
        )
    if (identity.operator_ca is None) != (identity.operator_crl is None):
        raise NetworkError("--operator-ca and --operator-crl go together (the edge checks operators strictly)")
    optional = (identity.crl, identity.operator_ca, identity.operator_crl)
    for path in (identity.ca, identity.cert, identity.key, *(p for p in optional if p is not None)):
        if not path.is_file():
            raise NetworkError(f"{path}: missing (an input of `up`: the edge's CAs, CRLs and EAP-TLS identity)")
    server.check()
    initial = _initial_crls(identity)
    directory.mkdir(parents=True, exist_ok=True)
    state = state_mod.new(directory)
    state.identity = identity.as_dict() | server.as_dict()
    for authority, checked in initial.items():
        crl.place(state, checked, authority)  # the edge's own copy, which `network -- crl` replaces
    state.save()
    try:
        _build(ctx, rec, plan, state)
    except BaseException:
        down(ctx, rec, state)
        raise
    return state


def _initial_crls(identity: Identity) -> dict[Authority, x509.CertificateRevocationList]:
    """``--crl`` and ``--operator-crl`` checked like every later one, before anything is built: a CRL the
    edge could not enforce (stale, foreign, unfindable by charon) would refuse every peer, so ``up`` refuses it."""
    initial = {}
    for authority, (path, ca) in identity.crls().items():
        try:
            initial[authority] = crl.checked(path.read_bytes(), ca, None)
        except InputError as exc:
            raise InputError(f"{authority.option} {path}: {exc}") from None
    return initial


def _build(ctx: Context, rec: StageRecord, plan: Plan, state: State) -> None:
    for zone in ZONES:
        ns = state.namespace(zone)
        ip(ctx, rec, ["netns", "add", ns])
        state.namespaces.append(ns)
        state.save()
        ip(ctx, rec, ["-n", ns, "link", "set", "lo", "up"])
    edge, fleet, ops = (state.namespace(z) for z in ZONES)
    devices = plan.zones["devices"]
    # the device LAN: a bridge whose ports are isolated from each other (private-VLAN edge);
    # the edge answers ARP for every address, so device-to-device traffic is routed and filtered
    # no learning from link-local frames (EAPOL): a port's frames teach the bridge only past the admission chain
    ip(ctx, rec, ["-n", edge, "link", "add", DEVICE_BRIDGE, "type", "bridge", "no_linklocal_learn", "1"])
    ip(ctx, rec, ["-n", edge, "link", "set", DEVICE_BRIDGE, "up"])
    _address(ctx, rec, edge, DEVICE_BRIDGE, devices.gateway, devices.subnet)
    run_in(
        ctx,
        rec,
        edge,
        "sysctl",
        [
            "-q",
            "-w",
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.send_redirects=0",
            f"net.ipv4.conf.{DEVICE_BRIDGE}.send_redirects=0",
            f"net.ipv4.conf.{DEVICE_BRIDGE}.proxy_arp=1",
            f"net.ipv4.conf.{DEVICE_BRIDGE}.proxy_arp_pvlan=1",
        ],
    )
    if "internet" in plan.zones:
        internet = plan.zones["internet"]
        # the uplink ends in the edge itself (no dummy driver in every kernel): routed, never delivered
        _veth(ctx, rec, state, (edge, UPLINK), (edge, f"{UPLINK}-end"))
        _address(ctx, rec, edge, UPLINK, internet.gateway, internet.subnet)
    for zone, ns in (("fleet", fleet), ("ops", ops)):
        edge_if = ruleset.ZONE_INTERFACES[zone]
        _veth(ctx, rec, state, (edge, edge_if), (ns, "eth0"))
        _address(ctx, rec, edge, edge_if, plan.zones[zone].gateway, plan.zones[zone].subnet)
        for host in plan.hosts.values():
            if host.zone == zone and host.address not in plan.edge_addresses():  # the edge's own: on edge_if
                _address(ctx, rec, ns, "eth0", host.address, plan.zones[zone].subnet)
        ip(ctx, rec, ["-n", ns, "route", "add", "default", "via", str(plan.zones[zone].gateway)])
    rules = Path(state.directory) / "edge.nft"
    atomic.write_text(rules, ruleset.generate(plan))
    run_in(ctx, rec, edge, "nft", ["-f", rules])
    state.rulesets.append(f"{edge}: {ruleset.ADMISSION_TABLE}, {ruleset.GATEWAY_TABLE}")
    state.save()
    rec.add_output(rules, "text/plain")
    _start_services(ctx, rec, plan, state)
    for role in PROBES:
        start_probe(ctx, rec, state, role)
    if plan.needs_ipsec:
        ipsec.start_edge(ctx, rec, plan, state)


def _start_services(ctx: Context, rec: StageRecord, plan: Plan, state: State) -> None:
    """Every declared exposure gets its service: the fleet database first (the app migrates its schema
    there as it starts), then the fleet server; a port no real service stands behind gets ncat."""
    database = next((e for e in plan.exposure if e.host == fleet_db.HOST), None)
    db_url = None
    if database is not None:
        fleet_db.start(ctx, rec, plan, state, database)
        db_url = fleet_db.url(plan, state, database)
    for exposure in plan.exposure:
        if exposure.host == fleet_server.HOST:
            fleet_server.start(ctx, rec, plan, state, exposure.port, db_url)
        elif exposure.host != fleet_db.HOST:
            start_listener(ctx, rec, state, exposure.host, str(plan.hosts[exposure.host].address), exposure.port)


def start_probe(ctx: Context, rec: StageRecord, state: State, role: str) -> Process:
    """One of the edge's flow probes (nfpcapd), its flow files in the collector's store.

    ``nfpcapd`` on the device bridge sees every IPv4 packet a device sends through the edge,
    refused ones included (the bridge hands them to the gateway before the forward chain
    decides); a tunnelled device shows there as ESP-in-UDP to the edge. ``nfpcapd:tunnel`` on
    the edge's fleet side sees what came out of the tunnel decrypted and passed the filter:
    the device's own flows to the broker, still from the device's address (no NAT).
    """
    interface, store = PROBES[role]
    flows = Path(state.directory) / store
    flows.mkdir(exist_ok=True)
    return start_in(
        ctx,
        rec,
        state,
        role,
        state.namespace("edge"),
        "nfpcapd",
        ["-i", interface, "-w", flows, "-e", "10,2", "-t", "3600"],
    )


def down(ctx: Context, rec: StageRecord, state: State) -> list[Check]:
    """Stop every recorded process by PID, delete every recorded namespace, then check nothing is left."""
    stopped = {f"{p.role} (pid {p.pid})": stop(p) for p in reversed(state.processes)}
    rec.details["stopped"] = stopped
    for ns in reversed(state.namespaces):
        ip(ctx, rec, ["netns", "del", ns], check=False)
    checks = [*leftovers(ctx, rec, state), fleet_db.remove(state)]
    if all(c.passed for c in checks):
        state.path.unlink(missing_ok=True)
    return checks


def leftovers(ctx: Context, rec: StageRecord, state: State) -> list[Check]:
    names = set(ip(ctx, rec, ["netns", "list"]).stdout.split())
    left_ns = sorted(n for n in names if n.startswith(state.prefix))
    links = ip(ctx, rec, ["-o", "link", "show"]).stdout
    ours = (*ruleset.ZONE_INTERFACES.values(), state.prefix)
    left_links = sorted({line.split(":")[1].strip() for line in links.splitlines() if any(o in line for o in ours)})
    left_procs = [f"{p.role} (pid {p.pid})" for p in state.processes if is_ours(p)]
    return [
        Check("namespaces removed", not left_ns, ", ".join(left_ns) or f"none left with prefix {state.prefix}"),
        Check("interfaces removed", not left_links, ", ".join(left_links) or "no interface of ours on the host"),
        Check(
            "rules removed",
            not left_ns,
            "the gateway's tables lived in the edge namespace" if not left_ns else "edge namespace still exists",
        ),
        Check("processes stopped", not left_procs, ", ".join(left_procs) or f"{len(state.processes)} PIDs gone"),
    ]


def status(ctx: Context, rec: StageRecord, state: State) -> list[Check]:
    names = set(ip(ctx, rec, ["netns", "list"]).stdout.split())
    rows = [Check(f"namespace {ns}", ns in names, "present" if ns in names else "missing") for ns in state.namespaces]
    rows += [
        Check(f"{p.role}", is_ours(p), f"pid {p.pid} in {p.namespace}" if is_ours(p) else f"pid {p.pid} not running")
        for p in state.processes
    ]
    if state.namespace("edge") in names:
        rows += [
            Check(f"spoofed from {zone}", True, f"{n} packets dropped") for zone, n in spoofed(ctx, rec, state).items()
        ]
        rows += [Check(f"device ports: {name}", True, f"{n} packets dropped") for name, n in at_ports(ctx, rec, state)]
    return rows


def _counters(ctx: Context, rec: StageRecord, state: State, family: str, table: str) -> dict[str, int]:
    """The packets each named counter of one of the edge's tables counted."""
    listed = run_in(ctx, rec, state.namespace("edge"), "nft", ["-j", "list", "counters", "table", family, table])
    counters = (item["counter"] for item in json.loads(listed.stdout)["nftables"] if "counter" in item)
    return {c["name"]: int(c["packets"]) for c in counters}


def at_ports(ctx: Context, rec: StageRecord, state: State) -> list[tuple[str, int]]:
    """What the bridge dropped from admitted device ports: a source not bound to the port, not IPv4 or ARP."""
    counted = _counters(ctx, rec, state, "bridge", ruleset.ADMISSION_TABLE)
    return [(name, counted.get(name, 0)) for name in (ruleset.UNBOUND, ruleset.NOT_IPV4)]


def spoofed(ctx: Context, rec: StageRecord, state: State) -> dict[str, int]:
    """Packets the edge dropped per zone for a source outside the zone of the interface they came in on."""
    counted = _counters(ctx, rec, state, "inet", ruleset.GATEWAY_TABLE)
    return {name.removeprefix(ruleset.SPOOFED): n for name, n in counted.items() if name.startswith(ruleset.SPOOFED)}
