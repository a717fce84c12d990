"""The local control plane's network namespace: made and removed, and what runs inside it — a
command, a daemon (by PID), `kubectl apply` of manifests, and waiting for a readiness probe.

Inside the namespace "every interface" is its loopback, so the webhooks listen on 127.0.0.1 and
nothing of the cluster is reachable from the host's interfaces.
"""

from __future__ import annotations

import json
import secrets
import shutil
import time
from pathlib import Path

from tasks.cluster.errors import ClusterError
from tasks.cluster.webhooks import documents, write_manifests
from tasks.core import processes, runner
from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool

READY_S = 90.0


def namespace_name() -> str:
    """Unique per cluster, short enough for interface names."""
    return f"siot-cp-{secrets.token_hex(3)}"


# --- the network namespace ------------------------------------------------------------------


def create_namespace(rec: StageRecord, ip: Tool, name: str) -> None:
    runner.run(rec, ip, ["netns", "add", name])
    runner.run(rec, ip, ["-n", name, "link", "set", "lo", "up"])


def delete_namespace(rec: StageRecord, ip: Tool, name: str) -> bool:
    shutil.rmtree(netns_etc(name), ignore_errors=True)
    if name not in namespaces(ip):
        return False
    runner.run(rec, ip, ["netns", "delete", name])
    return True


def netns_etc(name: str) -> Path:
    """/etc/netns/<name>/: files `ip netns exec` binds over /etc/ for what it starts (hosts, resolv.conf)."""
    return Path("/etc/netns") / name


def namespaces(ip: Tool) -> list[str]:
    listed = runner.probe(ip, ["-json", "netns", "list"]).stdout.strip()
    return [str(n["name"]) for n in json.loads(listed or "[]")]


def listeners(ip: Tool, name: str) -> list[str]:
    """Every TCP listener inside the namespace (addr:port), from the kernel's socket table."""
    done = runner.probe(ip, ["netns", "exec", name, "cat", "/proc/net/tcp", "/proc/net/tcp6"])
    found = []
    for line in done.stdout.splitlines()[1:]:
        fields = line.split()
        if len(fields) > 3 and fields[3] == "0A":  # TCP_LISTEN
            found.append(fields[1])
    return found


def in_namespace(ip: Tool, name: str, tool: Tool) -> tuple[Tool, list[str]]:
    """``tool`` run inside the namespace: `ip netns exec <name> <tool>` (the argv prefix)."""
    return ip, ["netns", "exec", name, str(tool.path)]


def start(
    rec: StageRecord, ip: Tool, netns: str, tool: Tool, args: list[str], log: Path, env: dict[str, str] | None = None
) -> int:
    launcher, prefix = in_namespace(ip, netns, tool)
    proc = runner.start(rec, launcher, [*prefix, *args], log=log, env=env)
    rec.tools[tool.name] = tool.version
    time.sleep(0.3)
    if proc.poll() is not None:
        raise ClusterError(f"{tool.name} exited {proc.returncode} at start: {processes.tail(log)}")
    return proc.pid


def apply(rec: StageRecord, ip: Tool, netns: str, kubectl: Tool, env: dict[str, str], manifest: Path) -> None:
    """Namespaces first, then the rest: the API server refuses objects in a namespace its
    informers have not seen yet, so the second apply is retried for a few seconds."""
    docs = list(documents(manifest))
    namespaces = [d for d in docs if d.get("kind") == "Namespace"]
    launcher, prefix = in_namespace(ip, netns, kubectl)
    for part, docs_ in (("namespaces", namespaces), ("objects", [d for d in docs if d.get("kind") != "Namespace"])):
        if not docs_:
            continue
        path = write_manifests(manifest.with_suffix(f".{part}.yaml"), docs_)
        args: list[str | Path] = [*prefix, "apply", "--server-side", "--force-conflicts", "-f", path]
        deadline = time.monotonic() + 30
        while True:
            done = runner.run(rec, launcher, args, env=env, timeout=300, check=False)
            if done.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise ClusterError(f"kubectl apply -f {path.name} failed: {done.tail(2)}")
            time.sleep(1)


def wait(
    rec: StageRecord,
    ip: Tool,
    netns: str,
    tool: Tool,
    args: list[str],
    env: dict[str, str],
    what: str,
    log: Path,
    *,
    nonempty: bool = False,
) -> None:
    launcher, prefix = in_namespace(ip, netns, tool)
    deadline = time.monotonic() + READY_S
    started = time.monotonic()
    while True:
        done = runner.probe(launcher, [*prefix, *args], env=env, timeout=20)
        if done.returncode == 0 and (done.stdout.strip() or not nonempty):
            rec.details.setdefault("ready_after_s", {})[what] = round(time.monotonic() - started, 1)
            return
        if time.monotonic() > deadline:
            raise ClusterError(f"timed out after {READY_S:.0f}s waiting for {what}: {processes.tail(log)}")
        time.sleep(0.5)
