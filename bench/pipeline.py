"""Benchmark re-runs of the default pipeline: nothing changed, and a one-line app change.

    python bench/pipeline.py          (from the dev venv, after one full `nox` run)

A first run settles whatever changed since the last one. No-op = `python -m tasks pipeline` again
with nothing changed (every stage up to date but the ones that always run), then `nox` itself with
nothing changed (nox's start-up and its venv check included: the issue's ≤ 5 s target), when nox
is on PATH or in the bootstrap venv. One-line = a comment appended to the app's source, the
pipeline run, the change reverted (and the pipeline run once more to leave the evidence as it was).

For each run: wall time and, per stage, the stage's own wall time (its recorded duration, or the
up-to-date check's time), the sum of the raw tool times the runner recorded for its commands, and
the difference: the Python layer's overhead. The one-line run's wall time is compared with the sum
of its raw tool times (target: within 20 %). Prints the figures and writes out/bench/pipeline.json.
Not a test.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess  # nosec B404 - runs this repository's own CLI and nox
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
APP_FILE = ROOT / "app" / "src" / "secure_iot_server" / "__init__.py"


def nox_command() -> list[str] | None:
    """nox from PATH, else from bootstrap.sh's venv; None when neither is there."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "secure-iot" / "bootstrap" / "bin"
    found = shutil.which("nox") or shutil.which("nox", path=str(cache))
    return [found] if found else None


def stage_figures(rec: dict[str, Any], since: str) -> dict[str, Any] | None:
    """One stage's wall time, raw tool time and overhead in the run that started at ``since``
    (None: not part of that run)."""
    check = (rec.get("details") or {}).get("up_to_date", {})
    up_to_date = check.get("checked", "") >= since and rec.get("started", "") < since
    if not up_to_date and rec.get("started", "") < since:
        return None
    if up_to_date:
        return {"up_to_date": True, "wall_s": float(check.get("check_s", 0.0)), "tool_s": 0.0, "overhead_s": 0.0}
    tool_s = sum(float(c.get("duration_s", 0.0)) for c in rec.get("commands", []))
    wall_s = float(rec.get("duration_s") or 0.0)
    return {
        "up_to_date": False,
        "wall_s": round(wall_s, 3),
        "tool_s": round(tool_s, 3),
        "overhead_s": round(wall_s - tool_s, 3),
        "commands": len(rec.get("commands", [])),
        "reused": len((rec.get("details") or {}).get("reused", [])),
    }


def run_pipeline(argv: list[str] | None = None) -> dict[str, Any]:
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
    start = time.monotonic()
    done = subprocess.run(  # nosec B603 - argv list, this interpreter or nox, no shell
        argv or [sys.executable, "-m", "tasks", "pipeline"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    wall = time.monotonic() - start
    evidence = json.loads((ROOT / "out" / "evidence.json").read_text())
    figures = {name: stage_figures(rec, since) for name, rec in evidence["stages"].items()}
    per_stage = {name: fig for name, fig in figures.items() if fig is not None}
    tool_s = sum(s["tool_s"] for s in per_stage.values())
    return {
        "command": " ".join(Path(a).name if i == 0 else a for i, a in enumerate(argv or ["python", "-m", "tasks"])),
        "exit": done.returncode,
        "wall_s": round(wall, 2),
        "tool_s": round(tool_s, 2),
        "overhead_s": round(wall - tool_s, 2),
        "over_tools_pct": round(100 * (wall - tool_s) / tool_s, 1) if tool_s else None,
        "stages": per_stage,
    }


def main() -> int:
    results = {"settle": run_pipeline()}  # whatever changed since the last run, so the next is a no-op
    results["no_op"] = run_pipeline()
    nox = nox_command()
    if nox:
        results["no_op_nox"] = run_pipeline(nox)
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
        pct = result["over_tools_pct"]
        share = f" ({pct:+.0f} %)" if pct is not None else ""
        print(
            f"{name:<20} wall {result['wall_s']:>7.2f}s  tools {result['tool_s']:>7.2f}s  "
            f"overhead {result['overhead_s']:>6.2f}s{share}  ran: {', '.join(ran)}"
        )
    print("\nper stage, one-line app change (wall = tools + Python layer):")
    for stage, fig in results["one_line_app_change"]["stages"].items():
        if fig["up_to_date"]:
            print(f"  {stage:<12} up to date (checked in {fig['wall_s']:.2f}s)")
        else:
            print(
                f"  {stage:<12} wall {fig['wall_s']:>6.2f}s  tools {fig['tool_s']:>6.2f}s "
                f"({fig['commands']} commands)  python {fig['overhead_s']:>5.2f}s"
            )
    return 0 if all(r["exit"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
