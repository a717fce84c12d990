"""Benchmark what unauthenticated requests cost the fleet server as the fleet grows, on a real PostgreSQL.

    python bench/fleet_server.py [--sizes 0,1000,10000,100000] [--requests 200] [--app-src DIR]
    (from the dev venv, as root or a user that may run Debian's postgres; installs pinned tools on first use)

The real server process (`python -m secure_iot_server`: uvicorn, plain HTTP on 127.0.0.1) on a throwaway
PostgreSQL with its durable defaults (fsync, synchronous commit; tests/support/postgres.py), a trust
directory made here (a manufacturer CA, the fleet CA, a policy authority; no reference values: nothing
here gets past the registration's first steps). The enrolments are inserted directly with SQL, growing
the one database from size to size; each size adds one enrolment whose EK certificate the bench holds.
For each size, one client sends ``--requests`` of each, one at a time, and times the round trip:

- challenge-garbage   POST /attestation/challenge, a body that is no certificate at all
- challenge-unknown   a well-formed EK certificate from no manufacturer the server knows
- challenge-valid     the enrolled device's EK certificate and a real TPM AK: the whole challenge
                      (enrolment lookup, MakeCredential, the challenge written - replacing the last)
- nonce               GET /attestation/nonce
- crl                 GET /attestation/crl (the fleet CA's signed CRL, listing 1 % of the fleet: the
                      response grows with it, the work per request should not)

``--app-src`` runs another checkout's server (its app/src) against the same fill: the figures before a
change. Prints p50/p95 in ms per endpoint and size, writes out/bench/fleet_server.json. Not a test.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "app" / "src"))

from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402
from secure_iot_server import attestation  # noqa: E402
from secure_iot_server.config import Settings  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from tasks.core.processes import free_port  # noqa: E402
from tests.support.identities import ca, ek_certificate  # noqa: E402
from tests.support.postgres import running_postgres  # noqa: E402
from tests.support.server_process import serving  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterator

    import httpx

AK_PUBLIC = bytes.fromhex(
    json.loads((ROOT / "tests" / "fixtures" / "tpm" / "quote.json").read_text())["ak_tpm2b_public"]
)
BATCH = 10_000
REVOKED_EVERY = 100  # 1 % of the fleet quarantined: 1,000 revoked certificates at 100k
GARBAGE_PEM = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"


def trust_dir(work: Path) -> tuple[Path, Any]:
    """What SECURE_IOT_TRUST_DIR holds (trust.py), made for the bench: the manufacturer CA is returned."""
    trust = work / "trust"
    (trust / "manufacturer-ca").mkdir(parents=True)
    (trust / "reference-values").mkdir()
    manufacturer, fleet = ca("bench manufacturer CA"), ca("bench fleet CA")
    pem = serialization.Encoding.PEM
    (trust / "manufacturer-ca" / "bench.pem").write_bytes(manufacturer[0].public_bytes(pem))
    (trust / "fleet-ca.pem").write_bytes(fleet[0].public_bytes(pem))
    (trust / "fleet-ca.key").write_bytes(
        fleet[1].private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    cosign = ec.generate_private_key(ec.SECP256R1()).public_key()
    (trust / "pipeline-cosign.pub").write_bytes(cosign.public_bytes(pem, spki))
    authority = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    (trust / "device-policy.pub").write_bytes(authority.public_bytes(pem, spki))
    return trust, manufacturer


def fill(url: str, start: int, stop: int, extra: dict[str, Any]) -> None:
    """Enrolment rows start..stop-1 (random EK digests) and ``extra``, inserted directly in batches, and a
    revoked certificate for every REVOKED_EVERY-th of them (the CRL lists them; the server builds it anew
    when it starts)."""
    engine = create_engine(url, poolclass=NullPool)
    row = {"model": "bench-board", "code_salt": b"s" * 16, "code_hash": bytes(32), "code_n": 16384, "code_r": 8}
    row["manifest_sha256"] = "ab" * 32
    insert = text(
        "INSERT INTO enrolments (device_id, model, ek_spki_sha256, code_salt, code_hash, code_n, code_r, code_p, "
        "manifest_sha256) VALUES (:device_id, :model, :ek_spki_sha256, :code_salt, :code_hash, :code_n, :code_r, "
        "1, :manifest_sha256)"
    )
    revoke = text(
        "INSERT INTO revocations (certificate_serial, device_id, reason, revoked_at) "
        "VALUES (:serial, :device_id, 'bench: quarantined', :at)"
    )
    with engine.begin() as conn:
        for first in range(start, stop, BATCH):
            rows = [
                {
                    **row,
                    "device_id": f"sid-{n:010d}",
                    "ek_spki_sha256": os.urandom(32).hex(),
                }
                for n in range(first, min(stop, first + BATCH))
            ]
            conn.execute(insert, rows)
            revoked = [
                {"serial": f"{n + 1:x}", "device_id": f"sid-{n:010d}", "at": "2026-01-01T00:00:00+00:00"}
                for n in range(first, min(stop, first + BATCH))
                if n % REVOKED_EVERY == 0
            ]
            if revoked:
                conn.execute(revoke, revoked)
        conn.execute(insert, [{**row, **extra}])
        conn.execute(text("ANALYZE enrolments"))
    engine.dispose()


@contextmanager
def server(url: str, trust: Path, app_src: Path, log: Path) -> Iterator[httpx.Client]:
    """The fleet server process (``app_src``'s) on the database; stopped by PID."""
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(app_src),
        **Settings(host="127.0.0.1", port=port, db_url=url, trust_dir=trust).to_env(),
    }
    with serving(env, port, log, timeout=60) as client:
        yield client


def timed(client: httpx.Client, requests: int, method: str, path: str, body: Any, expect: int) -> dict[str, float]:
    """p50/p95 ms of ``requests`` round trips (after 3 unmeasured), each answered ``expect``."""
    spent = []
    for n in range(requests + 3):
        start = time.perf_counter()
        response = client.request(method, path, json=body)
        elapsed = time.perf_counter() - start
        if response.status_code != expect:
            raise SystemExit(f"{method} {path}: {response.status_code} {response.text[:200]}, expected {expect}")
        if n >= 3:
            spent.append(elapsed * 1000)
    quantiles = statistics.quantiles(spent, n=100, method="inclusive")
    return {"p50_ms": round(statistics.median(spent), 2), "p95_ms": round(quantiles[94], 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="0,1000,10000,100000")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--app-src", type=Path, default=ROOT / "app" / "src", help="the server's source to run")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    out = ROOT / "out" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"requests": args.requests, "cpus": os.cpu_count(), "app_src": str(args.app_src)}
    results["sizes"] = {}
    with tempfile.TemporaryDirectory(prefix="secure-iot-bench-fleet-") as tmp, running_postgres(durable=True) as url:
        work = Path(tmp)
        trust, manufacturer = trust_dir(work)
        ak = base64.b64encode(AK_PUBLIC).decode()
        unknown = {"ek_certificate_pem": ek_certificate(ca("no manufacturer"))[1], "ak_public": ak}
        enrolled = 0
        for size in sizes:
            if size < enrolled:
                raise SystemExit("--sizes must not shrink")
            ek, ek_pem = ek_certificate(manufacturer)
            extra = {"device_id": f"bench-{size}", "ek_spki_sha256": attestation.spki_sha256(ek.public_key())}
            with server(url, trust, args.app_src, work / "server.log") as client:  # migrates on the first start
                fill(url, enrolled, size, extra)
                enrolled = size
                valid = {"ek_certificate_pem": ek_pem, "ak_public": ak}
                garbage = {"ek_certificate_pem": GARBAGE_PEM, "ak_public": ak}
                figures = {
                    "challenge-garbage": timed(client, args.requests, "POST", "/attestation/challenge", garbage, 403),
                    "challenge-unknown": timed(client, args.requests, "POST", "/attestation/challenge", unknown, 403),
                    "challenge-valid": timed(client, args.requests, "POST", "/attestation/challenge", valid, 200),
                    "nonce": timed(client, args.requests, "GET", "/attestation/nonce", None, 200),
                    "crl": timed(client, args.requests, "GET", "/attestation/crl", None, 200),
                }
            results["sizes"][str(size)] = figures
            print(f"{size:>7} enrolled: {json.dumps(figures)}", file=sys.stderr)
    (out / "fleet_server.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
