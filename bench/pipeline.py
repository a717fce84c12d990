"""Benchmark re-runs of the default pipeline: nothing changed, and a one-line app change.

    python bench/pipeline.py          (from the dev venv, after one full `nox` run)

A first run settles whatever changed since the last one. No-op = `python -m tasks pipeline` again
with nothing changed (every stage up to date but the
ones that always run). One-line = a comment appended to the app's source, the pipeline run, the
change reverted (and the pipeline run once more to leave the evidence as it was). For each run:
wall time, and the sum of the raw tool times the evidence recorded (the Python layer's overhead
is the difference). Prints the figures and writes out/bench/pipeline.json. Not a test.
"""

from __future__ import annotations

import json
import subprocess  # nosec B404 - runs this repository's own CLI
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
APP_FILE = ROOT / "app" / "src" / "secure_iot_server" / "__init__.py"


def run_pipeline() -> dict[str, Any]:
    start = time.monotonic()
    done = subprocess.run(  # nosec B603 - argv list, this interpreter, no shell
        [sys.executable, "-m", "tasks", "pipeline"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    wall = time.monotonic() - start
    evidence = json.loads((ROOT / "out" / "evidence.json").read_text())
    per_stage = {}
    for name, rec in evidence["stages"].items():
        up_to_date = (rec.get("details") or {}).get("up_to_date", {}).get("checked", "") >= rec.get("finished", "")
        tool_s = sum(c["duration_s"] for c in rec.get("commands", []))
        per_stage[name] = {"up_to_date": up_to_date, "tool_s": 0.0 if up_to_date else round(tool_s, 2)}
    return {
        "exit": done.returncode,
        "wall_s": round(wall, 2),
        "tool_s": round(sum(s["tool_s"] for s in per_stage.values()), 2),
        "stages": per_stage,
    }


def main() -> int:
    results = {"settle": run_pipeline()}  # whatever changed since the last run, so the next is a no-op
    results["no_op"] = run_pipeline()
    original = APP_FILE.read_text()
    try:
        APP_FILE.write_text(original + "# bench/pipeline.py: a one-line change\n")
        results["one_line_app_change"] = run_pipeline()
    finally:
        APP_FILE.write_text(original)
    results["restore"] = run_pipeline()
    out = ROOT / "out" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "pipeline.json").write_text(json.dumps(results, indent=2) + "\n")
    for name, result in results.items():
        ran = [s for s, v in result["stages"].items() if not v["up_to_date"]]
        print(f"{name:<22} wall {result['wall_s']:>7.2f}s  tools {result['tool_s']:>7.2f}s  ran: {', '.join(ran)}")
    return 0 if all(r["exit"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
