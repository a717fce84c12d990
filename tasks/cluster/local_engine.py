"""The local engine: the real API server, controller manager and admission webhooks as processes
in a network namespace (tasks/cluster/control_plane.py), no container engine and no kubelet."""

from __future__ import annotations

from tasks import admission
from tasks.cluster import argocd, control_plane, netns
from tasks.cluster.demo import admitted_pods
from tasks.cluster.engine import cluster_tools, local_tools
from tasks.cluster.errors import ClusterError
from tasks.cluster.kube import Kube
from tasks.cluster.state import State, load, recorded_state, save, state_path
from tasks.context import Context
from tasks.core import processes
from tasks.core.evidence import StageRecord
from tasks.core.image_ref import ImageRef


class LocalEngine:
    """Every process started is recorded by PID, so teardown stops exactly those."""

    name = "local"
    reads_pipeline_registry = True  # the API server's namespace reaches the pipeline's own registry
    hosts_processes = True  # Argo CD (`gitops`) runs beside the API server in the same namespace
    helm_wait = ()  # no kubelet: nothing ever becomes Ready, so what was admitted is checked

    def up(self, ctx: Context, rec: StageRecord) -> tuple[Kube, State, str]:
        existing = load(ctx)
        if existing is not None and existing.engine == self.name and existing.pids:
            raise ClusterError(
                f"a local cluster is recorded in {admission.rel(ctx, ctx.stage_dir('cluster'))} "
                f"(netns {existing.netns}): `nox -s teardown` first"
            )
        tools = local_tools(ctx)
        root = ctx.stage_dir("cluster")
        started = control_plane.up(ctx, rec, tools, root)
        state = State(
            cluster="local",
            engine=self.name,
            kubeconfig=admission.rel(ctx, started.kubeconfig),
            netns=started.netns,
            pids=started.pids,
        )
        save(ctx, state)  # recorded at once: teardown can stop what runs even if a later step fails
        kube = Kube(ctx, rec, None, tools, "local", netns=started.netns)
        return kube, state, f"local control plane in netns {started.netns}"

    def ready(self, ctx: Context, rec: StageRecord) -> tuple[Kube, State]:
        state = recorded_state(ctx)
        tools = local_tools(ctx)
        dead = [n for n, pid in state.pids.items() if not processes.alive(pid, tools[n].path.name)]
        if dead:
            raise ClusterError(
                f"the local control plane is not running ({', '.join(dead)} stopped): "
                "`nox -s teardown`, then `nox -s cluster`"
            )
        return Kube(ctx, rec, None, tools, state.cluster, netns=state.netns), state

    def publish(self, ctx: Context, rec: StageRecord, state: State, image: ImageRef) -> None:
        """Nothing to copy: the API server's webhooks read the pipeline's registry itself."""

    def deployed(self, kube: Kube, rec: StageRecord, image: ImageRef) -> str:
        """No kubelet: the pods the webhooks admitted exist, Pending."""
        pods = admitted_pods(kube)
        rec.details["pods"] = pods
        return (
            f"{admission.RELEASE} admitted: Deployment -> ReplicaSet -> {len(pods)} pod(s) "
            f"{', '.join(pods)} in {admission.NAMESPACE}, Pending (the local engine runs no kubelet)"
        )

    def down(self, ctx: Context, rec: StageRecord, state: State | None) -> list[str]:
        """Every recorded PID stopped, the namespace removed; then checked: nothing left running."""
        if state is None:
            return []  # nothing recorded, and no kind cluster could be running here
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
