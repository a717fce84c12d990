"""The edge's nftables ruleset, generated from the plan: nothing here is hand-kept.

Two tables: ``bridge admission`` blocks every device port except for EAPOL until 802.1X
admits it (the port's name joins the ``admitted`` set) and binds each admitted port to the MAC
and IPv4 address ``attach`` gave it (port, MAC and address join the ``bound`` set together): an
IPv4 packet or ARP whose source (Ethernet, ARP sender, IP) is not its port's is dropped and
counted (``unbound-source``), and
every other protocol from a device port (IPv6, VLAN tags, ...) too (``not-ipv4``). The device
LAN is one subnet behind ``proxy_arp_pvlan``, so without that an admitted device could claim a
neighbour's address (or MAC: the bridge learns where a MAC is from its frames) and take the
edge's traffic for it, its ESP-in-UDP included. ``inet gateway`` routes between
zones with default deny, one counted accept per allow rule and one counted drop per zone
pair, so a refused flow is attributed to the pair it tried to cross.

A zone is its interface at the edge, not only its addresses: every accept names the interface
the traffic came in on (the tunnel's for a ``via = "ipsec"`` rule) and the one it leaves by, and
before any of that a packet whose source is not of the zone it came in from is dropped and
counted per zone (the named counters ``spoofed-<zone>``, shown by ``network -- status``). So a
device that sends with an ops or fleet address is dropped at the edge, whatever it targets.

Each zone is one subnet behind one interface, so that check is the zone's reverse path, written
out from the plan. Not the kernel's (``fib saddr . iif oif missing``, or rp_filter): charon's
kernel-libipsec routes a tunnelled device's address back through ``ipsec0`` (its table 220 routes
by destination only), so the device's own ESP-in-UDP on the device LAN failed the strict check and
every tunnel stopped carrying traffic (measured). The tunnel needs no such check: what arrives on
``ipsec0`` can match only a ``via = "ipsec"`` rule, which names the device zone's addresses.
"""

from __future__ import annotations

from tasks.core.errors import InputError
from tasks.network.plan import Allow, Plan

ADMISSION_TABLE = "admission"
ADMITTED_SET = "admitted"
BOUND_SET = "bound"  # port . MAC . address: the one source an admitted port may send with
UNBOUND = "unbound-source"  # the named counter of a device port's IPv4/ARP with another source: dropped
NOT_IPV4 = "not-ipv4"  # the named counter of a device port's frames that are neither IPv4 nor ARP: dropped
GATEWAY_TABLE = "gateway"
DEVICE_PORT_PREFIX = "dp"  # the edge's end of each device's veth: dp0, dp1, ...
EAPOL_ETHERTYPE = "0x888e"
TUNNEL_IF = "ipsec0"  # strongSwan kernel-libipsec's TUN device: what arrives on it came through the tunnel
# each zone's interface at the edge (tasks/network/topology.py makes them): what a zone's traffic comes in on
ZONE_INTERFACES = {"devices": "br-dev", "fleet": "fleet0", "ops": "ops0", "internet": "wan0"}
SPOOFED = "spoofed-"  # + zone: the named counter of packets dropped for a source not routed back there


def interface(zone: str) -> str:
    """The edge's interface of ``zone``; a zone the edge has no interface for has no rule either (refused)."""
    if zone not in ZONE_INTERFACES:
        raise InputError(
            f"zone {zone!r}: the edge has no interface for it (zones with one: {', '.join(ZONE_INTERFACES)})"
        )
    return ZONE_INTERFACES[zone]


def _anti_spoofing(plan: Plan) -> dict[str, str]:
    """The counter name per zone interface whose packets must carry a source of that zone."""
    return {interface(zone): SPOOFED + zone for zone in plan.zones}


def describe(index: int, rule: Allow) -> str:
    port = "any" if rule.port is None else str(rule.port)
    via = f" via {rule.via}" if rule.via else ""
    return f"allow[{index}]: {rule.source} -> {rule.target} {rule.proto}/{port}{via}"


def _to_edge(plan: Plan, rule: Allow) -> bool:
    """A rule whose target is one of the edge's own addresses: the input chain, not forward."""
    target = plan.network_of(rule.target)
    return target.prefixlen == 32 and target.network_address in plan.edge_addresses()


def _target_zone(plan: Plan, rule: Allow) -> str:
    return rule.target if rule.target in plan.zones else plan.hosts[rule.target].zone


def _allow_line(plan: Plan, index: int, rule: Allow) -> str:
    iif = TUNNEL_IF if rule.via == "ipsec" else interface(rule.source)
    match = f'iifname "{iif}"'
    if not _to_edge(plan, rule):  # forwarded: it leaves by the target zone's interface (a device's, or the tunnel)
        outs = [interface(_target_zone(plan, rule))]
        if outs[0] == ZONE_INTERFACES["devices"] and plan.needs_ipsec:
            outs.append(TUNNEL_IF)
        match += f' oifname "{outs[0]}"' if len(outs) == 1 else " oifname { " + ", ".join(f'"{o}"' for o in outs) + " }"
    match += f" ip saddr {plan.zones[rule.source].subnet} ip daddr {plan.network_of(rule.target)}"
    match += f" meta l4proto {rule.proto}" if rule.port is None else f" {rule.proto} dport {rule.port}"
    return f'{match} counter accept comment "{describe(index, rule)}"'


def generate(plan: Plan) -> str:
    ports = f'iifname "{DEVICE_PORT_PREFIX}*"'
    unbound = f'!= @{BOUND_SET} counter name "{UNBOUND}" drop'
    lines = [
        "# generated from infra/network/topology.toml by tasks/network/ruleset.py; do not edit",
        f"table bridge {ADMISSION_TABLE} {{",
        f"  set {ADMITTED_SET} {{",
        "    type ifname",
        '    comment "device ports whose supplicant passed 802.1X EAP-TLS"',
        "  }",
        f"  set {BOUND_SET} {{",
        "    type ifname . ether_addr . ipv4_addr",
        '    comment "each admitted port and the one MAC and address attach gave it"',
        "  }",
        f'  counter {UNBOUND} {{ comment "IPv4 or ARP from a device port with a source not bound to it: dropped" }}',
        f'  counter {NOT_IPV4} {{ comment "neither IPv4 nor ARP from a device port (IPv6, VLAN tags): dropped" }}',
        "  chain ports {",
        "    type filter hook prerouting priority filter; policy accept;",
        f'    ether type {EAPOL_ETHERTYPE} accept comment "EAPOL: all an unadmitted port may send"',
        f'    {ports} iifname != @{ADMITTED_SET} counter drop comment "port not admitted"',
        f"    {ports} ether type ip iifname . ether saddr . ip saddr {unbound}",
        f"    {ports} ether type arp iifname . ether saddr . arp saddr ip {unbound}",
        f"    {ports} ether type arp iifname . arp saddr ether . arp saddr ip {unbound}",
        f'    {ports} ether type != {{ ip, arp }} counter name "{NOT_IPV4}" drop',
        "  }",
        "}",
        f"table inet {GATEWAY_TABLE} {{",
        *[
            f'  counter {name} {{ comment "in on {iface} from a source outside its zone: dropped" }}'
            for iface, name in _anti_spoofing(plan).items()
        ],
        "  chain prerouting {",
        "    type filter hook prerouting priority raw; policy accept;",
        *[
            f'    iifname "{iface}" ip saddr != {plan.zones[name.removeprefix(SPOOFED)].subnet} '
            f'counter name "{name}" drop'
            for iface, name in _anti_spoofing(plan).items()
        ],
        "  }",
        "  chain forward {",
        "    type filter hook forward priority filter; policy drop;",
        "    ct state established,related accept",
        '    ct state invalid counter drop comment "invalid"',
    ]
    plaintext: dict[tuple[str, str], str] = {}
    for rule in plan.allow:
        if rule.via == "ipsec":
            target_zone = _target_zone(plan, rule)
            from_net, to_net = plan.zones[rule.source].subnet, plan.zones[target_zone].subnet
            plaintext[(rule.source, target_zone)] = (
                f'    iifname != "{TUNNEL_IF}" ip saddr {from_net} ip daddr {to_net} '
                f'counter drop comment "plaintext: {rule.source} -> {target_zone}"'
            )
    lines += plaintext.values()
    lines += [f"    {_allow_line(plan, i, rule)}" for i, rule in enumerate(plan.allow) if not _to_edge(plan, rule)]
    for source in plan.zones.values():
        for target in plan.zones.values():
            pair = f"ip saddr {source.subnet} ip daddr {target.subnet}"
            lines.append(f'    {pair} counter drop comment "deny: {source.name} -> {target.name}"')
    lines += [
        '    counter drop comment "deny: unknown"',
        "  }",
        "  chain input {",
        "    type filter hook input priority filter; policy drop;",
        '    iif "lo" accept',
        "    ct state established,related accept",
        *[f"    {_allow_line(plan, i, rule)}" for i, rule in enumerate(plan.allow) if _to_edge(plan, rule)],
        '    counter drop comment "deny: to the edge"',
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"
