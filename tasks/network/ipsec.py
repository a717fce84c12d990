"""IPsec device -> fleet across the edge: strongSwan (IKEv2, certificate authentication).

One charon per end (the edge at ``up``, each admitted device at ``attach``), each with its own
strongswan.conf (STRONGSWAN_CONF), vici socket and credential directory under the state
directory. ESP runs in userspace (kernel-libipsec over a TUN device, ``ipsec0``) because a
kernel without ESP (CONFIG_INET_ESP) is common in CI VMs; the edge's forward chain accepts
the broker's port only from ``ipsec0`` and drops the same traffic in plaintext.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from cryptography import x509

from tasks.context import Context
from tasks.core import atomic
from tasks.core.errors import NetworkError
from tasks.core.evidence import StageRecord
from tasks.network.namespaces import run_in, start_in, wait_for
from tasks.network.plan import Plan
from tasks.network.state import Process, State

PLUGINS = (
    "random nonce openssl pem pkcs1 pkcs8 x509 revocation constraints pubkey hmac sha2 aes gcm kdf "
    "kernel-libipsec kernel-netlink socket-default vici"
)
IKE_TIMEOUT = 10


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
      default = 1
      ike = 2
    }}
  }}
}}
"""


def start_charon(
    ctx: Context, rec: StageRecord, state: State, role: str, namespace: str, cert: Path, key: Path
) -> tuple[Process, Path]:
    """A charon in ``namespace`` with the fleet CA (and CRL) as trust anchors and ``cert``/``key`` as its identity."""
    directory = Path(state.directory) / f"ike-{role}"
    for sub in ("x509ca", "x509", "x509crl", "private"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(state.identity["ca"], directory / "x509ca" / "ca.pem")
    if state.identity.get("crl"):
        shutil.copyfile(state.identity["crl"], directory / "x509crl" / "ca.crl.pem")
    shutil.copyfile(cert, directory / "x509" / "own.pem")
    atomic.write_bytes(directory / "private" / "own.key", key.read_bytes(), mode=0o600)
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


def load(ctx: Context, rec: StageRecord, namespace: str, directory: Path, connections: str) -> None:
    swanctl = directory / "swanctl.conf"
    atomic.write_text(swanctl, connections)
    run_in(
        ctx,
        rec,
        namespace,
        "swanctl",
        ["--load-all", "--noprompt", "--uri", f"unix://{directory}/charon.vici", "--file", swanctl],
    )


def _selectors(plan: Plan) -> list[str]:
    """The zones an IPsec-only rule leads to: the tunnel carries the zone, the edge's filter picks the ports.

    (A host selector would leave the edge without a local address in it to route from.)
    """
    zones = {r.target if r.target in plan.zones else plan.hosts[r.target].zone for r in plan.allow if r.via == "ipsec"}
    return sorted(str(plan.zones[z].subnet) for z in zones)


def connections(plan: Plan, identity: str, *, edge: bool) -> str:
    """swanctl.conf for one end: the edge responds on the device LAN, a device initiates to it.

    Both ends authenticate with their certificate under the fleet CA; the edge also checks
    revocation strictly (the CRL of ``up --crl``). The child SA carries the zones IPsec-only
    rules lead to: the edge's local selectors, a device's remote ones.
    """
    gateway = plan.zones["devices"].gateway
    name, peer = ("devices", f"local_addrs = {gateway}") if edge else ("fleet", f"remote_addrs = {gateway}")
    revocation = "\n      revocation = strict" if edge else ""
    selectors = f"{'local_ts' if edge else 'remote_ts'} = {','.join(_selectors(plan))}"
    return f"""connections {{
  {name} {{
    {peer}
    encap = yes
    local {{
      auth = pubkey
      certs = own.pem
      id = "{identity}"
    }}
    remote {{
      auth = pubkey
      cacerts = ca.pem{revocation}
    }}
    children {{
      broker {{
        {selectors}
        esp_proposals = aes128gcm16
      }}
    }}
  }}
}}
"""


def start_edge(ctx: Context, rec: StageRecord, plan: Plan, state: State) -> None:
    edge = state.namespace("edge")
    _, directory = start_charon(
        ctx, rec, state, "edge", edge, Path(state.identity["cert"]), Path(state.identity["key"])
    )
    load(ctx, rec, edge, directory, connections(plan, subject(Path(state.identity["cert"])), edge=True))


def connect(
    ctx: Context, rec: StageRecord, plan: Plan, state: State, name: str, namespace: str, cert: Path, key: Path
) -> tuple[bool, str, float]:
    """The device's tunnel to the edge; (established, why, seconds swanctl --initiate took)."""
    if not plan.needs_ipsec:
        return False, "no allow rule needs IPsec", 0.0
    _, directory = start_charon(ctx, rec, state, f"dev-{name}", namespace, cert, key)
    load(ctx, rec, namespace, directory, connections(plan, subject(cert), edge=False))
    t0 = time.monotonic()
    done = run_in(
        ctx,
        rec,
        namespace,
        "swanctl",
        ["--initiate", "--child", "broker", "--timeout", str(IKE_TIMEOUT), "--uri", f"unix://{directory}/charon.vici"],
        check=False,
        timeout=IKE_TIMEOUT + 20,
    )
    seconds = round(time.monotonic() - t0, 3)
    if done.returncode == 0:
        return True, "IKEv2 with certificates: CHILD_SA established", seconds
    failure = [line for line in done.stdout.splitlines() if "AUTHENTICATION_FAILED" in line or "failed" in line]
    if not failure:
        raise NetworkError(f"swanctl --initiate for {name} failed without an IKE answer: {done.tail()}")
    return False, f"IKE refused: {failure[-1].strip()}", seconds
