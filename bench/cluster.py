"""Benchmark the local cluster engine: up time, admission latency per webhook, memory.

    python bench/cluster.py [--requests 100] [--gitops]      (root; after `nox`, which signs the image)

Against the pipeline's own out/ evidence (the signed image of the last `nox`), with the
project's CLI exactly as a user runs it:
  - `cluster --engine local` from an empty data directory (binaries cached), wall time;
  - N server-side dry runs of the signed image's demo pod in the protected namespace (both
    webhooks judge each one), then the API server's own histogram
    apiserver_admission_webhook_admission_duration_seconds per webhook: p50 and p95 (bucket
    upper bounds, as Prometheus' histogram_quantile reads them);
  - the resident memory (VmRSS) of every control-plane process, and the sum;
  - with --gitops: `gitops` wall time (Argo CD's release sync, the refused unsigned commit and
    its revert) and the resident memory of its processes (Argo CD, Redis, git daemon);
  - `teardown` wall time.
Prints JSON and writes out/bench/cluster.json. Not a test: figures go to the README.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = Path(os.environ.get("SECURE_IOT_OUT", ROOT / "out"))
WEBHOOKS = ("policy.sigstore.dev", "validation.gatekeeper.sh")
METRIC = "apiserver_admission_webhook_admission_duration_seconds_bucket"
KUBECTL: list[Path] = []  # the pinned kubectl, resolved once in main()


def tasks(*args: str) -> float:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "tasks", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"python -m tasks {' '.join(args)} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return round(time.monotonic() - started, 2)


def kubectl(state: dict[str, Any], *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    kube = OUT / "cluster"
    binary = KUBECTL[0]
    return subprocess.run(
        ["ip", "netns", "exec", state["netns"], str(binary), *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "KUBECONFIG": str(kube / "kubeconfig")},
    )


def quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The upper bound of the first bucket holding the q-th observation (cumulative buckets)."""
    total = buckets[-1][1] if buckets else 0
    for bound, count in buckets:
        if total and count >= q * total:
            return bound
    return None


def webhook_latency(metrics: str) -> dict[str, Any]:
    per: dict[str, dict[float, float]] = {}
    for line in metrics.splitlines():
        if not line.startswith(METRIC + "{"):
            continue
        labels, value = line[len(METRIC) + 1 :].rsplit("} ", 1)
        fields = dict(part.split("=", 1) for part in labels.split(","))
        name, le = fields.get("name", "").strip('"'), fields.get("le", "").strip('"')
        if name in WEBHOOKS:
            bound = float("inf") if le == "+Inf" else float(le)
            per.setdefault(name, {})
            per[name][bound] = per[name].get(bound, 0) + float(value)  # summed over operation/type labels
    out = {}
    for name, buckets in per.items():
        ordered = sorted(buckets.items())
        out[name] = {"requests": ordered[-1][1], "p50_s": quantile(ordered, 0.5), "p95_s": quantile(ordered, 0.95)}
    return out


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--gitops", action="store_true", help="also time `gitops` and its processes' memory")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from tasks.cluster import demo_pod
    from tasks.core.evidence import StageRecord
    from tasks.toolchain import resolve

    KUBECTL.append(resolve("kubectl", ROOT, StageRecord(stage="bench", root=ROOT)).path)

    evidence = json.loads((OUT / "evidence.json").read_text())
    image = next(o["name"] for o in evidence["stages"]["build"]["outputs"] if o.get("kind") == "oci")
    tasks("teardown")
    results: dict[str, Any] = {"up_s": tasks("cluster", "--engine", "local")}
    state = json.loads((OUT / "cluster" / "state.json").read_text())
    try:
        pod = json.dumps(demo_pod("bench", "secure", image))
        started = time.monotonic()
        admitted = 0
        for _ in range(args.requests):
            done = kubectl(state, "create", "--dry-run=server", "-f", "-", "-o", "name", stdin=pod)
            admitted += done.returncode == 0
        results["dry_runs"] = {
            "requests": args.requests,
            "admitted": admitted,
            "client_seconds_each": round((time.monotonic() - started) / args.requests, 3),
        }
        metrics = kubectl(state, "get", "--raw", "/metrics").stdout
        results["webhooks"] = webhook_latency(metrics)
        rss = {name: rss_mib(pid) for name, pid in state["pids"].items()}
        results["rss_mib"] = {**rss, "total": round(sum(rss.values()), 1)}
        if args.gitops:
            results["gitops_s"] = tasks("gitops")
            pids = json.loads((OUT / "gitops" / "processes.json").read_text())["pids"]
            argo = {name: rss_mib(pid) for name, pid in pids.items()}
            results["gitops_rss_mib"] = {**argo, "total": round(sum(argo.values()), 1)}
    finally:
        results["down_s"] = tasks("teardown")
    out = OUT / "bench" / "cluster.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
