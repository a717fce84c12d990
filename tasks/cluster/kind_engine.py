"""The kind engine: the cluster's nodes as containers (Docker or Podman), a registry container
beside them on the kind network (tasks/cluster/registry_wiring.py)."""

from __future__ import annotations

from tasks import admission, signing
from tasks.cluster.charts import CHARTS, fetch_chart, install_chart, network
from tasks.cluster.engine import KIND_CONFIG, NODE_IMAGE, cluster_tools, container_engine
from tasks.cluster.errors import ClusterError
from tasks.cluster.kube import Kube
from tasks.cluster.registry_wiring import connect_registry, registry_container, wire_nodes
from tasks.cluster.state import State, cluster_name, load, recorded_state
from tasks.context import Context
from tasks.core import runner
from tasks.core.console import console
from tasks.core.evidence import StageRecord
from tasks.core.image_ref import ImageRef


class KindEngine:
    """kind's nodes pull from the registry container and run what they admit."""

    name = "kind"
    reads_pipeline_registry = False  # containerd on the nodes reads the registry container
    hosts_processes = False  # nothing runs beside the API server outside a node
    helm_wait = ("--wait", "--timeout", "5m")

    def up(self, ctx: Context, rec: StageRecord) -> tuple[Kube, State, str]:
        eng = container_engine(rec)
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
        return kube, state, f"kind cluster {name} ({nodes} nodes)"

    def ready(self, ctx: Context, rec: StageRecord) -> tuple[Kube, State]:
        eng = container_engine(rec)
        tools = cluster_tools(ctx)
        state = recorded_state(ctx)
        kube = Kube(ctx, rec, eng, tools, state.cluster)
        if state.cluster not in kube.clusters():
            raise ClusterError(f"no kind cluster {state.cluster!r} is running: run `nox -s cluster` first")
        running = kube.run(
            "engine", ["inspect", "--format", "{{.State.Running}}", state.registry_container], check=False
        )
        if running.stdout.strip() != "true":
            raise ClusterError(
                f"the registry container {state.registry_container[:12]} is not running: run `nox -s cluster`"
            )
        kube.export_kubeconfig()
        return kube, state

    def publish(self, ctx: Context, rec: StageRecord, state: State, image: ImageRef) -> None:
        """kind's nodes pull from the registry container: the image, .sig and .att tags copied there."""
        runner.run(
            rec,
            ctx.tool("cosign"),
            [
                "copy",
                "--force",
                *signing.registry_flags(image.repository),
                str(image),
                f"{state.push_address}/{image.path}",
            ],
            timeout=600,
        )

    def deployed(self, kube: Kube, rec: StageRecord, image: ImageRef) -> str:
        """helm waited for the rollout: the admitted pods run."""
        return f"{admission.RELEASE} runs {image} in namespace {admission.NAMESPACE}"

    def down(self, ctx: Context, rec: StageRecord, state: State | None) -> list[str]:
        eng = container_engine(rec)
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
