"""kubectl, helm and the engine run against the recorded cluster, each command in the stage's evidence."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tasks.cluster.engine import ContainerEngine
from tasks.cluster.errors import ClusterError
from tasks.context import Context
from tasks.core import runner
from tasks.core.evidence import StageRecord
from tasks.core.runner import Completed, Tool


@dataclass(frozen=True)
class Kube:
    """kubectl, helm, kind and the engine, all pointed at this cluster and nothing else.

    On the local engine (no container engine: ``engine`` is None) every command runs inside the
    control plane's network namespace, where the API server and the registry live."""

    ctx: Context
    rec: StageRecord
    engine: ContainerEngine | None
    tools: dict[str, Tool]
    cluster: str
    netns: str = ""

    @property
    def kubeconfig(self) -> Path:
        return self.ctx.stage_dir("cluster") / "kubeconfig"

    def env(self) -> dict[str, str]:
        home = self.ctx.stage_dir("cluster") / "helm-home"
        return {
            "KUBECONFIG": str(self.kubeconfig),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_DATA_HOME": str(home / "data"),
            **(self.engine.kind_env() if self.engine else {}),
        }

    def run(
        self,
        tool: str,
        args: Sequence[str | Path],
        *,
        stdin: str | None = None,
        check: bool = True,
        timeout: float = 600,
        record: bool = True,
    ) -> Completed:
        if tool == "engine" and self.engine is None:
            raise ClusterError("the local engine runs no container engine")
        binary = self.engine.tool if tool == "engine" and self.engine else self.tools[tool]
        if self.netns:  # `ip netns exec <ns> <binary> ...`; the binary's own version is recorded too
            self.rec.tools[binary.name] = binary.version
            args = ["netns", "exec", self.netns, str(binary.path), *map(str, args)]
            binary = self.tools["ip"]
        if not record:  # one try of a readiness poll; the poll's outcome is recorded by the caller
            return runner.probe(binary, args, env=self.env(), cwd=self.ctx.root, stdin=stdin, timeout=timeout)
        return runner.run(
            self.rec,
            binary,
            args,
            env=self.env(),
            cwd=self.ctx.root,
            stdin=stdin,
            check=check,
            timeout=timeout,
        )

    def kubectl(
        self, *args: str | Path, stdin: str | None = None, check: bool = True, record: bool = True
    ) -> Completed:
        return self.run("kubectl", args, stdin=stdin, check=check, record=record)

    def clusters(self) -> list[str]:
        return self.run("kind", ["get", "clusters"], timeout=120).stdout.split()

    def export_kubeconfig(self) -> None:
        self.run("kind", ["export", "kubeconfig", "--name", self.cluster, "--kubeconfig", self.kubeconfig], timeout=120)


def poll(what: str, timeout: float, probe: Callable[[], bool]) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise ClusterError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(2)


def exists(kube: Kube, ref: str) -> bool:
    return kube.kubectl("get", ref, check=False, record=False).returncode == 0


def enforced(kube: Kube, kind: str, name: str) -> bool:
    done = kube.kubectl("get", kind.lower(), name, "-o", "json", check=False, record=False)
    if done.returncode != 0:
        return False
    pods = (json.loads(done.stdout).get("status") or {}).get("byPod") or []
    return bool(pods) and all(p.get("enforced") is True for p in pods)
