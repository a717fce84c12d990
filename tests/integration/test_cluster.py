"""The cluster sessions (talk 09/10, demo): prerequisites fail first, in one actionable line,
with exit 2 — never a pretended success. The cluster itself runs in the e2e workflow; here
the demo's manifests are checked offline against the real Gatekeeper policies (gator)."""

from __future__ import annotations

import json
import os
import re
import shutil
import tomllib
from collections.abc import Mapping
from pathlib import Path

import pytest
import yaml

from tasks import admission, cluster
from tasks.context import Context
from tasks.core.evidence import StageRecord
from tasks.core.processes import free_port
from tasks.core.runner import Tool
from tests.support.project import REPO, pinned, run_tasks

SESSIONS = ("cluster", "deploy", "demo", "teardown")
ENGINES = ("docker", "podman")


def path_without_engines() -> str:
    """PATH minus every directory holding docker or podman."""
    directories = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    return os.pathsep.join(d for d in directories if not any((Path(d) / e).exists() for e in ENGINES))


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize("session", SESSIONS)
def test_no_container_engine_is_one_line_and_exit_2(session: str, tmp_path: Path) -> None:
    env = {
        "PATH": path_without_engines(),
        "SECURE_IOT_OUT": str(tmp_path / "out"),
        "SECURE_IOT_CONTAINER_ENGINE": "",
        "SECURE_IOT_CLUSTER_ENGINE": "kind",  # the kind engine's prerequisite (local needs none)
    }
    result = run_tasks(session, root=REPO, env=env)
    assert result.returncode == 2, result.output
    (line,) = error_lines(result.output)
    assert line.startswith("error: container engine not found: kind runs the cluster's nodes as containers")
    assert "docker or podman on PATH" in line
    record = json.loads((tmp_path / "out" / "evidence.json").read_text())["stages"][session]
    assert record["verdict"] == "error"
    assert record["reason"].startswith("container engine not found")


@pytest.mark.parametrize("session", SESSIONS)
def test_container_engine_not_running_is_one_line_and_exit_2(session: str, tmp_path: Path) -> None:
    if shutil.which("docker") is None:
        pytest.skip("no docker client on PATH")
    result = run_tasks(
        session,
        root=REPO,
        env={
            "SECURE_IOT_OUT": str(tmp_path / "out"),
            "SECURE_IOT_CONTAINER_ENGINE": "docker",
            "SECURE_IOT_CLUSTER_ENGINE": "kind",
            "DOCKER_HOST": f"unix://{tmp_path}/no-daemon-here.sock",  # the real client, no daemon behind it
        },
    )
    assert result.returncode == 2, result.output
    (line,) = error_lines(result.output)
    assert line.startswith("error: container engine not running: `docker info` failed:")
    assert "no-daemon-here.sock" in line and "start it" in line


def test_a_tool_that_cannot_be_installed_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """kubectl's only route is a release download: unreachable means not installable, said in one line."""
    root = tmp_path / "project"
    root.mkdir()
    lock = (REPO / "tools.lock").read_text()
    lock = re.sub(r'url = "https://dl\.k8s\.io/[^"]+"', f'url = "file://{tmp_path}/nowhere/kubectl"', lock)
    (root / "tools.lock").write_text(lock)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # nothing cached: the route must be tried
    ctx = Context.create(root=root, out=tmp_path / "out").bind(StageRecord(stage="test", root=root))
    with pytest.raises(cluster.ClusterError) as caught:
        cluster.cluster_tools(ctx, ("kubectl",))
    message = str(caught.value)
    assert message.startswith("kubectl is not installable here: kubectl 1.37.1: not installable (download: unreachable")
    assert "\n" not in message and "install by hand" in message


def test_no_network_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()  # a loopback port nobody listens on
    monkeypatch.setattr(cluster.charts, "IMAGE_REGISTRIES", {f"https://127.0.0.1:{port}/v2/": "the test registry"})
    with pytest.raises(cluster.ClusterError) as caught:
        cluster.network(())
    message = str(caught.value)
    assert message.startswith(f"no network: cannot reach https://127.0.0.1:{port}/v2/ for the test registry")
    assert "\n" not in message


def test_deploy_and_demo_need_a_recorded_cluster(tmp_path: Path) -> None:
    ctx = Context.create(root=REPO, out=tmp_path / "out").bind(StageRecord(stage="test", root=REPO))
    with pytest.raises(cluster.ClusterError, match=r"run `nox -s cluster` first"):
        cluster.recorded_state(ctx)


def test_pins_are_exact() -> None:
    pins = tomllib.loads((REPO / "tools.lock").read_text())["tools"]
    assert cluster.GATEKEEPER.version == pins["gator"]["version"]
    assert f"v{pins['policy-tester']['version']}" in cluster.POLICY_CONTROLLER.note
    for chart in cluster.CHARTS:
        assert chart.repository.startswith("https://")
        assert re.fullmatch(r"\d+\.\d+\.\d+", chart.version)
        assert chart.sha256 == "" or re.fullmatch(r"[0-9a-f]{64}", chart.sha256)
    assert re.fullmatch(r"kindest/node:v[\d.]+@sha256:[0-9a-f]{64}", cluster.NODE_IMAGE)
    assert re.fullmatch(r"docker\.io/library/registry:[\d.]+@sha256:[0-9a-f]{64}", cluster.REGISTRY_IMAGE)


def test_cluster_name_comes_from_the_kind_config(tmp_path: Path) -> None:
    ctx = Context.create(root=REPO, out=tmp_path / "out").bind(StageRecord(stage="test", root=REPO))
    assert cluster.cluster_name(ctx) == yaml.safe_load((REPO / cluster.KIND_CONFIG).read_text())["name"]


def demo_manifests(tmp_path: Path, namespace: Mapping[str, object], pod: Mapping[str, object]) -> list[Path]:
    paths = []
    for name, doc in (("namespace", namespace), ("pod", pod)):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(doc))
        paths.append(path)
    return paths


def test_demo_pods_fail_only_for_the_reason_each_step_shows(tmp_path: Path) -> None:
    """Offline, with the real Gatekeeper policies: the demo's pods break no constraint but the one meant."""
    ctx = Context.create(root=REPO, out=tmp_path / "out").bind(StageRecord(stage="test", root=REPO))
    rec = StageRecord(stage="demo", root=REPO)
    gator = pinned_tool("gator")
    bundles = admission.policy_bundles(ctx)
    image = "127.0.0.1:5000/secure-iot-server@sha256:" + "ab" * 32
    protected = yaml.safe_load((REPO / admission.PROTECTED_NAMESPACE).read_text())
    pod = cluster.demo_pod("demo-signed", admission.NAMESPACE, image)
    violations = admission.gator_test(
        ctx, rec, gator, bundles, demo_manifests(tmp_path, protected, pod), tmp_path / "protected.json"
    )
    assert violations == []
    unprotected = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": cluster.DEMO_UNPROTECTED_NAMESPACE}}
    pod = cluster.demo_pod("demo-unprotected", cluster.DEMO_UNPROTECTED_NAMESPACE, image)
    violations = admission.gator_test(
        ctx, rec, gator, bundles, demo_manifests(tmp_path, unprotected, pod), tmp_path / "unprotected.json"
    )
    assert [(v.constraint_name, v.message) for v in violations] == [
        (
            "workloads-in-sigstore-namespaces",
            f'Pod demo-unprotected: namespace "{cluster.DEMO_UNPROTECTED_NAMESPACE}" is not protected by the '
            "sigstore policy-controller: it lacks the label policy.sigstore.dev/include=true",
        )
    ]


def pinned_tool(name: str) -> Tool:
    from tasks import toolchain

    pinned(name)  # installed if needed
    return toolchain.resolve(name, REPO, StageRecord(stage="tools", root=REPO))
