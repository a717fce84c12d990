"""Argo CD beside the local engine (`nox -s gitops`): its application controller and repo server,
v3.6.1 from tools.lock, as processes in the control plane's own network namespace.

- Redis (Argo CD's cache; neither component starts without one) and ``git daemon`` (read-only,
  serving the desired-state copy of desired_state.py) listen on the namespace's loopback.
- ``git-server.gitops.svc.cluster.local``, the repository host infra/gitops names, resolves to that
  loopback through /etc/netns/<netns>/hosts, which `ip netns exec` binds over /etc/hosts for what it
  starts (removed with the namespace). In a cluster it is a Service of that name.
- The repo server renders with the pinned helm and runs git; Argo CD's image also ships
  ``git-verify-wrapper.sh`` (called on every revision, even with GnuPG off), taken here from the
  same pinned module.
- The controller reaches the API server with the control plane's kubeconfig (as
  ``ARGOCD_FAKE_IN_CLUSTER``, the way Argo CD's own Procfile runs it); ``https://kubernetes.default.svc``
  is that cluster. Its in-cluster role is ``*`` on ``*``, so the admin identity grants no more.

Every PID is recorded at once (out/gitops/processes.json); `nox -s teardown` stops them before the
control plane, and a second `gitops` run stops the first's.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tasks.cluster import control_plane, netns, webhooks
from tasks.cluster.errors import ClusterError
from tasks.cluster.kube import Kube, poll
from tasks.cluster.state import State
from tasks.context import Context
from tasks.core import atomic, processes, runner
from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool

MODULE = "github.com/argoproj/argo-cd/v3"
NAMESPACE = "argocd"
GIT_HOST = "git-server.gitops.svc.cluster.local"
GIT_PORT = 9418
REDIS = "127.0.0.1:6379"
REPO_SERVER = "127.0.0.1:8081"
# what `gitops` starts, in order: process name -> the executable its /proc cmdline names
PROCESSES = {
    "redis-server": "redis-server",
    "git-daemon": "git-daemon",
    "argocd-repo-server": "argocd",
    "argocd-application-controller": "argocd",
}
WRAPPERS = ("hack/git-verify-wrapper.sh", "hack/gpg-wrapper.sh")
RECONCILE = "10s"  # how often Argo CD compares the desired state with the cluster (default 120s)


def settings() -> list[dict[str, Any]]:
    """The namespace and the three objects both components read at start (Argo CD's settings)."""

    def labelled(kind: str, name: str, **body: Any) -> dict[str, Any]:
        labels = {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "argocd"}
        return {
            "apiVersion": "v1",
            "kind": kind,
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            **body,
        }

    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        labelled("ConfigMap", "argocd-cm", data={"timeout.reconciliation": RECONCILE}),
        labelled("ConfigMap", "argocd-rbac-cm", data={"policy.default": ""}),
        # server.secretkey signs the API server's sessions; no API server runs, but the settings
        # manager wants the key present: random per run, never written outside the cluster
        labelled("Secret", "argocd-secret", type="Opaque", stringData={"server.secretkey": secrets.token_urlsafe(32)}),
    ]


def record_path(ctx: Context) -> Path:
    """What `gitops` started, by PID, for teardown (the cluster's own state stays as `cluster` recorded it)."""
    return ctx.stage_dir("gitops") / "processes.json"


def stop_recorded(ctx: Context) -> dict[str, str]:
    """Stop what a `gitops` run started (last started first, each by PID after its /proc cmdline
    names the expected executable); then forget it."""
    path = record_path(ctx)
    if not path.is_file():
        return {}
    try:
        pids = {str(n): int(p) for n, p in json.loads(path.read_text(encoding="utf-8"))["pids"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ClusterError(f"{path}: unreadable ({exc}); stop Argo CD's processes by hand, then delete it") from exc
    ended = {
        name: processes.stop_pid(pid, PROCESSES.get(name, name), grace=control_plane.STOP_GRACE_S)
        for name, pid in reversed(pids.items())
    }
    left = [n for n, pid in pids.items() if processes.alive(pid, PROCESSES.get(n, n))]
    if left:
        raise ClusterError(f"{', '.join(left)} still running after SIGKILL: PIDs in {path}")
    path.unlink()
    return ended


def start(
    ctx: Context, rec: StageRecord, tools: Mapping[str, Tool], state: State, root: Path, repos: Path
) -> dict[str, int]:
    """Redis, git daemon, the repo server and the controller, in the control plane's namespace."""
    ip, argocd = tools["ip"], tools["argocd"]
    hosts = netns.netns_etc(state.netns) / "hosts"
    atomic.write_text(hosts, f"127.0.0.1 localhost\n::1 localhost\n127.0.0.1 {GIT_HOST}\n")
    paths = {name: root / name for name in ("redis", "tls", "ssh", "gnupg", "tmp", "bin", "logs")}
    for path in paths.values():
        path.mkdir(parents=True, exist_ok=True)
    os.chmod(paths["gnupg"], 0o700)
    for relative in WRAPPERS:  # on the repo server's PATH, as in Argo CD's image
        script = webhooks.module_file(argocd, MODULE, argocd.version, relative)
        shutil.copyfile(script, paths["bin"] / script.name)
        os.chmod(paths["bin"] / script.name, 0o700)  # owner-only: the repo server runs as this user
    git_daemon = git_daemon_tool(rec, tools["git"])
    search = os.pathsep.join(
        [str(paths["bin"]), str(tools["helm"].path.parent), str(tools["git"].path.parent), "/usr/bin", "/bin"]
    )
    common = {
        "ARGOCD_FAKE_IN_CLUSTER": "true",
        "TMPDIR": str(paths["tmp"]),
        "ARGOCD_TLS_DATA_PATH": str(paths["tls"]),
        "ARGOCD_SSH_DATA_PATH": str(paths["ssh"]),
        "ARGOCD_GNUPGHOME": str(paths["gnupg"]),
        "ARGOCD_GPG_ENABLED": "false",
        "KUBECONFIG": str(ctx.stage_dir("cluster") / "kubeconfig"),
    }
    host, port = REDIS.rsplit(":", 1)
    runs: dict[str, tuple[Tool, list[str], dict[str, str]]] = {
        "redis-server": (
            tools["redis-server"],
            [
                "--bind",
                host,
                "--port",
                port,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(paths["redis"]),
                "--set-proc-title",
                "no",  # keeps its cmdline, which teardown checks before a signal
            ],
            {},
        ),
        "git-daemon": (
            git_daemon,
            [
                "--listen=127.0.0.1",
                f"--port={GIT_PORT}",
                f"--base-path={repos}",
                "--export-all",
                "--reuseaddr",
                "--informative-errors",
                "--strict-paths",
                str(repos / "secure-iot.git"),
            ],
            {},
        ),
        "argocd-repo-server": (
            argocd,
            [
                "--address",
                "127.0.0.1",
                "--port",
                REPO_SERVER.rsplit(":", 1)[1],
                "--metrics-address",
                "127.0.0.1",
                "--redis",
                REDIS,
                "--loglevel",
                "info",
            ],
            {**common, "ARGOCD_BINARY_NAME": "argocd-repo-server", "PATH": search},
        ),
        "argocd-application-controller": (
            argocd,
            [
                "--kubeconfig",
                common["KUBECONFIG"],
                "--namespace",
                NAMESPACE,
                "--redis",
                REDIS,
                "--repo-server",
                REPO_SERVER,
                "--loglevel",
                "info",
            ],
            {**common, "ARGOCD_BINARY_NAME": "argocd-application-controller"},
        ),
    }
    started: dict[str, int] = {}
    for name, (tool, args, env) in runs.items():
        started[name] = netns.start(rec, ip, state.netns, tool, args, paths["logs"] / f"{name}.log", env)
        # recorded at once: teardown stops it even if a later step fails
        atomic.write_json(record_path(ctx), {"netns": state.netns, "pids": started})
    return started


def git_daemon_tool(rec: StageRecord, git: Tool) -> Tool:
    """git's own daemon, run directly (``git daemon`` would exec it under another name)."""
    exec_path = runner.run(rec, git, ["--exec-path"]).stdout.strip()
    binary = Path(exec_path) / "git-daemon"
    if not binary.is_file():
        raise ClusterError(f"{binary}: git's daemon is missing (Debian: apt-get install git)")
    return Tool("git-daemon", git.version, binary, route=git.route)


# --- Applications ------------------------------------------------------------------------------


def application(kube: Kube, name: str) -> dict[str, Any]:
    done = kube.kubectl("get", "application", "-n", NAMESPACE, name, "-o", "json", check=False, record=False)
    return json.loads(done.stdout) if done.returncode == 0 else {}


def refresh(kube: Kube, name: str) -> None:
    """Ask the controller to read the repository now (what a Git webhook does in a cluster)."""
    kube.kubectl("annotate", "application", "-n", NAMESPACE, name, "argocd.argoproj.io/refresh=normal", "--overwrite")


def summary(app: Mapping[str, Any], width: int = 160) -> str:
    """One line: sync status and revision, the last operation's phase and the start of its message."""
    status = app.get("status") or {}
    operation = status.get("operationState") or {}
    sync = status.get("sync") or {}
    message = " ".join(str(operation.get("message", "")).split())
    shown = message if len(message) <= width else message[: width - 1] + "…"
    conditions = "; ".join(str(c.get("message")) for c in status.get("conditions") or [])
    line = f"{sync.get('status', 'Unknown')} at {str(sync.get('revision', ''))[:12] or '-'}, last operation "
    line += str(operation.get("phase", "none")) + (f": {shown}" if shown else "")
    return line + (f" [{conditions}]" if conditions else "")


def in_sync(app: Mapping[str, Any], revision: str) -> bool:
    """Argo CD's own verdict: the live objects equal Git's at ``revision``, no operation running.
    (A re-run finds them equal already and runs none; a first run's sync operation ends first.)"""
    status = app.get("status") or {}
    sync = status.get("sync") or {}
    running = (status.get("operationState") or {}).get("phase") in ("Running", "Terminating")
    return sync.get("status") == "Synced" and sync.get("revision") == revision and not running


def refusals(app: Mapping[str, Any], revision: str) -> Iterator[str]:
    """The messages of resources whose sync to ``revision`` failed."""
    operation = (app.get("status") or {}).get("operationState") or {}
    result = operation.get("syncResult") or {}
    if result.get("revision") != revision:
        return
    for resource in result.get("resources") or []:
        if resource.get("status") == "SyncFailed":
            yield f"{resource.get('kind')}/{resource.get('name')}: {resource.get('message')}"


def sync_revision(app: Mapping[str, Any]) -> str:
    """The revision Argo CD last compared the application with."""
    return str(((app.get("status") or {}).get("sync") or {}).get("revision", ""))


def wait_for(kube: Kube, what: str, timeout: float, probe: Callable[[], Any]) -> Any:
    """kube.poll of ``probe()`` (truthy when done), returning what it found; on timeout the
    Applications' states say why."""
    found: list[Any] = []

    def done() -> bool:
        found[:] = [probe()]
        return bool(found[0])

    try:
        poll(what, timeout, done)
    except ClusterError as exc:
        listed = kube.kubectl("get", "applications", "-n", NAMESPACE, "-o", "json", check=False, record=False)
        apps = json.loads(listed.stdout).get("items", []) if listed.returncode == 0 else []
        states = "; ".join(f"{a['metadata']['name']}: {summary(a)}" for a in apps) or "no Application exists"
        raise ClusterError(f"{exc}: {states}") from exc
    return found[0]
