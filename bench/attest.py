"""Benchmark device registration and quote verification on the fleet server, on SQLite and PostgreSQL.

    python bench/attest.py [--devices 100] [--backends sqlite,postgresql] [--seconds 5]
    (from the dev venv, as root or a user that may run swtpm; installs pinned tools on first use)

The devices are real: manufactured like `nox -s factory` (swtpm state, EK, EK certificate, printed
code, signed manifest; tests/support/fleet.py), each powered on with the genuine measured boot replayed
into its PCRs, and registered by the device agent (tpm2-tools) against the real server process
(`python -m secure_iot_server`: uvicorn, plain HTTP on 127.0.0.1 - registration needs no client
certificate; the manifest is loaded into the database as the operator's upload would load it).
For each backend the database is fresh: a SQLite file, or a throwaway PostgreSQL (tests/support/postgres.py)
with its durable defaults (fsync, synchronous commit).

Figures:
- registration latency = the challenge and complete round trips as the device sees them (HTTP
  included), without the TPM's own time (AK creation, ActivateCredential, quote, the device key
  under PolicyAuthorize and its approved signature - measured apart);
- check-in = each registered device powered on again and checking in through the device's own
  protocol (a quote, the nonce signed by the device key with the build's approval): the server's
  share (nonce + check-in round trips), check-ins per second of that share with one client, and
  the whole check-in with the TPM's work;
- quote verifications/s = the server's quote checks (AK public parse, quote signature, nonce,
  PCR digest = event-log replay, reference values of a signed build, minimum security version)
  on the quotes the devices just made, in 2 processes for ``--seconds``.
Prints the figures and writes out/bench/attest.json. Not a test.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "app" / "src"))

from secure_iot_server import attestation, tpm  # noqa: E402
from secure_iot_server.config import Settings  # noqa: E402
from secure_iot_server.database import prepare  # noqa: E402
from secure_iot_server.enrolment_store import EnrolmentStore  # noqa: E402
from secure_iot_server.registration import load_manifest  # noqa: E402
from secure_iot_server.trust import load_trust  # noqa: E402

from tasks.core.processes import free_port  # noqa: E402
from tasks.device import protocol  # noqa: E402
from tests.support.fleet import GENUINE, MIN_SECURITY_VERSION, MODEL, Fleet, events_of, make_fleet  # noqa: E402
from tests.support.postgres import running_postgres  # noqa: E402
from tests.support.server_process import serving  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Iterator

    import httpx
    from secure_iot_server.reference_values import Golden

BOOT = events_of(GENUINE)
TARGET_VERIFICATIONS_PER_S = 50.0
TARGET_P95_MS = 250.0
Sample = tuple[bytes, bytes, bytes, bytes, list[tuple[int, str]]]  # AK public, nonce, quote, signature, event log


@contextmanager
def database(backend: str, work: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{work / 'bench-fleet.db'}"
    else:
        with running_postgres(durable=True) as url:  # fsync on: the figures are of a real database
            yield url


@contextmanager
def server(fleet: Fleet, url: str, log: Path) -> Iterator[httpx.Client]:
    """The fleet server process on a fresh database, the manufacturing manifest loaded; stopped by PID."""
    prepare(url)
    trust = load_trust(fleet.trust_dir, min_security_version=MIN_SECURITY_VERSION)
    load_manifest(EnrolmentStore(url), trust, fleet.batch.manifest.read_bytes(), fleet.batch.signature.read_bytes())
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "app" / "src"),
        **Settings(
            host="127.0.0.1",
            port=port,
            db_url=url,
            trust_dir=fleet.trust_dir,
            min_security_version=MIN_SECURITY_VERSION,
        ).to_env(),
    }
    with serving(env, port, log, timeout=30) as client:
        yield client


def register_all(fleet: Fleet, client: httpx.Client) -> tuple[list[float], list[float], list[Sample], dict[str, str]]:
    """Every device once: (server ms per registration, TPM ms per registration, recorded quotes, certificates)."""
    server_ms, tpm_ms, samples, certificates = [], [], [], {}
    for device in fleet.devices:
        with fleet.power_on(device, BOOT) as agent:
            start = time.perf_counter()
            ek_pem, ak_public = agent.ek_certificate_pem(), agent.create_ak()
            on_tpm = time.perf_counter() - start
            start = time.perf_counter()
            body = {"ek_certificate_pem": ek_pem, "ak_public": base64.b64encode(ak_public).decode()}
            first = client.post("/attestation/challenge", json=body)
            on_server = time.perf_counter() - start
            if first.status_code != 200:
                raise SystemExit(f"{device.device_id}: challenge {first.status_code} {first.text}")
            start = time.perf_counter()
            answer = fleet.answer(agent, first.json(), device.code, device.device_id, BOOT)
            on_tpm += time.perf_counter() - start
            start = time.perf_counter()
            done = client.post("/attestation/complete", json=answer)
            on_server += time.perf_counter() - start
            if done.status_code != 201:
                raise SystemExit(f"{device.device_id}: complete {done.status_code} {done.text}")
            certificates[device.device_id] = done.json()["certificate_pem"]
        server_ms.append(on_server * 1000)
        tpm_ms.append(on_tpm * 1000)
        nonce = bytes.fromhex(first.json()["nonce"])
        quote, signature = (base64.b64decode(answer[k]) for k in ("quote", "signature"))
        samples.append((ak_public, nonce, quote, signature, BOOT))
    return server_ms, tpm_ms, samples, certificates


def round_trips(client: httpx.Client) -> list[float]:
    """Seconds of every request the client makes from now on (sent to body read), in a list it fills."""
    spent: list[float] = []

    def started(request: httpx.Request) -> None:
        request.extensions["bench_start"] = time.perf_counter()

    def finished(response: httpx.Response) -> None:
        response.read()
        spent.append(time.perf_counter() - response.request.extensions["bench_start"])

    client.event_hooks = {"request": [started], "response": [finished]}
    return spent


def checkin_all(fleet: Fleet, client: httpx.Client, certificates: dict[str, str]) -> tuple[list[float], list[float]]:
    """Every registered device checks in once after a power-on, through the device's own protocol
    (tasks/device/protocol.py: a quote and the nonce signed by the device key with the build's
    approval): (server ms per check-in = the nonce and check-in round trips, whole check-in ms with
    the TPM's work)."""
    server_ms, whole_ms = [], []
    spent = round_trips(client)
    use = fleet.key_use(BOOT)
    for device in fleet.devices:
        with fleet.power_on(device, BOOT) as agent:
            spent.clear()
            start = time.perf_counter()
            done = protocol.checkin(agent, client, certificates[device.device_id], BOOT, use)
            whole_ms.append((time.perf_counter() - start) * 1000)
        if done.status_code != 200:
            raise SystemExit(f"{device.device_id}: check-in {done.status_code} {done.text}")
        server_ms.append(sum(spent) * 1000)
    client.event_hooks = {"request": [], "response": []}
    return server_ms, whole_ms


def verify(sample: Sample, golden: list[Golden]) -> None:
    """The server's quote checks, steps 4-8 of registration.complete (attestation.py), on one quote."""
    ak_public, nonce, quote_bytes, signature, event_log = sample
    quote = attestation.verify_quote_signature(tpm.parse_public(ak_public), quote_bytes, signature)
    attestation.verify_nonce(quote, nonce, time.time() + 60, time.time())
    attestation.verify_pcr_digest(quote, event_log)
    build = attestation.verify_reference_values(event_log, golden, MODEL)
    attestation.verify_security_version(build, MIN_SECURITY_VERSION)


_WORK: tuple[list[Sample], list[Golden], float] = ([], [], 0.0)  # set before the workers fork


def _verify_for(_: int) -> int:
    samples, golden, seconds = _WORK
    count, deadline = 0, time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        verify(samples[count % len(samples)], golden)
        count += 1
    return count


def verifications_per_second(samples: list[Sample], golden: list[Golden], seconds: float, processes: int) -> float:
    global _WORK
    _WORK = (samples, golden, seconds)
    for sample in samples:  # every recorded quote verifies before any is counted
        verify(sample, golden)
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        total = sum(pool.map(_verify_for, range(processes)))
    return total / (time.perf_counter() - start)


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--seconds", type=float, default=5.0, help="how long the verification run lasts")
    args = parser.parse_args()
    out = ROOT / "out" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"devices": args.devices, "cpus": os.cpu_count(), "backends": {}}
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="secure-iot-bench-attest-")))
        start = time.monotonic()
        fleet = make_fleet(work, devices=args.devices)
        results["manufacture_s"] = round(time.monotonic() - start, 1)
        print(f"manufactured {args.devices} swtpm devices in {results['manufacture_s']} s", file=sys.stderr)
        golden = load_trust(fleet.trust_dir, min_security_version=MIN_SECURITY_VERSION).golden
        for backend in args.backends.split(","):
            with database(backend, work) as url, server(fleet, url, work / f"server-{backend}.log") as client:
                server_ms, tpm_ms, samples, certificates = register_all(fleet, client)
                checkin_ms, checkin_whole_ms = checkin_all(fleet, client, certificates)
            rate = verifications_per_second(samples, golden, args.seconds, 2)
            figures = {
                "registration_ms_p50": round(statistics.median(server_ms), 1),
                "registration_ms_p95": round(percentile(server_ms, 95), 1),
                "registration_ms_max": round(max(server_ms), 1),
                "tpm_ms_p50": round(statistics.median(tpm_ms), 1),
                "checkin_server_ms_p50": round(statistics.median(checkin_ms), 1),
                "checkin_server_ms_p95": round(percentile(checkin_ms, 95), 1),
                # one client, one at a time: what the server answers per second of its own time
                "checkins_per_s_server": round(1000 / statistics.mean(checkin_ms), 1),
                "checkin_whole_ms_p50": round(statistics.median(checkin_whole_ms), 1),
                "quote_verifications_per_s": round(rate, 1),
            }
            figures["targets_met"] = (
                figures["registration_ms_p95"] <= TARGET_P95_MS and rate >= TARGET_VERIFICATIONS_PER_S
            )
            results["backends"][backend] = figures
            print(f"{backend}: {json.dumps(figures)}", file=sys.stderr)
    (out / "attest.json").write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))
    return 0 if all(b["targets_met"] for b in results["backends"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
