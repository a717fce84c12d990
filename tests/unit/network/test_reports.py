"""The machine outputs the network layer reads: nfdump CSV (flows) and nmap XML (open ports)."""

from __future__ import annotations

from tasks.network import exposure, flows
from tasks.network import plan as plan_mod
from tasks.network.state import Device, State
from tests.support.project import REPO

HEADER = "ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt\n"


def _row(sa: str, da: str, dp: int, pr: str = "TCP") -> str:
    return f"2026-01-01 00:00:00,2026-01-01 00:00:01,1.0,{sa},{da},40000,{dp},{pr},......S.,0,0,2,120\n"


def _state() -> State:
    state = State(run_id="abc123", directory="/nonexistent")
    state.devices.append(Device("good", "ns", "dp0", "10.60.1.10", True, "ok"))
    return state


def test_flows_are_attributed_to_the_device_and_unexplained_ones_flagged() -> None:
    text = (
        HEADER
        + _row("10.60.1.10", "10.60.1.1", 4500, "UDP")
        + _row("10.60.1.10", "10.60.2.10", 8443)  # the broker's port, but in plaintext
        + _row("10.60.1.10", "10.60.2.20", 5432)
        + _row("10.60.2.10", "10.60.1.10", 40000)  # a reply: not initiated by a device
        + "\nSummary\nflows,bytes\n3,360\n"
    )
    plan = plan_mod.load(REPO)
    found = flows.classify(plan, _state(), flows.parse_csv(text))
    assert [(f.device, f.target, f.port, bool(f.allowed_by)) for f in found] == [
        ("good", "10.60.1.1", 4500, True),
        ("good", "10.60.2.10", 8443, False),
        ("good", "10.60.2.20", 5432, False),
    ]
    assert found[2].target_zone == "fleet"


def test_a_flow_seen_after_the_tunnel_may_be_explained_by_an_ipsec_only_rule() -> None:
    text = HEADER + _row("10.60.1.10", "10.60.2.10", 8443) + _row("10.60.1.10", "10.60.2.10", 22)
    plan = plan_mod.load(REPO)
    found = flows.classify(plan, _state(), flows.parse_csv(text), tunnel=True)
    assert [(f.port, f.seen, f.allowed_by.split(":")[0]) for f in found] == [
        (8443, "tunnel", "allow[0]"),
        (22, "tunnel", ""),
    ]
    plaintext = flows.classify(plan, _state(), flows.parse_csv(text))
    assert [f.allowed_by for f in plaintext] == ["", ""], "the same flow in plaintext is never explained"


NMAP = """<?xml version="1.0"?>
<nmaprun><host><address addr="10.60.2.10" addrtype="ipv4"/><ports>
<port protocol="tcp" portid="8443"><state state="open"/><service name="https-alt"/></port>
<port protocol="tcp" portid="8080"><state state="open"/><service name="http-proxy"/></port>
<port protocol="tcp" portid="22"><state state="closed"/></port>
</ports></host></nmaprun>"""


def test_nmap_xml_gives_only_open_ports() -> None:
    found = exposure.parse_nmap(NMAP)
    assert [(p.address, p.port, p.service) for p in found] == [
        ("10.60.2.10", 8443, "https-alt"),
        ("10.60.2.10", 8080, "http-proxy"),
    ]
