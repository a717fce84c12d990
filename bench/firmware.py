"""Benchmark the firmware: cold and warm builds, FIT size, boot to userland, time to refusal, reproducibility.

    python bench/firmware.py [--warm-only] [--boots N]

Runs `python -m tasks keys` once, then `firmware` / `boot` in a throwaway project (its own firmware
and cosign keys) with its own cache directory (XDG_CACHE_HOME):
  cold-1   nothing cached: the pinned inputs are fetched from the Debian archive, U-Boot and
           tpm_tis.ko are built;
  cold-2   a second empty build cache, the inputs copied from cold-1 (no network): the build
           alone, in other paths -> U-Boot's and the FIT's sha256 must equal cold-1's;
  warm     everything cached (three runs, fresh output directories);
then N genuine boots (milestones from QEMU's start) and each tamper case once (seconds from
QEMU's start to U-Boot's first refusal line, and to QEMU's exit). Prints a table and writes
out/bench/firmware.json. Not a test: figures go to the README and notes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tasks.firmware import CASES  # noqa: E402
from tests.support.firmware_build import EPOCH, firmware_project  # noqa: E402  (the project the tests build in)


def run(project: Path, cache: Path, out: Path, *args: str) -> tuple[float, dict[str, Any]]:
    env = {**os.environ, "SECURE_IOT_ROOT": str(project), "SECURE_IOT_OUT": str(out), "SOURCE_DATE_EPOCH": EPOCH}
    env["XDG_CACHE_HOME"] = str(cache)
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "tasks", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    elapsed = round(time.monotonic() - start, 2)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr[-3000:]}")
    stage = json.loads((out / "evidence.json").read_text())["stages"][args[0]]
    return elapsed, stage


def digests(stage: dict[str, Any]) -> dict[str, str]:
    return {Path(o["name"]).name: o["digest"] for o in stage["outputs"]}


def build(project: Path, cache: Path, out: Path) -> dict[str, Any]:
    seconds, stage = run(project, cache, out, "firmware")
    return {"seconds": seconds, "steps": stage["details"]["seconds"], "digests": digests(stage), "stage": stage}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warm-only", action="store_true", help="skip the two cold builds (use the machine's cache)")
    parser.add_argument("--boots", type=int, default=3, help="genuine boots to time")
    args = parser.parse_args()
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-firmware-") as tmp:
        work = Path(tmp)
        project = firmware_project(work).root
        # the cosign key that signs the reference values (machine cache: cosign is not a build input)
        run(project, Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")), work / "out-keys", "keys")
        if args.warm_only:
            cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
        else:
            cold1 = build(project, work / "cache-1", work / "out-cold-1")
            shutil.copytree(
                work / "cache-1" / "secure-iot" / "inputs",
                work / "cache-2" / "secure-iot" / "inputs",
                copy_function=os.link,
            )
            cold2 = build(project, work / "cache-2", work / "out-cold-2")
            cache = work / "cache-2"
            result["cold"] = {
                "with_fetch_s": cold1["seconds"],
                "inputs_cached_s": cold2["seconds"],
                "steps_s": cold2["steps"],
                "u_boot_build_s": cold2["stage"]["details"]["u_boot"]["build_seconds"],
                "u_boot_same_sha256": cold1["digests"]["u-boot.bin"] == cold2["digests"]["u-boot.bin"],
                "fit_same_sha256": cold1["digests"]["image.fit"] == cold2["digests"]["image.fit"],
            }
        warm = [build(project, cache, work / f"out-warm-{i}") for i in range(3)]
        out = work / "out-warm-0"
        fit = out / "firmware" / "image.fit"
        result["warm_build_s"] = [w["seconds"] for w in warm]
        result["fit"] = {"bytes": fit.stat().st_size, "sha256": warm[0]["digests"]["image.fit"]}
        result["reproducible"] = len({w["digests"]["image.fit"] for w in warm}) == 1 and all(
            result.get("cold", {}).get(k, True) for k in ("u_boot_same_sha256", "fit_same_sha256")
        )
        boots = [run(project, cache, out, "boot")[1]["details"]["milestones_s"] for _ in range(args.boots)]
        result["boot_s"] = {
            m: round(statistics.median(b[m] for b in boots), 2) for m in boots[0] if all(m in b for b in boots)
        }
        result["tamper"] = {}
        for name in CASES:
            seconds, stage = run(project, cache, out, "boot", "--tamper", name)
            details = stage["details"]
            qemu = details["processes"][-1]
            result["tamper"][name] = {
                "refusal_s": details.get("refusal", {}).get("seconds"),
                "userland_s": details["milestones_s"].get("userland"),
                "qemu_exit_s": qemu["seconds"],
                "stage_s": seconds,
            }
    target = ROOT / "out" / "bench" / "firmware.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
