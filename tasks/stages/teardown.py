"""nox -s teardown"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from tasks.cluster import (
    Kube,
    State,
    argocd,
    choose_engine,
    cluster_name,
    cluster_tools,
    control_plane,
    engine,
    load,
    netns,
    state_path,
)
from tasks.cluster.errors import ClusterError
from tasks.context import Context
from tasks.core import processes
from tasks.core.console import console
from tasks.core.evidence import StageRecord, Verdict


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    argparse.ArgumentParser(
        prog="nox -s teardown", description="stop the cluster (local processes by PID, or kind and its registry)"
    ).parse_args(argv)
    state = load(ctx)
    if state is not None and state.engine == "local":
        removed = local(ctx, rec, state)
    elif state is not None or choose_engine(rec, None) == "kind":
        removed = kind(ctx, rec, state)
    else:
        removed = []  # nothing recorded, and no kind cluster could be running here
    state_path(ctx).unlink(missing_ok=True)
    rec.details["removed"] = removed
    console.print(f"[green]teardown: PASS[/] — {', '.join(removed) or 'nothing was running'}")
    return "pass"


def local(ctx: Context, rec: StageRecord, state: State) -> list[str]:
    """Every recorded PID stopped, the namespace removed; then checked: nothing left running."""
    tools = cluster_tools(ctx, ("ip", *state.pids))
    executables = {n: tools[n].path.name for n in state.pids}
    gitops = argocd.stop_recorded(ctx)  # Argo CD's processes (`gitops`) live in the same namespace
    ended = {**gitops, **control_plane.down(rec, tools["ip"], state.netns, state.pids, executables)}
    rec.details["ended"] = ended
    left = [n for n, pid in state.pids.items() if processes.alive(pid, executables[n])]
    if state.netns in netns.namespaces(tools["ip"]):
        left.append(f"netns {state.netns}")
    if left:
        raise ClusterError(f"teardown left {', '.join(left)} behind: stop them by hand (PIDs in {state_path(ctx)})")
    (ctx.stage_dir("cluster") / "kubeconfig").unlink(missing_ok=True)
    return [f"{name} ({how})" for name, how in ended.items()]


def kind(ctx: Context, rec: StageRecord, state: State | None) -> list[str]:
    eng = engine(rec)
    tools = cluster_tools(ctx, ("kind",))
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
    kube.kubeconfig.unlink(missing_ok=True)
    return removed
