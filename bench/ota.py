"""Benchmark the OTA path: bundle size, metadata bytes per refresh, update checks per second.

    python bench/ota.py [--fit out/firmware/image.fit] [--models 1,50] [--seconds 5]

In a throwaway directory (its own keys): a RAUC bundle of the FIT (default: a random 12 MiB
stand-in of the FIT's size), a TUF repository per model count, served by the same static server
as the tests; then
  - bytes a factory-fresh device downloads for its first update check, and for a check with
    nothing new (timestamp only), for each model count (a device fetches only its model's role);
  - update checks per second: concurrent GETs of timestamp.json (what a fleet's no-news check
    costs the server), and full ngclient refreshes per second (what it costs a device);
  - one genuine update: refresh + download + RAUC verify/extract + slot write, wall time;
  - the same over mTLS (uvicorn requiring a fleet-CA client certificate, tasks/ota/serve.py):
    timestamp GETs per second on kept-alive connections (a device polling) and with a new TLS
    handshake per check (a device that wakes, checks and sleeps), and one ngclient refresh.
Prints JSON and writes out/bench/ota.json. Not a test: figures go to the README.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import urllib3  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402
from tuf.ngclient.urllib3_fetcher import Urllib3Fetcher  # noqa: E402

from tasks import ota, toolchain  # noqa: E402
from tasks.core.evidence import StageRecord  # noqa: E402
from tasks.ota.repository import Config  # noqa: E402
from tests.support.identities import crl  # noqa: E402


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


def _load(url: str, seconds: float, threads: int, extra: dict[str, Any], reconnect: bool) -> int:
    """GETs of timestamp.json from ``threads`` threads of one process until ``seconds`` pass."""
    done = [0] * threads
    stop = time.monotonic() + seconds

    def worker(i: int) -> None:
        pool = urllib3.PoolManager(maxsize=1, **extra)
        while time.monotonic() < stop:
            if reconnect:
                pool.clear()  # a new TCP connection and TLS handshake for every check
            r = pool.request("GET", f"{url}/metadata/timestamp.json")
            assert r.status == 200
            done[i] += 1

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return sum(done)


def checks_per_second(
    url: str,
    seconds: float,
    *,
    processes: int = 2,
    threads: int = 2,
    tls: ota.DeviceTls | None = None,
    reconnect: bool = False,
) -> float:
    """Concurrent no-news checks: ``processes`` client processes (one Python client process is
    GIL-bound below what the server can answer) of ``threads`` keep-alive connections each."""
    extra: dict[str, Any] = {}
    if tls is not None:
        extra = {
            "cert_file": str(tls.cert),
            "key_file": str(tls.key),
            "ca_certs": str(tls.server_ca),
            "cert_reqs": "CERT_REQUIRED",
        }
    with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("fork")) as pool:
        counts = pool.map(_load, *zip(*[(url, seconds, threads, extra, reconnect)] * processes, strict=True))
        return round(sum(counts) / seconds, 1)


@dataclass(frozen=True)
class Pair:
    cert: Any
    key: Any
    cert_file: Path
    key_file: Path


def _pair(issuer: Pair | None, name: str, directory: Path, *, server: bool = False) -> Pair:
    """A P-256 key and certificate (a CA when ``issuer`` is None) written as <name>.pem / <name>.key."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .public_key(key.public_key())
        .issuer_name(issuer.cert.subject if issuer else subject)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=issuer is None, path_length=None), True)
    )
    if server:
        san = x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        builder = builder.add_extension(san, False)
    cert = builder.sign(issuer.key if issuer else key, hashes.SHA256())
    (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return Pair(cert, key, directory / f"{name}.pem", directory / f"{name}.key")


def mtls(
    rec: StageRecord, repo: ota.Repository, dev: ota.Device, tool: dict[str, Any], work: Path, seconds: float
) -> dict[str, Any]:
    """The repository over mTLS: what enrolled devices cost the server."""
    certs = work / "certs"
    certs.mkdir(parents=True, exist_ok=True)
    fleet_ca, server_ca = _pair(None, "fleet-ca", certs), _pair(None, "server-ca", certs)
    server = _pair(server_ca, "server", certs, server=True)
    enrolled = _pair(fleet_ca, "device", certs)
    device = ota.DeviceTls(enrolled.cert_file, enrolled.key_file, server_ca.cert_file)
    revocations = certs / "fleet-ca.crl.pem"  # checked on every handshake (tasks/ota/repository_server.py)
    revocations.write_bytes(crl((fleet_ca.cert, fleet_ca.key), [], number=1))
    tls = ota.ServerTls(server.cert_file, server.key_file, fleet_ca.cert_file, revocations)
    with ota.serve(rec, repo.directory, work / "server-mtls" / "log", tls=tls) as url:
        t = time.monotonic()
        got = ota.update(dev, ota.Source.https(url, device), rauc=tool["rauc"], mksquashfs=tool["mksquashfs"], rec=rec)
        return {
            "no_news_refresh": {"result": got.result, "seconds": round(time.monotonic() - t, 3)},
            "server_timestamp_gets_per_s_keepalive": checks_per_second(url, seconds, tls=device),
            "server_timestamp_gets_per_s_new_handshake": checks_per_second(url, seconds, tls=device, reconnect=True),
        }


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
        bundle = ota.bundle.build(
            tool["rauc"],
            tool["mksquashfs"],
            rec,
            pki,
            fit,
            work / "b.raucb",
            model="m0",
            version="1.2.0",
            security_version=3,
            fit_digest="sha256:bench",
        )
        results["bundle"] = {
            "fit_bytes": fit.stat().st_size,
            "bundle_bytes": bundle.stat().st_size,
            "build_seconds": round(time.monotonic() - t, 2),
        }
        custom = {"firmware_version": "1.2.0", "security_version": 3, "hardware_model": "m0", "slsa_provenance": None}
        for count in (int(c) for c in args.models.split(",")):
            models = tuple(f"m{i}" for i in range(count))
            config = Config(models, "m0", {"root": 365, "targets": 90, "model": 90, "snapshot": 7, "timestamp": 1})
            repo = ota.Repository.open(work / f"repo-{count}", keys, config)
            repo.publish("m0", bundle, custom)
            dev = ota.Device.provision(
                work / f"dev-{count}",
                model="m0",
                trusted_root=repo.trusted_root(),
                keyring=pki.ca_cert,
                fit=fit,
                version="1.1.0",
                security_version=2,
            )
            with ota.serve(rec, repo.directory, work / f"server-{count}" / "log") as url:
                first = Counting()
                t = time.monotonic()
                got = ota.update(
                    dev, ota.Source.http(url, first), rauc=tool["rauc"], mksquashfs=tool["mksquashfs"], rec=rec
                )
                update_s = round(time.monotonic() - t, 2)
                dev.boot_result(healthy=True)
                again = Counting()
                assert (
                    ota.update(
                        dev, ota.Source.http(url, again), rauc=tool["rauc"], mksquashfs=tool["mksquashfs"], rec=rec
                    ).result
                    == "up-to-date"
                )
                t, n = time.monotonic(), 0
                while time.monotonic() - t < args.seconds:
                    ota.update(dev, ota.Source.http(url), rauc=tool["rauc"], mksquashfs=tool["mksquashfs"], rec=rec)
                    n += 1
                refreshes = round(n / (time.monotonic() - t), 1)
                results[f"models={count}"] = {
                    "genuine_update": {
                        "result": got.result,
                        "seconds": update_s,
                        "bytes": first.bytes,
                        "files": first.urls,
                    },
                    "no_news_check": {"bytes": again.bytes, "files": again.urls},
                    "metadata_files_bytes": {
                        p.name: p.stat().st_size
                        for p in sorted(repo.metadata_dir.iterdir())
                        if p.name in ("timestamp.json",)
                        or p.name.startswith(
                            (
                                f"{repo.snapshot.signed.version}.snapshot",
                                f"{repo.targets.signed.version}.targets",
                                f"{repo.roles['model-m0'].signed.version}.model-m0",
                            )
                        )
                    },
                    "device_refreshes_per_s": refreshes,
                    "server_timestamp_gets_per_s": checks_per_second(url, args.seconds),
                }
            results[f"models={count}"]["mtls"] = mtls(rec, repo, dev, tool, work / f"mtls-{count}", args.seconds)
    out = ROOT / "out" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "ota.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
