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
    Kube,
    State,
    choose_engine,
    cluster_name,
    cluster_policy,
    cluster_tools,
    connect_registry,
    control_plane,
    enforced,
    engine,
    fetch_chart,
    gatekeeper_policies,
    install_chart,
    load,
    local_tools,
    network,
    poll,
    registry_container,
    save,
    wire_nodes,
)
from tasks.cluster.errors import ClusterError
from tasks.context import Context
from tasks.core.console import console
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.media_types import STATE_MEDIA_TYPE


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(
        prog="nox -s cluster", description="a cluster with Gatekeeper, policy-controller and the policies"
    )
    parser.add_argument(
        "--engine",
        choices=("kind", "local"),
        help="kind (containers; Docker or Podman) or local (the API server and webhooks as processes); "
        "default: SECURE_IOT_CLUSTER_ENGINE, else kind where a container engine runs, else local",
    )
    args = parser.parse_args(argv)
    chosen = choose_engine(rec, args.engine)
    rec.details["engine_choice"] = chosen
    if chosen == "local":
        return local(ctx, rec)
    return kind(ctx, rec)


def local(ctx: Context, rec: StageRecord) -> Verdict:
    existing = load(ctx)
    if existing is not None and existing.engine == "local" and existing.pids:
        raise ClusterError(
            f"a local cluster is recorded in {admission.rel(ctx, ctx.stage_dir('cluster'))} (netns {existing.netns}): "
            "`nox -s teardown` first"
        )
    tools = local_tools(ctx)
    root = ctx.stage_dir("cluster")
    started = control_plane.up(ctx, rec, tools, root)
    state = State(
        cluster="local",
        engine="local",
        kubeconfig=admission.rel(ctx, started.kubeconfig),
        netns=started.netns,
        pids=started.pids,
    )
    save(ctx, state)  # recorded at once: teardown can stop what runs even if a step below fails
    kube = Kube(ctx, rec, None, tools, "local", netns=started.netns)
    return policies(ctx, rec, kube, state, f"local control plane in netns {started.netns}")


def kind(ctx: Context, rec: StageRecord) -> Verdict:
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
    rec.details["nodes"] = nodes
    return policies(ctx, rec, kube, state, f"kind cluster {name} ({nodes} nodes)")


def policies(ctx: Context, rec: StageRecord, kube: Kube, state: State, where: str) -> Verdict:
    """The same on both engines: templates and constraints, the protected namespace, the
    ClusterImagePolicy rendered from the shared Rego; done when Gatekeeper enforces them all."""
    constraints = gatekeeper_policies(kube)
    kube.kubectl("apply", "-f", admission.PROTECTED_NAMESPACE)
    state.policy = admission.rel(ctx, cluster_policy(kube, state))
    for kind_, constraint in constraints:
        poll(f"Gatekeeper to enforce {kind_} {constraint}", 180, functools.partial(enforced, kube, kind_, constraint))
    rec.add_output(save(ctx, state), STATE_MEDIA_TYPE)
    rec.details.update(
        {
            "cluster": state.cluster,
            "engine": state.engine,
            "netns": state.netns,
            "pids": state.pids,
            "charts": state.charts,
            "constraints": [c for _, c in constraints],
        }
    )
    console.print(
        f"[green]cluster: PASS[/] — {where}; Gatekeeper {GATEKEEPER.version} enforcing {len(constraints)} constraints; "
        f"policy-controller with {state.policy}; "
        f"namespace {admission.NAMESPACE} protected"
    )
    return "pass"
