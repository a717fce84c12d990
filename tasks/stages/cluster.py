"""nox -s cluster"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Sequence

from tasks import admission
from tasks.cluster import (
    CHARTS,
    GATEKEEPER,
    KIND_CONFIG,
    NODE_IMAGE,
    POLICY_CONTROLLER,
    Kube,
    State,
    cluster_name,
    cluster_policy,
    cluster_tools,
    connect_registry,
    enforced,
    engine,
    fetch_chart,
    gatekeeper_policies,
    install_chart,
    load,
    network,
    poll,
    registry_container,
    save,
    wire_nodes,
)
from tasks.context import Context
from tasks.core.console import console
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.media_types import STATE_MEDIA_TYPE


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    argparse.ArgumentParser(
        prog="nox -s cluster", description="kind cluster with Gatekeeper, policy-controller and the policies"
    ).parse_args(argv)
    eng = engine(rec)
    tools = cluster_tools(ctx)
    network(CHARTS)
    name = cluster_name(ctx)
    kube = Kube(ctx, rec, eng, tools, name)
    rec.details.update({"cluster": name, "engine": f"{eng.name} {eng.tool.version}", "node_image": NODE_IMAGE})
    archives = {chart.name: fetch_chart(kube, chart) for chart in CHARTS}
    state = load(ctx) or State(cluster=name, engine=eng.name, kubeconfig=admission.rel(ctx, kube.kubeconfig))
    registry_container(kube, state, ctx)
    rec.details["registry_container"] = state.registry_container
    if name in kube.clusters():
        console.print(f"  kind cluster {name} exists: reusing it")
        kube.export_kubeconfig()
    else:
        kube.run(
            "kind",
            [
                *("create", "cluster", "--name", name, "--config", KIND_CONFIG, "--image", NODE_IMAGE),
                *("--kubeconfig", kube.kubeconfig, "--wait", "300s"),
            ],
            timeout=1200,
        )
    state.registry_ip = connect_registry(kube, state)
    nodes = wire_nodes(kube, state)
    for chart in CHARTS:
        install_chart(kube, chart, archives[chart.name])
        state.charts[chart.name] = chart.version
    constraints = gatekeeper_policies(kube)
    kube.kubectl("apply", "-f", admission.PROTECTED_NAMESPACE)
    state.policy = admission.rel(ctx, cluster_policy(kube, state))
    for kind, constraint in constraints:
        poll(f"Gatekeeper to enforce {kind} {constraint}", 180, functools.partial(enforced, kube, kind, constraint))
    rec.add_output(save(ctx, state), STATE_MEDIA_TYPE)
    rec.details.update({"nodes": nodes, "charts": state.charts, "constraints": [c for _, c in constraints]})
    console.print(
        f"[green]cluster: PASS[/] — kind cluster {name} ({nodes} nodes); Gatekeeper {GATEKEEPER.version} enforcing "
        f"{len(constraints)} constraints; policy-controller (chart {POLICY_CONTROLLER.version}) with {state.policy}; "
        f"namespace {admission.NAMESPACE} protected"
    )
    return "pass"
