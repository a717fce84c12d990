"""802.1X / EAP-TLS port admission: a device's port stays blocked until hostapd authorizes it.

Each device gets a namespace and a veth whose edge end (``dpN``) is an isolated port of the
device bridge. hostapd (wired driver, internal EAP server) is the authenticator on that port,
wpa_supplicant (wired driver) the device's supplicant with its enrolled certificate. The
edge's ``bridge admission`` table drops everything but EAPOL from a port until its name is
added to the ``admitted`` set — which happens only when hostapd reports the port AUTHORIZED.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from tasks.context import Context
from tasks.core import atomic, processes
from tasks.core.errors import NetworkError
from tasks.core.evidence import StageRecord
from tasks.network import ipsec, ruleset
from tasks.network.namespaces import ip, run_in, start_in, wait_for
from tasks.network.plan import Plan
from tasks.network.state import Device, Process, State
from tasks.network.topology import DEVICE_BRIDGE

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,15}$")
AUTH_TIMEOUT = 8.0


@dataclass(frozen=True)
class Credentials:
    """A device's enrolled identity (from the fleet CA's enrolment; any CA in tests)."""

    cert: Path
    key: Path


def _hostapd_conf(state: State, port: str, ctrl: Path) -> str:
    identity = state.identity
    ca_file = Path(identity["ca"])
    check_crl = "0"
    if identity.get("crl"):
        # hostapd reads CRLs from the ca_cert file: CA + CRL in one bundle, then check_crl=1
        bundle = Path(state.directory) / "ca-with-crl.pem"
        atomic.write_text(bundle, ca_file.read_text() + Path(identity["crl"]).read_text())
        ca_file, check_crl = bundle, "1"
    eap_users = Path(state.directory) / "eap_user"
    atomic.write_text(eap_users, "* TLS\n")
    return "\n".join(
        [
            f"interface={port}",
            "driver=wired",
            "ieee8021x=1",
            "eapol_version=2",
            "eap_server=1",
            f"eap_user_file={eap_users}",
            f"ca_cert={ca_file}",
            f"server_cert={identity['cert']}",
            f"private_key={identity['key']}",
            f"check_crl={check_crl}",
            f"ctrl_interface={ctrl}",
            "logger_stdout=-1",
            "logger_stdout_level=1",
            "",
        ]
    )


def _supplicant_conf(name: str, ca: Path, creds: Credentials, ctrl: Path) -> str:
    return "\n".join(
        [
            f"ctrl_interface={ctrl}",
            "ap_scan=0",
            "network={",
            "  key_mgmt=IEEE8021X",
            "  eap=TLS",
            f'  identity="{name}"',
            f'  ca_cert="{ca}"',
            f'  client_cert="{creds.cert}"',
            f'  private_key="{creds.key}"',
            "  eapol_flags=0",
            "}",
            "",
        ]
    )


def authorized(ctx: Context, rec: StageRecord, state: State, port: str, ctrl: Path) -> bool:
    done = run_in(ctx, rec, state.namespace("edge"), "hostapd_cli", ["-p", ctrl, "-i", port, "all_sta"], check=False)
    return done.returncode == 0 and "flags=[AUTHORIZED]" in done.stdout


def _eap_failed(process: Process) -> bool:
    try:
        return "CTRL-EVENT-EAP-FAILURE" in Path(process.log).read_text(errors="replace")
    except FileNotFoundError:
        return False


def attach(
    ctx: Context,
    rec: StageRecord,
    plan: Plan,
    state: State,
    name: str,
    creds: Credentials,
    ike: Credentials | None = None,
) -> Device:
    """Wire a device to a new port, let 802.1X decide whether the port opens, then bring up its tunnel.

    ``ike`` is the identity the device uses for IKE (default: the one it used for 802.1X).
    """
    if not NAME.match(name):
        raise NetworkError(f"device name {name!r}: use 1-16 lower-case letters, digits and '-'")
    if state.device(name) is not None:
        raise NetworkError(f"device {name} is already attached")
    for path in (creds.cert, creds.key):
        if not path.is_file():
            raise NetworkError(f"{path}: missing (the device's enrolled certificate and key)")
    index = len(state.devices)
    port, ns, edge = f"{ruleset.DEVICE_PORT_PREFIX}{index}", state.namespace(f"dev{index}"), state.namespace("edge")
    address = plan.device_address(index)
    devices = plan.zones["devices"]
    ip(ctx, rec, ["netns", "add", ns])
    state.namespaces.append(ns)
    state.save()
    ip(ctx, rec, ["-n", ns, "link", "set", "lo", "up"])
    ip(ctx, rec, ["link", "add", port, "netns", edge, "type", "veth", "peer", "name", "eth0", "netns", ns])
    state.links.append(f"{edge}:{port}<->{ns}:eth0")
    state.save()
    ip(ctx, rec, ["-n", edge, "link", "set", port, "master", DEVICE_BRIDGE])
    ip(ctx, rec, ["-n", edge, "link", "set", port, "type", "bridge_slave", "isolated", "on"])
    ip(ctx, rec, ["-n", edge, "link", "set", port, "up"])
    ip(ctx, rec, ["-n", ns, "addr", "add", f"{address}/{devices.subnet.prefixlen}", "dev", "eth0"])
    ip(ctx, rec, ["-n", ns, "link", "set", "eth0", "up"])
    ip(ctx, rec, ["-n", ns, "route", "add", "default", "via", str(devices.gateway)])
    directory = Path(state.directory)
    hctrl, wctrl = directory / f"hostapd-{port}", directory / f"wpa-{name}"
    hconf, wconf = directory / f"hostapd-{port}.conf", directory / f"wpa-{name}.conf"
    atomic.write_text(hconf, _hostapd_conf(state, port, hctrl))
    atomic.write_text(wconf, _supplicant_conf(name, Path(state.identity["ca"]), creds, wctrl), mode=0o600)
    hostapd = start_in(ctx, rec, state, f"hostapd:{port}", edge, "hostapd", [hconf])
    wait_for(hctrl / port, hostapd, f"hostapd on {port}")
    supplicant = start_in(
        ctx, rec, state, f"wpa_supplicant:{name}", ns, "wpa_supplicant", ["-D", "wired", "-i", "eth0", "-c", wconf]
    )
    admitted, reason = False, f"not authorized within {AUTH_TIMEOUT:.0f}s"
    deadline = time.monotonic() + AUTH_TIMEOUT
    while time.monotonic() < deadline:
        if authorized(ctx, rec, state, port, hctrl):
            admitted, reason = True, "802.1X EAP-TLS: port authorized by hostapd"
            break
        if _eap_failed(supplicant):
            reason = "802.1X EAP-TLS: EAP failure (certificate refused by the authenticator)"
            break
        if not processes.alive(hostapd.pid):
            raise NetworkError(f"hostapd on {port} exited: {processes.tail(Path(hostapd.log))}")
        time.sleep(0.2)
    if admitted:
        element = ["add", "element", "bridge", ruleset.ADMISSION_TABLE, ruleset.ADMITTED_SET, f"{{ {port} }}"]
        run_in(ctx, rec, edge, "nft", element)
    tunnel, tunnel_reason, tunnel_s = False, "no link", 0.0
    if admitted:
        ike = ike or creds
        tunnel, tunnel_reason, tunnel_s = ipsec.connect(ctx, rec, plan, state, name, ns, ike.cert, ike.key)
    device = Device(name, ns, port, str(address), admitted, reason, tunnel, tunnel_reason, tunnel_s)
    state.devices.append(device)
    state.save()
    return device
