"""Talk 10, the demo for real on any machine: kube-apiserver, Gatekeeper and policy-controller as
local processes (the `local` engine) in a network namespace of the project's own. Every claim is
decided by the real API server calling the real webhooks; teardown leaves nothing running."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tasks.core import processes
from tests.support.chain import Chain

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="the local engine makes a network namespace: needs root"),
]
LOCAL = {"SECURE_IOT_CLUSTER_ENGINE": "local"}


def host_listening_ports() -> set[int]:
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def namespaces() -> list[str]:
    done = subprocess.run(["ip", "-json", "netns", "list"], capture_output=True, text=True, check=True)
    return [n["name"] for n in json.loads(done.stdout or "[]")]


@pytest.fixture(scope="module")
def local_cluster(chain: Chain) -> Iterator[tuple[Chain, dict[str, Any]]]:
    code, output = chain.run("cluster", env=LOCAL)
    state_file = chain.out / "cluster" / "state.json"
    state = json.loads(state_file.read_text()) if state_file.exists() else {}
    try:
        assert code == 0, output[-4000:]
        yield chain, state
    finally:
        code, output = chain.run("teardown", env=LOCAL)
        assert code == 0, output[-3000:]


def test_the_control_plane_runs_in_its_own_namespace(local_cluster: tuple[Chain, dict[str, Any]]) -> None:
    _, state = local_cluster
    assert state["engine"] == "local" and state["netns"] in namespaces()
    assert set(state["pids"]) == {
        "docker-registry",
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "gatekeeper",
        "policy-controller",
    }
    assert all(processes.alive(pid) for pid in state["pids"].values())
    # policy-controller listens on *:8443 inside the namespace; the host's own sockets show no such port
    assert 8443 not in host_listening_ports()


def test_deploy_is_admitted_and_pending(local_cluster: tuple[Chain, dict[str, Any]]) -> None:
    chain, _ = local_cluster
    code, output = chain.run("deploy", env=LOCAL)
    assert code == 0, output[-3000:]
    assert "Pending (the local engine runs no kubelet)" in output
    details = json.loads((chain.out / "evidence.json").read_text())["stages"]["deploy"]["details"]
    assert details["pods"] and all(p.startswith("pod/secure-iot") for p in details["pods"])


def test_demo_every_claim_decided_by_the_api_server(local_cluster: tuple[Chain, dict[str, Any]]) -> None:
    chain, _ = local_cluster
    code, output = chain.run("demo", env=LOCAL)
    assert code == 0, output[-4000:]
    report = json.loads((chain.out / "demo" / "steps.json").read_text())
    checks = {c["name"]: c for c in report["checks"]}
    pc = 'admission webhook "policy.sigstore.dev" denied the request'
    gk = 'admission webhook "validation.gatekeeper.sh" denied the request'
    expected = {
        "signed image admitted": "",
        "unsigned image rejected by policy-controller": pc,
        "signed by another key: refused by policy-controller": pc,
        "signed, no spdxjson attestation: refused by policy-controller": pc,
        "signed, vuln attestation with a blocking finding: refused by policy-controller": "GHSA-8q59-q68h-6hv4",
        "pod in an unlabelled namespace rejected by Gatekeeper": gk,
        "privileged pod refused by Gatekeeper": "is privileged",
        "image by tag refused by Gatekeeper": "not pinned by digest",
        "controller-created pod refused: FailedCreate event": "violates PodSecurity",
    }
    for name, text in expected.items():
        assert name in checks, f"{name} missing from {sorted(checks)}"
        assert checks[name]["passed"], checks[name]
        assert text in checks[name]["detail"], checks[name]


def test_gitops_argo_cd_syncs_and_admission_still_decides(local_cluster: tuple[Chain, dict[str, Any]]) -> None:
    """Argo CD (tools.lock) syncs infra/gitops from a git daemon; the release is admitted, a commit
    naming an unsigned image is refused by policy-controller, and its revert leaves Git and the
    cluster agreeing again."""
    chain, state = local_cluster
    code, output = chain.run("gitops", env=LOCAL)
    assert code == 0, output[-4000:]
    report = json.loads((chain.out / "gitops" / "report.json").read_text())
    checks = {c["name"]: c for c in report["checks"]}
    assert [c["passed"] for c in report["checks"]] == [True, True, True], report["checks"]
    assert "pod(s) admitted" in checks["release synced by Argo CD"]["detail"]
    assert chain.ref.split("@")[1] in checks["release synced by Argo CD"]["detail"]
    assert "no signatures found" in checks["a commit naming an unsigned image: refused at admission"]["detail"]
    details = json.loads((chain.out / "evidence.json").read_text())["stages"]["gitops"]["details"]
    assert details["argocd"] == "3.6.1" and len(details["release_commit"]) == 40
    # the chain's registry is on a free port, not the 127.0.0.1:5000 the pinned policies allow
    assert report["registry_commit"] == report["pinned"]["admission-policies"]
    assert details["pinned"] == {
        "admission-policies": report["pinned"]["admission-policies"],
        "secure-iot": report["pinned"]["secure-iot"],
    }
    # Redis, git daemon and Argo CD listen in the control plane's namespace only
    assert not {6379, 8081, 9418} & host_listening_ports()
    gitops = json.loads((chain.out / "gitops" / "processes.json").read_text())
    assert gitops["netns"] == state["netns"] and all(processes.alive(pid) for pid in gitops["pids"].values())


def test_teardown_leaves_nothing(chain: Chain, local_cluster: tuple[Chain, dict[str, Any]]) -> None:
    """Run last in the module: the fixture's own teardown then finds nothing to do."""
    _, state = local_cluster
    code, output = chain.run("teardown", env=LOCAL)
    assert code == 0, output[-3000:]
    assert not any(processes.alive(pid) for pid in state["pids"].values())
    assert not (chain.out / "gitops" / "processes.json").exists()  # Argo CD's processes were stopped first
    assert not Path(f"/etc/netns/{state['netns']}").exists()
    assert state["netns"] not in namespaces()
    assert not (chain.out / "cluster" / "state.json").exists()
