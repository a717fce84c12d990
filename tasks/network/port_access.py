"""802.1X / EAP-TLS port admission: a device's port stays blocked until hostapd authorizes it.

Each device gets a namespace and a veth whose edge end (``dpN``) is an isolated port of the
device bridge. hostapd (wired driver, internal EAP server) is the authenticator on that port,
wpa_supplicant (wired driver) the device's supplicant with its enrolled certificate. The
edge's ``bridge admission`` table drops everything but EAPOL from a port until its name is
added to the ``admitted`` set — which happens only when hostapd reports the port AUTHORIZED —
and from then on everything but IPv4 and ARP from the one MAC and address ``attach`` gave the
port (the ``bound`` set, filled and emptied in the same nft transaction as ``admitted``).

hostapd re-reads its CA + CRL bundle at the first TLS session more than ``CRL_RELOAD_S`` after
its last read (``crl_reload_interval``): with hostapd 2.10, ``hostapd_cli reload`` and SIGHUP
re-read the configuration but keep the TLS context, so a certificate revoked since start still
authenticated (measured), and they deauthenticate every station of the port on top. It runs
with ``-d`` because its debug log is where it names the certificate it verified ("authsrv: peer
certificate: depth=0 serial_num=..."): no control command tells a port's certificate serial.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass
from pathlib import Path

from tasks.context import Context
from tasks.core import atomic, processes, runner
from tasks.core.errors import NetworkError
from tasks.core.evidence import StageRecord
from tasks.network import crl, ipsec, ruleset
from tasks.network.namespaces import ip, log_of, run_in, start_in, wait_for
from tasks.network.plan import Plan
from tasks.network.state import Device, Process, State
from tasks.network.topology import DEVICE_BRIDGE

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,15}$")
AUTH_TIMEOUT = 8.0
CRL_RELOAD_S = 1  # hostapd's crl_reload_interval: one supplicant per port, so one bundle read per authentication
EAP_OUTCOME = re.compile(r"CTRL-EVENT-EAP-(SUCCESS|FAILURE)")
PEER_CERT = re.compile(r"authsrv: peer certificate: depth=0 serial_num=([0-9A-Fa-f]+) ")
VERDICTS = {
    True: "802.1X EAP-TLS: port authorized by hostapd",
    False: "802.1X EAP-TLS: EAP failure (certificate refused by the authenticator)",
    None: f"not authorized within {AUTH_TIMEOUT:.0f}s",
}


@dataclass(frozen=True)
class Credentials:
    """A device's enrolled identity (from the fleet CA's enrolment; any CA in tests)."""

    cert: Path
    key: Path


def write_bundle(state: State) -> Path | None:
    """hostapd reads CRLs from its ``ca_cert`` file: the fleet CA and the CRL in place, one bundle
    for every port (None: the edge checks no CRL). Replaced atomically, so a reload reads a whole one."""
    in_place = crl.path(state)
    if in_place is None:
        return None
    bundle = Path(state.directory) / "ca-with-crl.pem"
    atomic.write_text(bundle, Path(state.identity["ca"]).read_text() + in_place.read_text())
    return bundle


def _hostapd_conf(state: State, port: str, ctrl: Path) -> str:
    identity = state.identity
    bundle = write_bundle(state)
    ca_file = bundle or Path(identity["ca"])
    # check_crl_strict (hostapd's default, said here): a CRL past its nextUpdate refuses everyone
    checking = ["check_crl=1", "check_crl_strict=1", f"crl_reload_interval={CRL_RELOAD_S}"]
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
            *(checking if bundle else ["check_crl=0"]),
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


def _hostapd_cli(ctx: Context, rec: StageRecord, state: State, port: str, args: list[str]) -> runner.Completed:
    """A control command to the hostapd of ``port`` (one hostapd per port, each with its own socket)."""
    ctrl = Path(state.directory) / f"hostapd-{port}"
    return run_in(ctx, rec, state.namespace("edge"), "hostapd_cli", ["-p", ctrl, "-i", port, *args], check=False)


def authorized(ctx: Context, rec: StageRecord, state: State, port: str) -> bool:
    done = _hostapd_cli(ctx, rec, state, port, ["all_sta"])
    return done.returncode == 0 and "flags=[AUTHORIZED]" in done.stdout


def _hostapd(state: State, port: str) -> Process:
    return next(p for p in state.processes if p.role == f"hostapd:{port}")


def _log_from(process: Process, offset: int) -> str:
    try:
        with Path(process.log).open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def _size(log: Path) -> int:
    return log.stat().st_size if log.exists() else 0


def _verdict(ctx: Context, rec: StageRecord, state: State, port: str, since: int) -> bool | None:
    """hostapd's verdict on the EAP-TLS exchange that began after byte ``since`` of its log: True (the
    port is AUTHORIZED), False (EAP failure: the certificate was refused), None (no verdict within
    AUTH_TIMEOUT: the supplicant stayed silent). Its log says how the exchange ended; its station
    flags alone do not, since a port stays AUTHORIZED while it re-authenticates."""
    hostapd = _hostapd(state, port)
    deadline = time.monotonic() + AUTH_TIMEOUT
    while time.monotonic() < deadline:
        ended = EAP_OUTCOME.search(_log_from(hostapd, since))
        if ended is not None and ended.group(1) == "FAILURE":
            return False
        if ended is not None and authorized(ctx, rec, state, port):  # the flag follows the event
            return True
        if not processes.alive(hostapd.pid):
            raise NetworkError(f"hostapd on {port} exited: {processes.tail(Path(hostapd.log))}")
        time.sleep(0.2)
    return None


def admitted_serial(state: State, port: str) -> int | None:
    """The serial of the certificate hostapd last admitted on ``port``: the peer certificate of the
    last EAP-TLS exchange that ended in success, from hostapd's own log (None: none is known)."""
    serial = admitted = None
    for line in _log_from(_hostapd(state, port), 0).splitlines():
        if "CTRL-EVENT-EAP-STARTED" in line:
            serial = None
        elif found := PEER_CERT.search(line):
            serial = int(found.group(1), 16)
        elif "CTRL-EVENT-EAP-SUCCESS" in line:
            admitted = serial
    return admitted


def mac(address: str) -> str:
    """The MAC ``attach`` gives the device with ``address``: locally administered, its IPv4 address in the
    last four bytes, so it is unique on the device LAN and the edge knows it without asking the device."""
    return "02:00:" + ":".join(f"{int(octet):02x}" for octet in address.split("."))


def _gate(ctx: Context, rec: StageRecord, state: State, verb: str, port: str, address: str) -> None:
    """Add a port to, or delete it from, the ``admitted`` set and its address binding from ``bound``, in
    one nft transaction: the edge's traffic gate (hostapd's wired driver opens nothing itself)."""
    table = ["element", "bridge", ruleset.ADMISSION_TABLE]
    bound = [verb, *table, ruleset.BOUND_SET, f"{{ {port} . {mac(address)} . {address} }}"]
    admitted = [verb, *table, ruleset.ADMITTED_SET, f"{{ {port} }}"]
    run_in(ctx, rec, state.namespace("edge"), "nft", [*bound, ";", *admitted])


def close(ctx: Context, rec: StageRecord, state: State, device: Device) -> None:
    """Drop everything but EAPOL from the device's port again, at once (the bridge's admission chain)."""
    _gate(ctx, rec, state, "delete", device.port, device.address)


def reopen(ctx: Context, rec: StageRecord, state: State, device: Device) -> None:
    """Let the device's port through again, with the address ``attach`` gave it and no other."""
    _gate(ctx, rec, state, "add", device.port, device.address)


def reauthenticate(ctx: Context, rec: StageRecord, state: State, port: str) -> bool | None:
    """Make hostapd run EAP-TLS again with every station of ``port`` (``EAPOL_REAUTH``), under the CRL
    it holds now: the supplicant gets EAP-Failure for a revoked certificate and hostapd unauthorises
    it. Returns the verdict (``_verdict``); None also when no station is left on the port."""
    stations = _hostapd_cli(ctx, rec, state, port, ["list_sta"]).stdout.split()
    if not stations:
        return None
    since = _size(Path(_hostapd(state, port).log))
    for station in stations:
        _hostapd_cli(ctx, rec, state, port, ["raw", f"EAPOL_REAUTH {station}"])
    return _verdict(ctx, rec, state, port, since)


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
    peer = ["peer", "name", "eth0", "address", mac(str(address)), "netns", ns]
    ip(ctx, rec, ["link", "add", port, "netns", edge, "type", "veth", *peer])
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
    atomic.write_secret(wconf, _supplicant_conf(name, Path(state.identity["ca"]), creds, wctrl))
    since = _size(log_of(state, f"hostapd:{port}"))  # the lines of this hostapd, not of a run before it
    hostapd = start_in(ctx, rec, state, f"hostapd:{port}", edge, "hostapd", ["-d", hconf])
    wait_for(hctrl / port, hostapd, f"hostapd on {port}")
    start_in(
        ctx, rec, state, f"wpa_supplicant:{name}", ns, "wpa_supplicant", ["-D", "wired", "-i", "eth0", "-c", wconf]
    )
    verdict = _verdict(ctx, rec, state, port, since)
    device = Device(name, ns, port, str(address), verdict is True, VERDICTS[verdict], False, "no link", 0.0)
    if device.admitted:
        reopen(ctx, rec, state, device)
        ike = ike or creds
        tunnel, tunnel_reason, tunnel_s = ipsec.connect(ctx, rec, plan, state, name, ns, ike.cert, ike.key)
        device = dataclasses.replace(device, tunnel=tunnel, tunnel_reason=tunnel_reason, tunnel_s=tunnel_s)
    state.devices.append(device)
    state.save()
    return device
