"""infra/network as data: the plan's validation, the allow-list's decisions, the generated rules."""

from __future__ import annotations

import ipaddress
import tomllib
from typing import Any

import pytest

from tasks.core.errors import InputError
from tasks.network import ipsec, ruleset
from tasks.network import plan as plan_mod
from tests.support.project import REPO

A = ipaddress.IPv4Address


def data() -> dict[str, Any]:
    return tomllib.loads((REPO / plan_mod.TOPOLOGY).read_text())


def test_the_committed_topology_loads() -> None:
    plan = plan_mod.load(REPO)
    assert {"devices", "fleet", "ops"} <= plan.zones.keys()
    assert plan.exposure and plan.allow


def test_devices_reach_the_broker_port_and_nothing_else() -> None:
    plan = plan_mod.load(REPO)
    device = plan.device_address(0)
    broker, db = plan.hosts["fleet-server"].address, plan.hosts["fleet-db"].address
    assert plan.explains(device, broker, "tcp", 8443, plaintext=False) is not None  # inside the tunnel
    assert plan.explains(device, broker, "tcp", 8443) is None  # the same in plaintext
    assert plan.explains(device, plan.hosts["edge"].address, "udp", 4500) is not None  # IKE / ESP-in-UDP
    assert plan.explains(device, broker, "tcp", 80) is None
    assert plan.explains(device, db, "tcp", 5432) is None
    assert plan.explains(device, plan.device_address(1), "tcp", 22) is None
    assert plan.explains(device, A("192.0.2.50"), "tcp", 443) is None


def test_generated_rules_are_default_deny_with_one_counted_accept_per_allow_rule() -> None:
    plan = plan_mod.load(REPO)
    rules = ruleset.generate(plan)
    assert "type filter hook forward priority filter; policy drop;" in rules
    assert "type filter hook input priority filter; policy drop;" in rules
    assert rules.count("counter accept") == len(plan.allow)
    assert "ip saddr 10.60.1.0/24 ip daddr 10.60.2.10/32 tcp dport 8443 counter accept" in rules
    assert "iifname != @admitted counter drop" in rules  # a port is closed until 802.1X admits it
    assert f"ether type {ruleset.EAPOL_ETHERTYPE} accept" in rules


def test_every_accept_names_its_interfaces_and_forged_sources_are_dropped_first() -> None:
    """#30 N1: a zone is its interface, not only its addresses; a forged source is dropped before any zone rule."""
    plan = plan_mod.load(REPO)
    rules = ruleset.generate(plan)
    accepts = [line.strip() for line in rules.splitlines() if "counter accept" in line]
    assert accepts and all(line.startswith('iifname "') for line in accepts), accepts
    assert 'iifname "ipsec0" oifname "fleet0" ip saddr 10.60.1.0/24 ip daddr 10.60.2.10/32 tcp dport 8443' in rules
    assert 'iifname "ipsec0" oifname "fleet0" ip saddr 10.60.3.0/24' in rules  # ops reaches the fleet by tunnel only
    assert 'iifname "ops0" ip saddr 10.60.3.0/24 ip daddr 10.60.3.1/32 udp dport 500' in rules
    assert 'iifname "br-dev" ip saddr 10.60.1.0/24 ip daddr 10.60.1.1/32 udp dport 500' in rules
    prerouting = rules.index("hook prerouting priority raw")
    assert prerouting < rules.index("hook forward")
    for zone, iface in ruleset.ZONE_INTERFACES.items():
        assert f"counter {ruleset.SPOOFED}{zone} {{" in rules
        subnet = plan.zones[zone].subnet
        assert f'iifname "{iface}" ip saddr != {subnet} counter name "{ruleset.SPOOFED}{zone}" drop' in rules


def test_a_device_port_sends_only_ipv4_and_arp_from_the_address_bound_to_it() -> None:
    """#30 N4: each admitted port is bound to the one MAC and address attach gave it; a device port's IPv4 or ARP
    with any other source (Ethernet, ARP sender or IP) is dropped and counted, and so is every frame that is
    neither (IPv6, VLAN-tagged), all after the admission check and before anything is routed."""
    rules = ruleset.generate(plan_mod.load(REPO))
    ports = rules[rules.index("chain ports {") : rules.index("table inet gateway")]
    assert f"set {ruleset.BOUND_SET} {{\n    type ifname . ether_addr . ipv4_addr" in rules
    unbound = f'!= @bound counter name "{ruleset.UNBOUND}" drop'
    expected = [
        f"ether type {ruleset.EAPOL_ETHERTYPE} accept",
        'iifname "dp*" iifname != @admitted counter drop',
        f'iifname "dp*" ether type ip iifname . ether saddr . ip saddr {unbound}',
        f'iifname "dp*" ether type arp iifname . ether saddr . arp saddr ip {unbound}',
        f'iifname "dp*" ether type arp iifname . arp saddr ether . arp saddr ip {unbound}',
        f'iifname "dp*" ether type != {{ ip, arp }} counter name "{ruleset.NOT_IPV4}" drop',
    ]
    at = [ports.index(line) for line in expected]
    assert at == sorted(at), "EAPOL, then admission, then the binding, then everything else from a port"
    assert "accept" not in ports.split(expected[0])[1], "nothing from a device port is accepted past EAPOL"
    for name in (ruleset.UNBOUND, ruleset.NOT_IPV4):
        assert f"  counter {name} {{" in rules


def test_a_zone_the_edge_has_no_interface_for_is_refused() -> None:
    topology = data()
    topology["zones"]["lab"] = {"subnet": "10.60.9.0/24", "gateway": "10.60.9.1"}
    with pytest.raises(InputError, match="zone 'lab': the edge has no interface for it"):
        ruleset.generate(plan_mod.parse(topology))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["zones"].pop("ops"), "zones ops are required"),
        (lambda d: d["hosts"]["fleet-db"].update(address="10.60.9.9"), "outside zone fleet"),
        (lambda d: d["zones"]["fleet"].update(gateway="10.60.3.1"), "outside 10.60.2.0/24"),
        (lambda d: d["allow"][0].update(to="nowhere"), "neither a zone nor a host"),
        (lambda d: d["allow"][0].update(port=70000), "port number"),
        (lambda d: d["allow"][0].update(proto="sctp"), "not one of tcp, udp"),
        (lambda d: d["exposure"][0].update(host="ghost"), "unknown host"),
        (lambda d: d["allow"][0].update(via="wireguard"), "not one of ipsec"),
    ],
)
def test_a_malformed_topology_is_refused_with_the_field_named(edit: Any, message: str) -> None:
    broken = data()
    edit(broken)
    with pytest.raises(InputError, match=message):
        plan_mod.parse(broken)


def test_one_swanctl_template_for_both_ends() -> None:
    plan = plan_mod.load(REPO)
    edge = ipsec.connections(plan, "CN=edge", edge=True)
    device = ipsec.connections(plan, "CN=dev", edge=False)
    assert "local_addrs = 10.60.1.1" in edge and "local_ts = 10.60.2.0/24" in edge
    assert "revocation = strict" in edge, "the edge checks the fleet CA's CRL"
    assert "remote_addrs = 10.60.1.1" in device and "remote_ts = 10.60.2.0/24" in device
    assert "revocation" not in device and 'id = "CN=dev"' in device
    for conf in (edge, device):
        assert conf.count("{") == conf.count("}")
        assert "auth = pubkey" in conf and "esp_proposals = aes128gcm16" in conf
