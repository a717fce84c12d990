"""The edge's nftables ruleset, generated from the plan: nothing here is hand-kept.

Two tables: ``bridge admission`` blocks every device port except for EAPOL until 802.1X
admits it (the port's name joins the ``admitted`` set); ``inet gateway`` routes between
zones with default deny, one counted accept per allow rule and one counted drop per zone
pair, so a refused flow is attributed to the pair it tried to cross.
"""

from __future__ import annotations

from tasks.network.plan import Allow, Plan

ADMISSION_TABLE = "admission"
ADMITTED_SET = "admitted"
GATEWAY_TABLE = "gateway"
DEVICE_PORT_PREFIX = "dp"  # the edge's end of each device's veth: dp0, dp1, ...
EAPOL_ETHERTYPE = "0x888e"
TUNNEL_IF = "ipsec0"  # strongSwan kernel-libipsec's TUN device: what arrives on it came through the tunnel


def describe(index: int, rule: Allow) -> str:
    port = "any" if rule.port is None else str(rule.port)
    via = f" via {rule.via}" if rule.via else ""
    return f"allow[{index}]: {rule.source} -> {rule.target} {rule.proto}/{port}{via}"


def _to_edge(plan: Plan, rule: Allow) -> bool:
    """A rule whose target is one of the edge's own addresses: the input chain, not forward."""
    target = plan.network_of(rule.target)
    return target.prefixlen == 32 and target.network_address in plan.edge_addresses()


def _allow_line(plan: Plan, index: int, rule: Allow) -> str:
    match = f"ip saddr {plan.zones[rule.source].subnet} ip daddr {plan.network_of(rule.target)}"
    if rule.via == "ipsec":
        match = f'iifname "{TUNNEL_IF}" {match}'
    match += f" meta l4proto {rule.proto}" if rule.port is None else f" {rule.proto} dport {rule.port}"
    return f'{match} counter accept comment "{describe(index, rule)}"'


def generate(plan: Plan) -> str:
    lines = [
        "# generated from infra/network/topology.toml by tasks/network/ruleset.py; do not edit",
        f"table bridge {ADMISSION_TABLE} {{",
        f"  set {ADMITTED_SET} {{",
        "    type ifname",
        '    comment "device ports whose supplicant passed 802.1X EAP-TLS"',
        "  }",
        "  chain ports {",
        "    type filter hook prerouting priority filter; policy accept;",
        f'    ether type {EAPOL_ETHERTYPE} accept comment "EAPOL: all an unadmitted port may send"',
        f'    iifname "{DEVICE_PORT_PREFIX}*" iifname != @{ADMITTED_SET} counter drop comment "port not admitted"',
        "  }",
        "}",
        f"table inet {GATEWAY_TABLE} {{",
        "  chain forward {",
        "    type filter hook forward priority filter; policy drop;",
        "    ct state established,related accept",
        '    ct state invalid counter drop comment "invalid"',
    ]
    plaintext: dict[tuple[str, str], str] = {}
    for rule in plan.allow:
        if rule.via == "ipsec":
            target_zone = rule.target if rule.target in plan.zones else plan.hosts[rule.target].zone
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
