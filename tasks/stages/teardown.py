"""nox -s teardown"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from tasks.cluster import Kube, cluster_name, cluster_tools, engine, load, state_path
from tasks.context import Context
from tasks.core.console import console
from tasks.core.evidence import StageRecord, Verdict


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    argparse.ArgumentParser(
        prog="nox -s teardown", description="delete the kind cluster and the registry container"
    ).parse_args(argv)
    eng = engine(rec)
    tools = cluster_tools(ctx, ("kind",))
    state = load(ctx)
    name = state.cluster if state else cluster_name(ctx)
    kube = Kube(ctx, rec, eng, tools, name)
    removed = []
    if name in kube.clusters():
        kube.run("kind", ["delete", "cluster", "--name", name], timeout=600)
        removed.append(f"kind cluster {name}")
    if state and state.registry_container:
        exists = kube.run("engine", ["inspect", "--format", "{{.Id}}", state.registry_container], check=False)
        if exists.returncode == 0:
            kube.run("engine", ["rm", "--force", state.registry_container], timeout=120)
            removed.append(f"registry container {state.registry_container[:12]}")
    for leftover in (state_path(ctx), kube.kubeconfig):
        leftover.unlink(missing_ok=True)
    rec.details["removed"] = removed
    console.print(f"[green]teardown: PASS[/] — {', '.join(removed) or 'nothing was running'}")
    return "pass"
