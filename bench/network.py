"""Benchmark the device network: topology up and down, 802.1X admission, throughput through the edge.

    python bench/network.py [--runs N]        (root: network namespaces)

Each run builds the topology with a throwaway fleet CA (as the tests do), attaches one
enrolled device (802.1X/EAP-TLS), measures iperf3 from ops to the fleet server through the
edge's forward chain (the allow-list permits ops -> fleet), then takes everything down and
checks nothing is left. Times are of the library calls the stage makes (no CLI start-up).
Prints a table and writes out/bench/network.json. Not a test: figures go to the README.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tasks import network  # noqa: E402
from tasks.context import Context  # noqa: E402
from tasks.core.evidence import StageRecord  # noqa: E402
from tasks.network.namespaces import run_in, start_in, stop  # noqa: E402
from tests.integration.test_network import make_fleet  # noqa: E402

IPERF_PORT = 5201


def one_run(work: Path) -> dict[str, float]:
    fleet = make_fleet(work)
    rec = StageRecord(stage="bench", root=ROOT)
    ctx = Context.create(root=ROOT, out=work / "out").bind(rec)
    plan = network.load(ROOT)
    identity = network.Identity(fleet.cert("ca"), fleet.cert("edge"), fleet.key("edge"), work / "crl.pem")
    t0 = time.monotonic()
    state = network.up(ctx, rec, plan, work / "state", identity)
    up_s = time.monotonic() - t0
    try:
        t0 = time.monotonic()
        device = network.attach(
            ctx, rec, plan, state, "good", network.Credentials(fleet.cert("dev-good"), fleet.key("dev-good"))
        )
        admit_s = time.monotonic() - t0
        assert device.admitted, device.reason
        server = str(plan.hosts["fleet-server"].address)
        iperf = start_in(ctx, rec, state, "iperf3", state.namespace("fleet"), "iperf3",
                         ["-s", "-B", server, "-p", str(IPERF_PORT)])  # fmt: skip
        time.sleep(0.5)
        done = run_in(ctx, rec, state.namespace("ops"), "iperf3",
                      ["-c", server, "-p", str(IPERF_PORT), "-t", "3", "-J"], timeout=60)  # fmt: skip
        stop(iperf)
        gbps = json.loads(done.stdout)["end"]["sum_received"]["bits_per_second"] / 1e9
    finally:
        t0 = time.monotonic()
        checks = network.down(ctx, rec, state)
        down_s = time.monotonic() - t0
    assert all(c.passed for c in checks), checks
    return {"up_s": up_s, "admit_s": admit_s, "down_s": down_s, "edge_gbps": gbps}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    runs = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench-network-") as tmp:
            runs.append(one_run(Path(tmp)))
    result = {key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]}
    result["runs"] = args.runs
    out = ROOT / "out" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "network.json").write_text(json.dumps({"median": result, "runs": runs}, indent=2) + "\n")
    for key, value in result.items():
        print(f"{key:>10}  {value}")


if __name__ == "__main__":
    main()
