"""IPsec device -> fleet and ops -> fleet across the edge: strongSwan (IKEv2, certificate authentication).

A zone whose allow rules say ``via = "ipsec"`` reaches their targets only through a tunnel to the
edge's address in that zone: devices authenticate with the fleet CA's certificates, the ops zone
(an operator at the collector) with the operator CA's; the edge checks both strictly against that
CA's CRL (tasks/network/crl.py). One charon per end (the edge at ``up``, each admitted device at
``attach``, the collector's at ``operator``), each with its own
strongswan.conf (STRONGSWAN_CONF), vici socket and credential directory under the state
directory. ESP runs in userspace (kernel-libipsec over a TUN device, ``ipsec0``) because a
kernel without ESP (CONFIG_INET_ESP) is common in CI VMs; the edge's forward chain accepts
the broker's port only from ``ipsec0`` and drops the same traffic in plaintext.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from tasks.context import Context
from tasks.core import atomic, runner
from tasks.core.errors import NetworkError
from tasks.core.evidence import StageRecord
from tasks.network import crl
from tasks.network.namespaces import is_ours, run_in, start_in, wait_for
from tasks.network.plan import Plan
from tasks.network.state import Process, State

PLUGINS = (
    "random nonce openssl pem pkcs1 pkcs8 x509 revocation constraints pubkey hmac sha2 aes gcm kdf "
    "kernel-libipsec kernel-netlink socket-default vici"
)
IKE_TIMEOUT = 10
EDGE = "edge"  # the edge's charon: its role, and its namespace's
OPERATOR = "ops"  # the collector's charon (an operator's identity): its role, and its namespace's
CA_FILES = {"devices": "ca.pem", "ops": "operator-ca.pem"}  # which CA a tunnelled zone's peers are under
AUTHORITIES = {"devices": crl.FLEET, "ops": crl.OPERATORS}


def _strongswan_conf(directory: Path) -> str:
    # allow_peer_ts: the device's own address is its traffic selector; the fwmarks keep IKE
    # packets to the peer out of the tunnel's routing table (strongSwan's documented pairing)
    return f"""charon-systemd {{
  load = {PLUGINS}
  install_routes = yes
  plugins {{
    vici {{
      socket = unix://{directory}/charon.vici
    }}
    kernel-libipsec {{
      allow_peer_ts = yes
    }}
    kernel-netlink {{
      fwmark = !0x42
    }}
    socket-default {{
      fwmark = 0x42
    }}
  }}
  journal {{
    default = -1
  }}
  filelog {{
    log {{
      path = {directory}/charon.log
      flush_line = yes
      default = 1
      ike = 2
    }}
  }}
}}
"""


def start_charon(
    ctx: Context, rec: StageRecord, state: State, role: str, namespace: str, cert: Path, key: Path
) -> tuple[Process, Path]:
    """A charon in ``namespace``: the edge's CAs (and CRLs) its trust anchors, ``cert``/``key`` its identity."""
    directory = _directory(state, role)
    for sub in ("x509ca", "x509", "x509crl", "private"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    for zone, name in CA_FILES.items():
        ca = AUTHORITIES[zone].ca(state)
        if ca is not None:
            shutil.copyfile(ca, directory / "x509ca" / name)
    _install_crl(state, directory)
    shutil.copyfile(cert, directory / "x509" / "own.pem")
    atomic.write_secret(directory / "private" / "own.key", key.read_bytes())
    conf = directory / "strongswan.conf"
    atomic.write_text(conf, _strongswan_conf(directory))
    process = start_in(
        ctx, rec, state, f"charon:{role}", namespace, "charon-systemd", [], env={"STRONGSWAN_CONF": str(conf)}
    )
    wait_for(directory / "charon.vici", process, f"charon ({role})")
    return process, directory


def subject(cert: Path) -> str:
    """The certificate's subject as an IKE identity (strongSwan's DN syntax, RDNs in order)."""
    try:
        parsed = x509.load_pem_x509_certificate(cert.read_bytes())
    except ValueError as exc:
        raise NetworkError(f"{cert}: not a PEM certificate ({exc})") from exc
    return ", ".join(f"{attr.rfc4514_attribute_name}={attr.value!s}" for attr in parsed.subject)


def _directory(state: State, role: str) -> Path:
    """One charon's home: its strongswan.conf, swanctl.conf, credentials, vici socket and log."""
    return Path(state.directory) / f"ike-{role}"


def _install_crl(state: State, directory: Path) -> None:
    """The edge's CRLs in place (tasks/network/crl.py) where this charon's ``--load-creds`` reads them."""
    for authority in crl.AUTHORITIES:
        in_place = crl.path(state, authority)
        if in_place is not None:
            atomic.write_bytes(directory / "x509crl" / authority.in_place, in_place.read_bytes())


def swanctl(
    ctx: Context,
    rec: StageRecord,
    namespace: str,
    directory: Path,
    args: Sequence[str | Path],
    *,
    check: bool = True,
    timeout: float = 60,
) -> runner.Completed:
    """swanctl against one charon (its own vici socket: several run side by side on this machine)."""
    vici = ["--uri", f"unix://{directory}/charon.vici"]
    return run_in(ctx, rec, namespace, "swanctl", [*args, *vici], check=check, timeout=timeout)


def load(ctx: Context, rec: StageRecord, namespace: str, directory: Path, connections: str) -> None:
    conf = directory / "swanctl.conf"
    atomic.write_text(conf, connections)
    swanctl(ctx, rec, namespace, directory, ["--load-all", "--noprompt", "--file", conf])


def _selectors(plan: Plan, source: str) -> list[str]:
    """The zones the IPsec-only rules from ``source`` lead to: the tunnel carries the zone, the edge's filter
    picks the ports.

    (A host selector would leave the edge without a local address in it to route from.)
    """
    zones = {
        r.target if r.target in plan.zones else plan.hosts[r.target].zone
        for r in plan.allow
        if r.via == "ipsec" and r.source == source
    }
    return sorted(str(plan.zones[z].subnet) for z in zones)


def tunnelled(plan: Plan) -> list[str]:
    """The zones some allow rule lets out only through a tunnel."""
    return sorted({r.source for r in plan.allow if r.via == "ipsec"})


def connections(plan: Plan, identity: str, *, edge: bool, zones: Sequence[str] = ("devices",)) -> str:
    """swanctl.conf for one end: the edge responds in each of ``zones`` on its address there; a device
    (zone devices) or the collector (zone ops) initiates to the edge's address in its own zone.

    Both ends authenticate with their certificate; the edge requires the zone's CA (the fleet CA for
    devices, the operator CA for ops) and checks revocation strictly against that CA's CRL. The child
    SA carries the zones the zone's IPsec-only rules lead to: the edge's local selectors, a peer's remote ones.
    """
    blocks = []
    for zone in zones:
        gateway = plan.zones[zone].gateway
        name, peer = (zone, f"local_addrs = {gateway}") if edge else ("fleet", f"remote_addrs = {gateway}")
        cacerts = CA_FILES[zone] if edge else CA_FILES["devices"]  # a peer authenticates the edge under the fleet CA
        revocation = "\n      revocation = strict" if edge else ""
        selectors = f"{'local_ts' if edge else 'remote_ts'} = {','.join(_selectors(plan, zone))}"
        blocks.append(f"""  {name} {{
    {peer}
    encap = yes
    local {{
      auth = pubkey
      certs = own.pem
      id = "{identity}"
    }}
    remote {{
      auth = pubkey
      cacerts = {cacerts}{revocation}
    }}
    children {{
      broker {{
        {selectors}
        esp_proposals = aes128gcm16
      }}
    }}
  }}
""")
    return "connections {\n" + "".join(blocks) + "}\n"


def start_edge(ctx: Context, rec: StageRecord, plan: Plan, state: State) -> None:
    """The edge's charon: it answers every tunnelled zone whose CA it was given at ``up``."""
    edge = state.namespace(EDGE)
    _, directory = start_charon(ctx, rec, state, EDGE, edge, Path(state.identity["cert"]), Path(state.identity["key"]))
    zones = [z for z in tunnelled(plan) if AUTHORITIES[z].ca(state) is not None]
    load(ctx, rec, edge, directory, connections(plan, subject(Path(state.identity["cert"])), edge=True, zones=zones))


def connect(
    ctx: Context, rec: StageRecord, plan: Plan, state: State, name: str, namespace: str, cert: Path, key: Path
) -> tuple[bool, str, float]:
    """The device's tunnel to the edge; (established, why, seconds swanctl --initiate took)."""
    if "devices" not in tunnelled(plan):
        return False, "no allow rule needs IPsec", 0.0
    _, directory = start_charon(ctx, rec, state, f"dev-{name}", namespace, cert, key)
    return _initiate(ctx, rec, plan, namespace, directory, "devices", cert, name)


def connect_operator(
    ctx: Context, rec: StageRecord, plan: Plan, state: State, cert: Path, key: Path
) -> tuple[bool, str, float]:
    """The collector's tunnel to the edge as the operator of ``cert``: its charon is started once and
    given this identity (its IKE SA of the identity before is deleted first)."""
    if "ops" not in tunnelled(plan):
        return False, "no allow rule from ops needs IPsec", 0.0
    namespace, directory = state.namespace(OPERATOR), _directory(state, OPERATOR)
    running = next((p for p in state.processes if p.role == f"charon:{OPERATOR}" and is_ours(p)), None)
    if running is None:
        start_charon(ctx, rec, state, OPERATOR, namespace, cert, key)
    else:
        swanctl(ctx, rec, namespace, directory, ["--terminate", "--ike", "fleet", "--force"], check=False)
        shutil.copyfile(cert, directory / "x509" / "own.pem")
        atomic.write_secret(directory / "private" / "own.key", key.read_bytes())
    return _initiate(ctx, rec, plan, namespace, directory, "ops", cert, "the operator")


def operator_connected(ctx: Context, rec: StageRecord, state: State) -> bool:
    """The collector's tunnel is up: its charon runs and holds an established IKE SA with an installed CHILD_SA."""
    if not any(p.role == f"charon:{OPERATOR}" and is_ours(p) for p in state.processes):
        return False
    args = ["--list-sas", "--ike", "fleet"]
    listed = swanctl(ctx, rec, state.namespace(OPERATOR), _directory(state, OPERATOR), args, check=False).stdout
    lines = listed.splitlines()
    return any(SA_HEADER.match(line) and "ESTABLISHED" in line for line in lines) and "INSTALLED" in listed


def _initiate(
    ctx: Context, rec: StageRecord, plan: Plan, namespace: str, directory: Path, zone: str, cert: Path, who: str
) -> tuple[bool, str, float]:
    load(ctx, rec, namespace, directory, connections(plan, subject(cert), edge=False, zones=(zone,)))
    t0 = time.monotonic()
    initiate = ["--initiate", "--child", "broker", "--timeout", str(IKE_TIMEOUT)]
    done = swanctl(ctx, rec, namespace, directory, initiate, check=False, timeout=IKE_TIMEOUT + 20)
    seconds = round(time.monotonic() - t0, 3)
    if done.returncode == 0:
        return True, "IKEv2 with certificates: CHILD_SA established", seconds
    failure = [line for line in done.stdout.splitlines() if "AUTHENTICATION_FAILED" in line or "failed" in line]
    if not failure:
        raise NetworkError(f"swanctl --initiate for {who} failed without an IKE answer: {done.tail()}")
    return False, f"IKE refused: {failure[-1].strip()}", seconds


@dataclass(frozen=True)
class IkeSa:
    """One IKE SA the edge's charon holds: its unique id, the peer's authenticated identity and address."""

    uniqueid: int
    remote_id: str
    remote_host: str


SA_HEADER = re.compile(r"^\S+: #(\d+), \w+, IKEv\d")
SA_REMOTE = re.compile(r"^\s+remote '(.*)' @ ([^\s\[]+)\[")
CERT_SUBJECT = re.compile(r'^\s+subject:\s+"(.*)"$')
SERIAL = re.compile(r"^\s+serial:\s+([0-9a-fA-F:]+)$")


def _edge(ctx: Context, rec: StageRecord, state: State, args: Sequence[str | Path]) -> runner.Completed:
    return swanctl(ctx, rec, state.namespace(EDGE), _directory(state, EDGE), args)


def reload_crl(ctx: Context, rec: StageRecord, state: State) -> list[int]:
    """Hand the edge's charon the CRL in place; returns the CRL numbers charon then holds.

    Measured with strongSwan 5.9.8: ``--load-creds`` of the edge's whole directory replaces the
    loaded CRL by the newer one ("crl #0b is newer - existing crl #0a replaced"), but the old CRL
    also sits in charon's certificate cache (cached when its signature was verified) and the
    revocation check still took it ("using cached crl ... certificate status is good" for a
    revoked certificate), so the cached CRLs are flushed (``--flush-certs --type x509crl``). Not
    ``--clear``: it flushes the whole cache, the peers' certificates ``peer_serials`` reads
    included. Not a directory holding the CRL only: ``--load-creds`` unloads every private key it
    did not load this time, the edge's own ("no private key found for 'CN=edge'"). Established
    IKE SAs are not checked again: see ``terminate``.
    """
    directory = _directory(state, EDGE)
    _install_crl(state, directory)
    _edge(ctx, rec, state, ["--load-creds", "--noprompt", "--file", directory / "swanctl.conf"])
    _edge(ctx, rec, state, ["--flush-certs", "--type", "x509crl"])
    listed = _edge(ctx, rec, state, ["--list-certs", "--type", "x509crl"]).stdout.splitlines()
    return [int(m.group(1).replace(":", ""), 16) for m in map(SERIAL.match, listed) if m]


def established(ctx: Context, rec: StageRecord, state: State) -> list[IkeSa]:
    """Every IKE SA of the edge, with the identity its peer authenticated as (``--list-sas``)."""
    sas, uniqueid = [], None
    for line in _edge(ctx, rec, state, ["--list-sas"]).stdout.splitlines():
        if header := SA_HEADER.match(line):
            uniqueid = int(header.group(1))
        elif (remote := SA_REMOTE.match(line)) and uniqueid is not None:
            sas.append(IkeSa(uniqueid, remote.group(1), remote.group(2)))
            uniqueid = None
    return sas


def peer_serials(ctx: Context, rec: StageRecord, state: State) -> dict[str, set[int]]:
    """Certificate serials by subject, as the edge's charon holds them (``--list-certs``: its own
    credentials and the peers' certificates it verified, both printed in the syntax of an SA's remote
    identity). The peers' come from charon's certificate cache: 32 entries, replaced at random when
    full, so a peer may be missing there on a busy edge (``quarantine`` then re-checks its SA)."""
    serials: dict[str, set[int]] = {}
    subject = None
    for line in _edge(ctx, rec, state, ["--list-certs", "--type", "x509"]).stdout.splitlines():
        if found := CERT_SUBJECT.match(line):
            subject = found.group(1)
        elif (serial := SERIAL.match(line)) and subject is not None:
            serials.setdefault(subject, set()).add(int(serial.group(1).replace(":", ""), 16))
            subject = None
    return serials


def terminate(ctx: Context, rec: StageRecord, state: State, sa: IkeSa) -> bool:
    """Delete one IKE SA at the edge (with its CHILD_SAs); True when charon no longer holds it.

    ``--force``: the DELETE goes to the device, but the SA is destroyed without waiting for its
    answer - a device whose port was just closed can no longer answer (measured: 2 s to the
    timeout otherwise). Its peer must authenticate again, which ``revocation = strict`` refuses
    for a revoked certificate.
    """
    _edge(ctx, rec, state, ["--terminate", "--ike-id", str(sa.uniqueid), "--force"])
    return all(other.uniqueid != sa.uniqueid for other in established(ctx, rec, state))
