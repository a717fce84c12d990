"""Benchmark the OTA path: bundle size, metadata bytes per refresh, update checks per second.

    python bench/ota.py [--fit out/firmware/image.fit] [--models 1,50] [--seconds 5]

In a throwaway directory (its own keys): a RAUC bundle of the FIT (default: a random 12 MiB
stand-in of the FIT's size), a TUF repository per model count, served by the same static server
as the tests; then
  - bytes a factory-fresh device downloads for its first update check, and for a check with
    nothing new (timestamp only), for each model count (a device fetches only its model's role);
  - update checks per second: concurrent GETs of timestamp.json (what a fleet's no-news check
    costs the server), and full ngclient refreshes per second (what it costs a device);
  - one genuine update: refresh + download + RAUC verify/extract + slot write, wall time.
Prints JSON and writes out/bench/ota.json. Not a test: figures go to the README.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import urllib3  # noqa: E402
from tuf.ngclient.urllib3_fetcher import Urllib3Fetcher  # noqa: E402

from tasks import ota, toolchain  # noqa: E402
from tasks.core.evidence import StageRecord  # noqa: E402
from tasks.ota.repository import Config  # noqa: E402


class Counting(Urllib3Fetcher):
    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0
        self.urls: list[str] = []

    def _fetch(self, url: str) -> Iterator[bytes]:
        self.urls.append(url.rsplit("/", 1)[-1])
        for chunk in super()._fetch(url):
            self.bytes += len(chunk)
            yield chunk


def checks_per_second(url: str, seconds: float, threads: int = 4) -> float:
    done = [0] * threads
    stop = time.monotonic() + seconds

    def worker(i: int) -> None:
        pool = urllib3.PoolManager(maxsize=1)
        while time.monotonic() < stop:
            r = pool.request("GET", f"{url}/metadata/timestamp.json")
            assert r.status == 200
            done[i] += 1

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return round(sum(done) / seconds, 1)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--fit", type=Path)
    parser.add_argument("--models", default="1,50")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    rec = StageRecord(stage="release", root=ROOT)
    tool = {n: toolchain.resolve(n, ROOT, rec) for n in ("rauc", "mksquashfs", "openssl")}
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ota-") as tmp:
        work = Path(tmp)
        fit = args.fit or work / "image.fit"
        if args.fit is None:
            fit.write_bytes(os.urandom(12 << 20))
        pki = ota.rauc_pki(tool["openssl"], rec, work / "keys" / "rauc")
        keys = ota.TufKeys(work / "keys" / "tuf")
        t = time.monotonic()
        bundle = ota.bundle.build(tool["rauc"], tool["mksquashfs"], rec, pki, fit, work / "b.raucb", model="m0",
                                  version="1.2.0", security_version=3, fit_digest="sha256:bench")  # fmt: skip
        results["bundle"] = {"fit_bytes": fit.stat().st_size, "bundle_bytes": bundle.stat().st_size,
                             "build_seconds": round(time.monotonic() - t, 2)}  # fmt: skip
        custom = {"firmware_version": "1.2.0", "security_version": 3, "hardware_model": "m0", "slsa_provenance": None}
        for count in (int(c) for c in args.models.split(",")):
            models = tuple(f"m{i}" for i in range(count))
            config = Config(models, "m0", {"root": 365, "targets": 90, "model": 90, "snapshot": 7, "timestamp": 1})
            repo = ota.Repository.open(work / f"repo-{count}", keys, config)
            repo.publish("m0", bundle, custom)
            dev = ota.Device.provision(work / f"dev-{count}", model="m0", trusted_root=repo.trusted_root(),
                                       keyring=pki.ca_cert, fit=fit, version="1.1.0", security_version=2)  # fmt: skip
            with ota.serve(rec, repo.directory, work / f"server-{count}" / "log") as url:
                first = Counting()
                t = time.monotonic()
                got = ota.update(dev, ota.Source.http(url, first), rauc=tool["rauc"], mksquashfs=tool["mksquashfs"],
                                 rec=rec)  # fmt: skip
                update_s = round(time.monotonic() - t, 2)
                dev.boot_result(healthy=True)
                again = Counting()
                assert ota.update(dev, ota.Source.http(url, again), rauc=tool["rauc"], mksquashfs=tool["mksquashfs"],
                                  rec=rec).result == "up-to-date"  # fmt: skip
                t, n = time.monotonic(), 0
                while time.monotonic() - t < args.seconds:
                    ota.update(dev, ota.Source.http(url), rauc=tool["rauc"], mksquashfs=tool["mksquashfs"], rec=rec)
                    n += 1
                refreshes = round(n / (time.monotonic() - t), 1)
                results[f"models={count}"] = {
                    "genuine_update": {"result": got.result, "seconds": update_s, "bytes": first.bytes,
                                       "files": first.urls},
                    "no_news_check": {"bytes": again.bytes, "files": again.urls},
                    "metadata_files_bytes": {p.name: p.stat().st_size for p in sorted(repo.metadata_dir.iterdir())
                                             if p.name in ("timestamp.json",) or p.name.startswith(
                                                 (f"{repo.snapshot.signed.version}.snapshot",
                                                  f"{repo.targets.signed.version}.targets",
                                                  f"{repo.roles['model-m0'].signed.version}.model-m0"))},
                    "device_refreshes_per_s": refreshes,
                    "server_timestamp_gets_per_s": checks_per_second(url, args.seconds),
                }  # fmt: skip
    out = ROOT / "out" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ota.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
