"""nox -s registry"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from tasks.container.oci_registry import configured, ensure_running, ready, running_pid, stop
from tasks.context import Context
from tasks.core.console import console
from tasks.core.evidence import StageRecord, Verdict


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s registry", description="the local OCI registry on 127.0.0.1")
    parser.add_argument("action", nargs="?", choices=("start", "stop", "status"), default="start")
    args = parser.parse_args(argv)
    reg = configured()
    rec.details.update({"address": reg.address, "state": str(reg.state)})
    if args.action == "stop":
        stopped = stop(reg)
        console.print(f"  registry on {reg.address}: {'stopped' if stopped else 'was not running'}")
        return "pass"
    if args.action == "status":
        pid = running_pid(reg)
        up = pid is not None and ready(reg)
        console.print(f"  registry on {reg.address}: {f'up (pid {pid})' if up else 'down'}")
        return "pass" if up else "fail"
    ensure_running(ctx, rec)
    return "pass"
