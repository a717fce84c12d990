"""The cluster `Engine`: what differs between kind (nodes as containers) and local (the API
server and webhooks as processes), behind one interface the stages call.

An engine is chosen once: by `cluster` from `--engine` (tasks/cluster/engine.py's
`choose_engine`), and by every later stage from the state `cluster` recorded.
"""

from __future__ import annotations

from typing import Protocol

from tasks.cluster.engine import choose_engine
from tasks.cluster.kind_engine import KindEngine
from tasks.cluster.kube import Kube
from tasks.cluster.local_engine import LocalEngine
from tasks.cluster.state import State, load
from tasks.context import Context
from tasks.core.evidence import StageRecord
from tasks.core.image_ref import ImageRef


class Engine(Protocol):
    """One way to run the cluster the admission policies are enforced in."""

    @property
    def name(self) -> str:
        """kind or local, as `--engine` and SECURE_IOT_CLUSTER_ENGINE spell it."""

    @property
    def reads_pipeline_registry(self) -> bool:
        """The API server reaches the pipeline's own registry (the demo's policy-tester images)."""

    @property
    def hosts_processes(self) -> bool:
        """More processes can run beside the API server (Argo CD for `gitops`)."""

    @property
    def helm_wait(self) -> tuple[str, ...]:
        """helm's flags to wait for the release to run (none where no kubelet runs it)."""

    def up(self, ctx: Context, rec: StageRecord) -> tuple[Kube, State, str]:
        """Start the cluster (its state saved as soon as something runs); what runs, in words."""

    def ready(self, ctx: Context, rec: StageRecord) -> tuple[Kube, State]:
        """The recorded cluster, checked still running, for deploy and demo."""

    def publish(self, ctx: Context, rec: StageRecord, state: State, image: ImageRef) -> None:
        """Make the signed image (with its .sig and .att tags) pullable inside the cluster."""

    def deployed(self, kube: Kube, rec: StageRecord, image: ImageRef) -> str:
        """After helm installed the release: what the cluster runs, in words (fails if nothing)."""

    def down(self, ctx: Context, rec: StageRecord, state: State | None) -> list[str]:
        """Stop what the cluster stage started (``state``, or none recorded); what was removed."""


KIND: Engine = KindEngine()
LOCAL: Engine = LocalEngine()
ENGINES_BY_NAME = {engine.name: engine for engine in (KIND, LOCAL)}


def chosen(rec: StageRecord, requested: str | None) -> Engine:
    """`--engine`, else SECURE_IOT_CLUSTER_ENGINE, else kind where a container engine runs, else local."""
    return ENGINES_BY_NAME[choose_engine(rec, requested)]


def recorded(state: State) -> Engine:
    """The engine that made ``state`` (kind records its container engine, docker or podman)."""
    return LOCAL if state.engine == LOCAL.name else KIND


def ready(ctx: Context, rec: StageRecord) -> tuple[Engine, Kube, State]:
    """deploy/demo prerequisites: the engine, its tools, and the cluster `cluster` made, still running."""
    state = load(ctx)
    engine = recorded(state) if state is not None else KIND
    return engine, *engine.ready(ctx, rec)
