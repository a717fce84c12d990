"""A quarantine reaches the edge: the fleet CA's new CRL put in place at a running edge (issue #29);
an operator's revocation too: the operator CA's CRL, by the same path, ends its tunnel (issue #30).

``put_in_place`` takes a CRL (a file, or the fleet server's GET /attestation/crl fetched from the
edge's own namespace with tasks/device/revocations.py's ``refresh``) and, only if tasks/network/crl.py
accepts it, makes every door of the edge follow it:

- new 802.1X authentications: hostapd's CA + CRL bundle is rewritten; each port's hostapd reads it
  again at its next TLS session (``crl_reload_interval``; a reload or SIGHUP would not, see
  port_access). The edge waits out that interval before it re-authenticates anyone.
- admitted ports: a port whose admitted certificate (hostapd's own log names its serial) is revoked,
  or unknown, is removed from the ``admitted`` set at once - its traffic is dropped from that
  packet on - then hostapd re-authenticates it under the new CRL. It is let back in only if hostapd
  authorises it again with a certificate the CRL does not revoke.
- new IKE authentications: the edge's charon loads the new CRL (``revocation = strict``).
- established IKE SAs, which charon never checks again: an SA is deleted when its peer's identity is
  a revoked certificate charon holds (``--list-certs``, matched to ``--list-sas``' remote identity),
  when charon no longer lists any certificate for that identity, or when its device's port was just
  closed. Its device must authenticate again, and charon refuses a revoked certificate.

A CRL that does not verify, is stale, is older than the one in place or that charon could not find
changes nothing: the error names why, and the edge keeps enforcing the CRL it has.

How long the edge can lag behind a quarantine: the fleet server rebuilds its CRL at the first request
after a quarantine (app/src/secure_iot_server/crl.py), so the edge follows at its next refresh - at
most the refresh interval I of whoever runs ``network -- crl --url`` (a timer; with 100 s, the
server's rebuild period, a CRL served up to 100 s old still leaves one more try before it expires),
plus the time this module takes (1.4 s for one quarantined device in bench/network.py, 1.1 s of it
waiting out hostapd's reload interval; one EAP-TLS exchange more per closed port). If the fleet
server cannot be reached, the CRL in place stays until its nextUpdate, 300 s after the server built
it, which was before the quarantine: so at most 300 s (within the bound of I + 300 s) after the
quarantine, hostapd (check_crl_strict) and charon (strict, stale CRL) refuse every new
authentication, the quarantined device's included. A port and an SA admitted before stay up until a
CRL is put in place: the edge re-checks established sessions only here, so while the fleet server
stays unreachable an admitted quarantined device is not cut off.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from tasks.context import Context
from tasks.core.checks import Check
from tasks.core.errors import InputError, NetworkError
from tasks.core.evidence import StageRecord
from tasks.device import revocations
from tasks.device.server_settings import PYTHON
from tasks.network import crl, ipsec, port_access
from tasks.network.namespaces import run_in
from tasks.network.state import Device, State

FETCH_TIMEOUT = 30
OUTCOMES = {  # hostapd's verdict on a closed port's re-authentication
    False: "re-authentication refused",
    None: "no re-authentication (no supplicant answered)",
    True: "yet hostapd authorised a revoked certificate again: its CRL is not in effect",
}
ROOT = Path(__file__).resolve().parents[2]  # the checkout whose tasks/ package the edge's fetch imports


def fetch(ctx: Context, rec: StageRecord, state: State, url: str, server_ca: Path) -> bytes:
    """The fleet server's current CRL as the edge gets it: ``revocations.refresh`` run in the edge's
    namespace (the edge reaches the fleet zone; the pipeline's own process need not), into a file of
    its own. InputError with refresh's reason when it fetched nothing it could verify."""
    staged = Path(state.directory) / "fetched.crl.pem"
    staged.unlink(missing_ok=True)  # refresh compares numbers with its dest: here that is put_in_place's job
    args: list[str | Path] = ["-m", "tasks.network.fetch_crl", url, server_ca, state.identity["ca"], staged]
    edge, env = state.namespace(ipsec.EDGE), {"PYTHONPATH": str(ROOT)}
    done = run_in(ctx, rec, edge, PYTHON, args, check=False, timeout=FETCH_TIMEOUT, env=env)
    if done.returncode != 0:
        raise InputError(done.tail(1))
    return staged.read_bytes()


def put_in_place(
    ctx: Context, rec: StageRecord, state: State, data: bytes, authority: crl.Authority | None = None
) -> list[Check]:
    """Check ``data`` (a CRL, PEM or DER) against its CA - the fleet CA's or the operator CA's, by its issuer
    (tasks/network/crl.py) - and the CRL in place for it; if it passes, make hostapd (the fleet CA's) and
    charon enforce it and cut off every admitted port and IKE SA it revokes. Raises InputError, changing
    nothing, when it does not pass. ``authority``: the caller's own reading of the issuer, if it has one."""
    authority = authority or crl.authority_of(state, data)
    current, issuer = crl.path(state, authority), authority.ca(state)
    if current is None or issuer is None:
        raise NetworkError(f"this edge was brought up without {authority.option}: `down`, then `up {authority.option}`")
    new = crl.checked(data, issuer, current)
    revoked = {entry.serial_number for entry in new}
    serials = ipsec.peer_serials(ctx, rec, state)  # read before charon touches its credentials
    crl.place(state, new, authority)
    ports = authority is crl.FLEET  # 802.1X ports are the fleet CA's devices only
    if ports:
        port_access.write_bundle(state)
    written = time.monotonic()
    held = ipsec.reload_crl(ctx, rec, state)
    number = revocations.number_of(new)
    checks = [
        Check(
            f"CRL #{number}",
            True,
            f"{authority.name}'s, {len(revoked)} revoked, next update {new.next_update_utc:%Y-%m-%d %H:%M:%S}Z",
        ),
        Check("charon: CRL loaded", number in held, f"charon holds CRL {', '.join(f'#{n}' for n in held) or 'none'}"),
    ]
    closed: set[str] = set()
    if ports:
        # every port's hostapd reads the new bundle at its first TLS session from then on
        time.sleep(max(0.0, written + port_access.CRL_RELOAD_S + 0.1 - time.monotonic()))
        closed, port_checks = _ports(ctx, rec, state, revoked, number)
        checks += port_checks
    return checks + _tunnels(ctx, rec, state, serials, revoked, closed, number)


def _replace(state: State, device: Device, **changes: object) -> None:
    state.devices[state.devices.index(device)] = dataclasses.replace(device, **changes)  # type: ignore[arg-type]
    state.save()


def _ports(
    ctx: Context, rec: StageRecord, state: State, revoked: set[int], number: int
) -> tuple[set[str], list[Check]]:
    """Close every admitted port whose certificate is revoked or unknown, then let hostapd decide
    again under the new CRL; returns the addresses of the ports left closed, and a check per port."""
    closed, checks = set(), []
    for device in [d for d in state.devices if d.admitted]:
        serial = port_access.admitted_serial(state, device.port)
        if serial is not None and serial not in revoked:
            continue
        port_access.close(ctx, rec, state, device)
        verdict = port_access.reauthenticate(ctx, rec, state, device.port)
        now = port_access.admitted_serial(state, device.port)
        if verdict and now is not None and now not in revoked:
            port_access.reopen(ctx, rec, state, device)
            checks.append(Check(f"{device.name}: port {device.port}", True, f"re-authenticated with {now:x}: kept"))
            continue
        closed.add(device.address)
        why = f"certificate {serial:x} revoked by CRL #{number}" if serial is not None else "its certificate unknown"
        reason = f"802.1X: {why}: port closed, {OUTCOMES[verdict]}"
        _replace(state, device, admitted=False, reason=reason)
        checks.append(Check(f"{device.name}: port {device.port}", verdict is not True, reason))
    return closed, checks


def _sa_condemned(sa: ipsec.IkeSa, serials: dict[str, set[int]], revoked: set[int], closed: set[str]) -> str | None:
    """Why an established IKE SA must go (None: it stays)."""
    held = serials.get(sa.remote_id, set())
    if held & revoked:
        return f"identity {sa.remote_id!r} ({', '.join(f'{s:x}' for s in sorted(held & revoked))}) revoked"
    if not held:
        return f"charon lists no certificate for {sa.remote_id!r}: it must authenticate again"
    if sa.remote_host in closed:
        return f"its port ({sa.remote_host}) was closed"
    return None


def _tunnels(
    ctx: Context,
    rec: StageRecord,
    state: State,
    serials: dict[str, set[int]],
    revoked: set[int],
    closed: set[str],
    number: int,
) -> list[Check]:
    """Delete every IKE SA of the edge that the new CRL condemns (``serials``: the certificates charon
    held, by subject); a check per deleted SA."""
    checks = []
    for sa in ipsec.established(ctx, rec, state):
        why = _sa_condemned(sa, serials, revoked, closed)
        if why is None:
            continue
        gone = ipsec.terminate(ctx, rec, state, sa)
        # the SA's outer address names its device: the bridge binds each port to its address (ruleset.BOUND_SET)
        device = next((d for d in state.devices if d.address == sa.remote_host), None)
        if device is not None and gone:
            _replace(state, device, tunnel=False, tunnel_reason=f"IKE SA deleted at CRL #{number}: {why}")
        name = device.name if device is not None else sa.remote_host
        checks.append(Check(f"{name}: IKE SA #{sa.uniqueid}", gone, f"{why}: {'deleted' if gone else 'still held'}"))
    return checks
