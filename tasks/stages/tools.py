"""Talk 02 - nox -s tools: install and verify every pinned tool, report where each came from."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from tasks.context import Context
from tasks.core.console import console, tools_table
from tasks.core.errors import ToolError
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.runner import Tool
from tasks.toolchain.apt import archive_dates
from tasks.toolchain.lock import PROFILES, Pin, load
from tasks.toolchain.resolve import install, link, lock_path, selected, stray_on_path


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s tools", description="install and verify the pinned tools")
    parser.add_argument("names", nargs="*", help="only these tools (default: every local-profile tool)")
    parser.add_argument("--all", action="store_true", help="also the cluster and release profiles")
    parser.add_argument(
        "--profile", action="append", default=[], choices=PROFILES, help="the tools of this profile (repeatable)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="install this many tools at once (default 1)")
    parser.add_argument("--json", action="store_true", help="print {tool: {version, path, route, sha256}}")
    args = parser.parse_args(argv)
    pins = load(lock_path(ctx.root))
    rec.add_input(lock_path(ctx.root), "application/toml")
    resolved: dict[str, Tool] = {}
    failures: list[str] = []
    chosen = selected(pins, args.names, args.all, tuple(args.profile))
    # --jobs N: N installs at once (the pipeline's background builds use 2); each tool has its own lock
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        outcomes = list(pool.map(lambda pin: _install(pin, ctx, rec), chosen))
    for pin, outcome in zip(chosen, outcomes, strict=True):
        if isinstance(outcome, str):
            failures.append(outcome)
            continue
        tool = outcome
        resolved[pin.name] = tool
        rec.tools[pin.name] = tool.version  # an apt tool: the Debian build found, at or above the pin
        link(ctx.root, tool)
        stray = stray_on_path(tool, pin, ctx.root)
        if stray:
            console.print(f"  [yellow]{pin.name}: {stray}[/]")
            rec.details.setdefault("ignored_on_path", []).append(stray)
    rec.details["tools"] = {name: _describe(tool) for name, tool in resolved.items()}
    if any(tool.packages for tool in resolved.values()):  # what the apt route read: the archive's date
        rec.details["apt_archives"] = archive_dates()
    tools_table(resolved, pins)
    from tasks.analysis import vulndb  # the DB is an input like any tool: report its state

    if "grype" in resolved:
        rec.details["grype_db"] = vulndb.report_status(rec, resolved["grype"])
    if args.json:
        print(json.dumps({name: _describe(tool) for name, tool in resolved.items()}, indent=2, sort_keys=True))
    if failures:
        raise ToolError(" | ".join(failures))
    return "pass"


def _install(pin: Pin, ctx: Context, rec: StageRecord) -> Tool | str:
    """The installed tool, or the one line that says why it could not be installed."""
    try:
        return install(pin, ctx.root, rec)
    except ToolError as exc:
        return str(exc)


def _describe(tool: Tool) -> dict[str, str]:
    return {"version": tool.version, "path": str(tool.path), "route": tool.route, "sha256": tool.sha256}
