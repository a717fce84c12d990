"""Benchmark the device network: up and down, admission, tunnel set-up, IPsec vs plain, a quarantine, collector rate.

    python bench/network.py [--runs N] [--flows N]        (root: network namespaces)

Each run builds the topology with a throwaway fleet CA and the real fleet server (as the tests
do), attaches one enrolled device (802.1X/EAP-TLS, then its IKEv2 tunnel), and measures iperf3
from that device to the fleet server's address through the edge twice on the same run: inside
the tunnel, then — its CHILD_SA terminated, so its routes no longer lead into ``ipsec0`` — in
plaintext. For both, the bench inserts one counted accept for the iperf3 port at the top of
the edge's forward chain (the allow-list has no iperf3 port; nothing else changes). Then the
device brings its tunnel up again and is quarantined: the time to put a CRL revoking it in place
(hostapd's bundle, charon's CRL, its port closed and refused at re-authentication, its IKE SA
deleted). Then it takes everything down and checks nothing is left. Separately, the collector's rate: nfpcapd
turns a pcap of ``--flows`` distinct TCP flows into flow records, and nfdump must read back
exactly that many. Times are of the library calls the stage makes (no CLI start-up). Prints a
table and writes out/bench/network.json. Not a test: figures go to the README.
"""

from __future__ import annotations

import argparse
import json
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "app" / "src"))  # tests' make_fleet enrols with the server's code

from tasks import network  # noqa: E402
from tasks.context import Context  # noqa: E402
from tasks.core import runner  # noqa: E402
from tasks.core.evidence import StageRecord  # noqa: E402
from tasks.network.flows import parse_csv  # noqa: E402
from tasks.network.namespaces import run_in, start_in, stop  # noqa: E402
from tests.support.network_pki import make_fleet, revocation_list  # noqa: E402

IPERF_PORT = 5201
SECONDS = 3


def _iperf(ctx: Context, rec: StageRecord, state: network.State, device: str, server: str, rule: str) -> float:
    """Gbit/s from the device to the server, with ``rule`` (an nft match) accepted at the top of forward."""
    edge = state.namespace("edge")
    run_in(ctx, rec, edge, "nft", ["insert", "rule", "inet", "gateway", "forward", *rule.split(), "counter", "accept"])
    done = run_in(
        ctx, rec, device, "iperf3", ["-c", server, "-p", str(IPERF_PORT), "-t", str(SECONDS), "-J"], timeout=60
    )
    return float(json.loads(done.stdout)["end"]["sum_received"]["bits_per_second"]) / 1e9


def one_run(work: Path) -> dict[str, float]:
    fleet = make_fleet(work)
    rec = StageRecord(stage="bench", root=ROOT)
    ctx = Context.create(root=ROOT, out=work / "out").bind(rec)
    plan = network.load(ROOT)
    identity = network.Identity(fleet.cert("ca"), fleet.cert("edge"), fleet.key("edge"), work / "crl.pem")
    server = network.FleetServer(fleet.trust, fleet.cert("fleet-server"), fleet.key("fleet-server"))
    t0 = time.monotonic()
    state = network.up(ctx, rec, plan, work / "state", identity, server)
    up_s = time.monotonic() - t0
    try:
        t0 = time.monotonic()
        device = network.attach(
            ctx, rec, plan, state, "good", network.Credentials(fleet.cert("dev-good"), fleet.key("dev-good"))
        )
        attach_s = time.monotonic() - t0
        assert device.admitted and device.tunnel, (device.reason, device.tunnel_reason)
        address = str(plan.hosts["fleet-server"].address)
        iperf = start_in(
            ctx, rec, state, "iperf3", state.namespace("fleet"), "iperf3", ["-s", "-B", address, "-p", str(IPERF_PORT)]
        )
        time.sleep(0.5)
        match = f"ip saddr {device.address} ip daddr {address} tcp dport {IPERF_PORT}"
        ipsec_gbps = _iperf(ctx, rec, state, device.namespace, address, f"iifname ipsec0 {match}")
        vici = f"unix://{state.directory}/ike-dev-good/charon.vici"
        run_in(ctx, rec, device.namespace, "swanctl", ["--terminate", "--ike", "fleet", "--uri", vici])
        plain_gbps = _iperf(ctx, rec, state, device.namespace, address, match)
        stop(iperf)
        run_in(ctx, rec, device.namespace, "swanctl", ["--initiate", "--child", "broker", "--uri", vici])
        t0 = time.monotonic()
        cut = network.quarantine.put_in_place(ctx, rec, state, revocation_list(fleet, ["dev-good"], number=2))
        quarantine_s = time.monotonic() - t0
        assert len(cut) == 4 and all(c.passed for c in cut), cut  # the CRL, charon's copy, the port, the SA
    finally:
        t0 = time.monotonic()
        checks = network.down(ctx, rec, state)
        down_s = time.monotonic() - t0
    assert all(c.passed for c in checks), checks
    return {
        "up_s": up_s,
        "attach_s": attach_s,
        "tunnel_s": device.tunnel_s,
        "down_s": down_s,
        "ipsec_gbps": ipsec_gbps,
        "plain_gbps": plain_gbps,
        "ipsec_share": ipsec_gbps / plain_gbps,
        "quarantine_s": quarantine_s,
    }


def write_pcap(path: Path, flows: int) -> None:
    """One TCP SYN per flow (Ethernet/IPv4/TCP), each with its own source port and address."""
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        eth = bytes(6) + bytes([2, 0, 0, 0, 0, 1]) + b"\x08\x00"
        for i in range(flows):
            src = bytes([10, 60, 1, 10 + i // 60000])
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, i & 0xFFFF, 0, 64, 6, 0, src, bytes([10, 60, 2, 10]))
            tcp = struct.pack("!HHIIBBHHH", 1024 + i % 60000, 8443, i, 0, 0x50, 0x02, 65535, 0, 0)
            frame = eth + ip + tcp
            seconds, micros = divmod(i * 10, 1_000_000)
            out.write(struct.pack("<IIII", 1_700_000_000 + seconds, micros, len(frame), len(frame)) + frame)


def collector(work: Path, flows: int) -> dict[str, float]:
    rec = StageRecord(stage="bench", root=ROOT)
    ctx = Context.create(root=ROOT, out=work / "out").bind(rec)
    pcap, store = work / "flows.pcap", work / "store"
    store.mkdir()
    write_pcap(pcap, flows)
    t0 = time.monotonic()
    runner.run(rec, ctx.tool("nfpcapd"), ["-r", pcap, "-w", store], timeout=600)
    seconds = time.monotonic() - t0
    done = runner.run(rec, ctx.tool("nfdump"), ["-R", store, "-o", "csv"], timeout=600)
    read = len(parse_csv(done.stdout))
    assert read == flows, f"nfdump read {read} flows of {flows}"
    return {"collector_flows": flows, "collector_s": seconds, "collector_flows_per_s": flows / seconds}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--flows", type=int, default=200_000)
    args = parser.parse_args()
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench-network-") as tmp:
            Path(tmp).chmod(0o711)  # the fleet database's postgres user traverses it to its data directory
            runs.append(one_run(Path(tmp)))
    result: dict[str, float] = {key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]}
    with tempfile.TemporaryDirectory(prefix="bench-collector-") as tmp:
        result |= {k: round(v, 3) for k, v in collector(Path(tmp), args.flows).items()}
    result["runs"] = args.runs
    out = ROOT / "out" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "network.json").write_text(json.dumps({"median": result, "runs": runs}, indent=2) + "\n")
    for key, value in result.items():
        print(f"{key:>22}  {value}")


if __name__ == "__main__":
    main()
