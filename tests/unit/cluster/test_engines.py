"""The cluster Engine is chosen once: from `--engine` for `cluster`, from the recorded state after."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.cluster import State, engines
from tasks.core.evidence import StageRecord

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(("recorded", "expected"), [("local", "local"), ("docker", "kind"), ("podman", "kind")])
def test_the_recorded_state_names_the_engine(recorded: str, expected: str) -> None:
    """kind records the container engine that runs its nodes; the local engine records itself."""
    state = State(cluster="c", engine=recorded, kubeconfig="k")
    assert engines.recorded(state).name == expected


def test_the_requested_engine_is_chosen(monkeypatch: pytest.MonkeyPatch) -> None:
    rec = StageRecord(stage="test", root=REPO)
    assert engines.chosen(rec, "local") is engines.LOCAL
    monkeypatch.setenv("SECURE_IOT_CLUSTER_ENGINE", "kind")
    assert engines.chosen(rec, None) is engines.KIND


def test_only_the_local_engine_reads_the_pipeline_registry_and_hosts_processes() -> None:
    """What deploy, demo and gitops ask of an engine instead of comparing its name."""
    assert (engines.LOCAL.reads_pipeline_registry, engines.LOCAL.hosts_processes) == (True, True)
    assert (engines.KIND.reads_pipeline_registry, engines.KIND.hosts_processes) == (False, False)
    assert engines.LOCAL.helm_wait == () and "--wait" in engines.KIND.helm_wait
