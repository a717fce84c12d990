"""Command line: dispatch to a stage, turn PipelineErrors into one red line and an exit code."""

from __future__ import annotations

import signal
from collections.abc import Sequence

from tasks import pipeline, summary, toolchain
from tasks.catalogue import CATALOGUE, PROFILES
from tasks.context import Context
from tasks.core.console import error_line
from tasks.core.errors import PipelineError

USAGE = "usage: python -m tasks {pipeline|summary|" + "|".join(CATALOGUE) + "} [args]"


def main(argv: Sequence[str]) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        for name, (_, section, proves) in CATALOGUE.items():
            print(f"  {name:<12} talk {section}: {proves}")
        return 0 if argv else 2
    name, rest = argv[0], list(argv[1:])
    # a CI cancel or a closed terminal sends SIGTERM/SIGHUP: unwind like Ctrl-C, so every `finally`
    # runs (the pipeline's background build is stopped by PID, a stage's record is written)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.default_int_handler)
    try:
        ctx = Context.create()
        toolchain.put_first_on_path(ctx.root)
        if name == "pipeline":  # `pipeline [profile]`: the default pipeline, or a named profile
            force = "--force" in rest
            rest = [a for a in rest if a != "--force"]
            profile = rest[0] if rest else "default"
            if profile not in PROFILES or len(rest) > 1:
                error_line(f"pipeline takes one profile name: {', '.join(PROFILES)}")
                return 2
            return pipeline.run_pipeline(ctx, PROFILES[profile], force=force)
        if name == "summary":  # markdown for CI job summaries; reads the evidence, records nothing
            print(summary.markdown(ctx), end="")
            return 0
        if name not in CATALOGUE:
            error_line(f"unknown stage '{name}'. {USAGE}")
            return 2
        return pipeline.run_stage(ctx, pipeline.stage(name), rest)
    except PipelineError as exc:
        error_line(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        error_line("interrupted; out/evidence.json keeps the last complete record")
        return 130
