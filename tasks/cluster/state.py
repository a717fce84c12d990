"""What the cluster stage leaves for deploy, demo and teardown: the recorded cluster state."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from tasks.cluster.engine import KIND_CONFIG
from tasks.cluster.errors import ClusterError
from tasks.context import Context
from tasks.core import atomic
from tasks.core.errors import EvidenceError, InputError
from tasks.core.media_types import STATE_MEDIA_TYPE


@dataclass
class State:
    """What `cluster` created, for deploy, demo and teardown: out/cluster/state.json."""

    cluster: str
    engine: str
    kubeconfig: str
    registry_container: str = ""
    registry_ip: str = ""
    push_address: str = ""
    policy: str = ""
    charts: dict[str, str] = field(default_factory=dict)
    # the local engine: its network namespace and every process it started, by PID
    netns: str = ""
    pids: dict[str, int] = field(default_factory=dict)


def state_path(ctx: Context) -> Path:
    return ctx.stage_dir("cluster") / "state.json"


def save(ctx: Context, state: State) -> Path:
    path = state_path(ctx)
    atomic.write_json(path, asdict(state))
    return path


def load(ctx: Context) -> State | None:
    path = state_path(ctx)
    if not path.is_file():
        return None
    try:
        return State(**json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as exc:
        raise InputError(f"{path}: unreadable cluster state ({exc}); `nox -s teardown` then `nox -s cluster`") from exc


def recorded_state(ctx: Context) -> State:
    """The state of a `cluster` run that passed, checked against its digest in the evidence."""
    try:
        recorded = ctx.evidence.output("cluster", STATE_MEDIA_TYPE)
    except EvidenceError as exc:
        raise ClusterError(f"no cluster to use ({exc}): run `nox -s cluster` first") from exc
    try:
        ctx.unchanged(recorded.name, recorded.digest)
    except (EvidenceError, InputError) as exc:
        raise ClusterError(
            f"{recorded.name} is missing or changed since `nox -s cluster` recorded it: run it again"
        ) from exc
    state = load(ctx)
    if state is None:
        raise ClusterError(f"{recorded.name} disappeared: run `nox -s cluster` again")
    return state


def cluster_name(ctx: Context) -> str:
    config = ctx.inside(KIND_CONFIG)
    if not config.is_file():
        raise InputError(f"{KIND_CONFIG}: the kind cluster configuration is missing")
    name = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("name")
    if not isinstance(name, str) or not name:
        raise InputError(f"{KIND_CONFIG}: no cluster `name:`")
    return name
