"""nox -s network -- up|attach|operator|checkin|crl|status|report|scan|rules|down"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from tasks import network
from tasks.context import Context
from tasks.core import atomic
from tasks.core.checks import Check, conclude
from tasks.core.console import console
from tasks.core.errors import InputError, NetworkError
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.media_types import REPORT_MEDIA_TYPE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nox -s network --", description="the device network in namespaces")
    parser.add_argument("--state", type=Path, help="where the running topology is recorded (default out/network)")
    sub = parser.add_subparsers(dest="action", required=True)
    up = sub.add_parser("up", help="build the zones, the gateway's rules and the flow probe")
    up.add_argument("--ca", type=Path, required=True, help="the fleet CA certificate (PEM) devices are enrolled under")
    up.add_argument("--eap-cert", type=Path, required=True, help="the edge's EAP-TLS server certificate (PEM)")
    up.add_argument("--eap-key", type=Path, required=True, help="its private key (PEM)")
    up.add_argument("--crl", type=Path, help="the fleet CA's CRL (PEM): revoked devices are refused at the port")
    up.add_argument(
        "--operator-ca", type=Path, help="the operator CA (PEM): its certificates open the ops zone's tunnel"
    )
    up.add_argument("--operator-crl", type=Path, help="the operator CA's CRL (PEM): revoked operators are refused")
    up.add_argument(
        "--server-trust",
        type=Path,
        required=True,
        help="the fleet server's SECURE_IOT_TRUST_DIR (manufacturer CA, pipeline key, fleet CA)",
    )
    up.add_argument(
        "--server-cert",
        type=Path,
        required=True,
        help="the fleet server's TLS certificate for its address (PEM, under the fleet CA)",
    )
    up.add_argument("--server-key", type=Path, required=True, help="its private key (PEM)")
    attach = sub.add_parser("attach", help="wire a device to a new port; 802.1X decides whether it opens")
    attach.add_argument("name")
    attach.add_argument("--cert", type=Path, required=True, help="the device's enrolled certificate (PEM)")
    attach.add_argument("--key", type=Path, required=True, help="the device's private key (PEM)")
    attach.add_argument("--ike-cert", type=Path, help="a different certificate for IKE (default: --cert)")
    attach.add_argument("--ike-key", type=Path, help="its private key (default: --key)")
    operator = sub.add_parser(
        "operator", help="the collector's tunnel to the edge as an operator (the ops zone reaches the fleet through it)"
    )
    operator.add_argument(
        "--cert", type=Path, required=True, help="the operator's certificate (PEM, the operator CA's)"
    )
    operator.add_argument("--key", type=Path, required=True, help="its private key (PEM)")
    checkin = sub.add_parser("checkin", help="the device's update check and telemetry to the fleet server (mTLS)")
    checkin.add_argument("name")
    checkin.add_argument("--cert", type=Path, required=True, help="the device's enrolled certificate (PEM)")
    checkin.add_argument("--key", type=Path, required=True, help="the device's private key (PEM)")
    checkin.add_argument("--security-version", type=int, default=0, help="the firmware's security version")
    crl = sub.add_parser(
        "crl",
        help="put the fleet CA's or the operator CA's new CRL in place at the edge: revoked ports closed, "
        "their IKE SAs deleted",
    )
    source = crl.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--file", type=Path, help="the CRL (PEM or DER), signed by the fleet CA of `up --ca` or the operator CA"
    )
    source.add_argument(
        "--url", help="the fleet server's base URL, fetched from the edge: GET <url>/attestation/crl (https only)"
    )
    crl.add_argument("--server-ca", type=Path, help="the CA of the fleet server's TLS certificate (default: `up --ca`)")
    sub.add_parser("status", help="namespaces and daemons of the running topology")
    sub.add_parser("report", help="flows per device; fails on any flow the allow-list does not explain")
    scan = sub.add_parser("scan", help="nmap from ops vs the declared exposure; fails on an undeclared open port")
    scan.add_argument("--ports", default="1-65535", help="nmap port range (default: all)")
    sub.add_parser("rules", help="print the gateway's nftables rules generated from infra/network")
    sub.add_parser("down", help="stop every daemon by PID, delete every namespace, check nothing is left")
    return parser


def _require_root() -> None:
    if os.geteuid() != 0:
        raise NetworkError("network namespaces need root (CAP_NET_ADMIN): run as root")


def _running(directory: Path) -> network.State:
    state = network.state.load(directory)
    if state is None:
        raise NetworkError(f"no topology is up ({directory}); run `nox -s network -- up` first")
    return state


def _crl(ctx: Context, rec: StageRecord, state: network.State, args: argparse.Namespace, directory: Path) -> Verdict:
    """The CRL from a file or from the fleet server, put in place; a refused one fails before any change."""
    source = args.url or str(args.file)
    if args.file and not args.file.is_file():
        raise NetworkError(f"{args.file}: missing (the fleet CA's CRL, PEM or DER)")
    authority = network.crl.FLEET
    try:
        if args.url:
            server_ca = (args.server_ca or Path(state.identity["ca"])).resolve()
            data = network.quarantine.fetch(ctx, rec, state, args.url, server_ca)
        else:
            data = args.file.read_bytes()
        authority = network.crl.authority_of(state, data)
        checks = network.quarantine.put_in_place(ctx, rec, state, data, authority)
    except InputError as exc:
        kept = f"the edge keeps CRL #{network.crl.number(state, authority)}"
        raise InputError(
            f"{source}: {exc}; {kept}" + ("" if authority is network.crl.FLEET else f" of the {authority.name}")
        ) from None
    rec.details["crl"] = {"source": source, "authority": authority.name, "number": network.crl.number(state, authority)}
    return conclude(rec, f"network crl ({source})", checks, report=directory / "crl.json")


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    args = _parser().parse_args(argv)
    plan = network.load(ctx.root)
    directory = (args.state or ctx.out / "network").resolve()
    rec.details["state"] = str(directory)
    if args.action == "rules":
        sys.stdout.write(network.generate(plan))  # verbatim: `nft -c -f -` can read it
        return "pass"
    _require_root()
    if args.action == "up":
        t0 = time.monotonic()
        identity = network.Identity(
            args.ca.resolve(),
            args.eap_cert.resolve(),
            args.eap_key.resolve(),
            args.crl.resolve() if args.crl else None,
            args.operator_ca.resolve() if args.operator_ca else None,
            args.operator_crl.resolve() if args.operator_crl else None,
        )
        server = network.FleetServer(args.server_trust.resolve(), args.server_cert.resolve(), args.server_key.resolve())
        state = network.up(ctx, rec, plan, directory, identity, server)
        rec.details.update({"prefix": state.prefix, "up_s": round(time.monotonic() - t0, 3)})
        rec.add_output(state.path, "application/json")
        console.print(
            f"[green]network: up[/] — {state.prefix}: {', '.join(state.namespaces)} ({rec.details['up_s']} s)"
        )
        return "pass"
    state = _running(directory)
    rec.details["prefix"] = state.prefix
    if args.action == "attach":
        creds = network.Credentials(args.cert.resolve(), args.key.resolve())
        ike = None
        if args.ike_cert or args.ike_key:
            if not (args.ike_cert and args.ike_key):
                raise NetworkError("--ike-cert and --ike-key go together")
            ike = network.Credentials(args.ike_cert.resolve(), args.ike_key.resolve())
        device = network.attach(ctx, rec, plan, state, args.name, creds, ike)
        rec.details["device"] = {
            "name": device.name,
            "address": device.address,
            "admitted": device.admitted,
            "tunnel": device.tunnel,
        }
        checks = [Check(f"{device.name}: 802.1X", device.admitted, device.reason)]
        if device.admitted and plan.needs_ipsec:
            checks.append(Check(f"{device.name}: IPsec", device.tunnel, device.tunnel_reason))
        return conclude(rec, f"network attach {device.name}", checks, report=directory / f"attach-{device.name}.json")
    if args.action == "operator":
        for path in (args.cert, args.key):
            if not path.is_file():
                raise NetworkError(f"{path}: missing (the operator's certificate and key)")
        tunnel, why, seconds = network.ipsec.connect_operator(
            ctx, rec, plan, state, args.cert.resolve(), args.key.resolve()
        )
        subject = network.ipsec.subject(args.cert)
        rec.details["operator"] = {"subject": subject, "tunnel": tunnel, "ike_s": seconds}
        checks = [Check(f"operator {subject}: IPsec", tunnel, why)]
        return conclude(rec, "network operator", checks, report=directory / "operator.json")
    if args.action == "checkin":
        creds = network.Credentials(args.cert.resolve(), args.key.resolve())
        calls = network.check_in(ctx, rec, plan, state, args.name, creds, args.security_version)
        rec.details["calls"] = [{"endpoint": c.endpoint, "status": c.status, "body": c.body} for c in calls]
        expected = {"GET /updates/check": 200, "POST /telemetry": 202}
        checks = [
            Check(
                f"{args.name}: {c.endpoint}",
                c.status == expected[c.endpoint],
                f"HTTP {c.status}: {c.body[:160]}" if c.status else f"no answer: {c.body[:160]}",
            )
            for c in calls
        ]
        return conclude(
            rec,
            f"network checkin {args.name}",
            checks,
            report=directory / f"checkin-{args.name}.json",
            document={"calls": rec.details["calls"]},
        )
    if args.action == "crl":
        return _crl(ctx, rec, state, args, directory)
    if args.action == "status":
        return conclude(
            rec, f"network {state.prefix}", network.status(ctx, rec, state), report=directory / "status.json"
        )
    if args.action == "report":
        document = network.flows.report(ctx, rec, plan, state)
        report = ctx.stage_dir("network") / "flows.json"
        atomic.write_json(report, document)
        rec.add_output(report, REPORT_MEDIA_TYPE)
        checks = [
            Check(
                f"{name}: flows",
                summary["unexplained"] == 0,
                f"{summary['flows']} flows, {summary['packets']} packets, {summary['unexplained']} unexplained",
            )
            for name, summary in document["devices"].items()
        ]
        checks += [
            Check(
                f"unexplained {f['device']} -> {f['target']} {f['proto']}/{f['port']}",
                False,
                f"{f['packets']} packets to zone {f['target_zone']}: no allow rule",
            )
            for f in document["unexplained"]
        ]
        if not checks:
            checks = [Check("flows", True, "no device sent anything")]
        return conclude(rec, "network flow report", checks, report=ctx.stage_dir("network") / "flow-report.json")
    if args.action == "scan":
        out = ctx.stage_dir("network")
        checks = network.exposure.scan(ctx, rec, plan, state, out, args.ports)
        return conclude(rec, "network continuous scan", checks, report=out / "scan.json")
    t0 = time.monotonic()
    checks = network.down(ctx, rec, state)
    rec.details["down_s"] = round(time.monotonic() - t0, 3)
    return conclude(rec, f"network down ({state.prefix})", checks, report=directory / "down.json")
