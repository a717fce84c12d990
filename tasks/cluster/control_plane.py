"""The `local` cluster engine: a real Kubernetes admission chain as processes, no container engine.

etcd, kube-apiserver and kube-controller-manager, with OPA Gatekeeper and sigstore
policy-controller registered as the API server's admission webhooks, all inside a network
namespace of the project's own (policy-controller v0.13.1 listens on *:8443 whatever it is
told; inside the namespace "every interface" is its loopback). A second docker-registry
process in the namespace serves the host registry's storage on the same address
(127.0.0.1:<port>), so image references mean the same bytes on both sides.

There is no kubelet and no scheduler: admitted pods stay Pending, which is all admission needs.
Everything runs from the pinned binaries of the `cluster` profile in tools.lock; every PID is
recorded in the cluster state and stopped by `nox -s teardown`.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tasks.cluster import pki
from tasks.cluster.errors import ClusterError
from tasks.container import oci_registry
from tasks.context import Context
from tasks.core import atomic, runner
from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool
from tasks.toolchain.go import go_env

LOCAL_TOOLS = ("etcd", "kube-apiserver", "kube-controller-manager", "gatekeeper", "policy-controller")
API_PORT = 6443
GATEKEEPER_PORT = 8444  # policy-controller holds 8443 (its hard-wired port)
POLICY_CONTROLLER_PORT = 8443
GATEKEEPER_NAMESPACE = "gatekeeper-system"
GATEKEEPER_POD = "gatekeeper-local"  # Gatekeeper looks its own Pod object up by POD_NAME
POLICY_NAMESPACE = "cosign-system"
IGNORE_LABEL = "admission.gatekeeper.sh/ignore"
READY_S = 90.0
GATEKEEPER_ENV = {"POD_NAMESPACE": GATEKEEPER_NAMESPACE, "POD_NAME": GATEKEEPER_POD, "NAMESPACE": GATEKEEPER_NAMESPACE}


@dataclass(frozen=True)
class Paths:
    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"  # where Kube (kubectl, helm) looks for it on either engine

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"


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


# --- processes ------------------------------------------------------------------------------


def start(
    rec: StageRecord, ip: Tool, netns: str, tool: Tool, args: list[str], log: Path, env: dict[str, str] | None = None
) -> int:
    launcher, prefix = in_namespace(ip, netns, tool)
    proc = runner.start(rec, launcher, [*prefix, *args], log=log, env=env)
    rec.tools[tool.name] = tool.version
    time.sleep(0.3)
    if proc.poll() is not None:
        raise ClusterError(f"{tool.name} exited {proc.returncode} at start: {tail(log)}")
    return proc.pid


def tail(log: Path, lines: int = 3) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(empty log)"


def alive(pid: int, binary: str) -> bool:
    """``pid`` runs ``binary`` and is not a zombie (a recycled PID is never signalled)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z" and any(part.endswith(binary.encode()) for part in cmdline[:1])


def stop(pid: int, binary: str, grace: float = 10.0) -> str:
    """SIGTERM, then SIGKILL after ``grace`` s (policy-controller takes ~a minute to drain: a
    demo cluster's data is thrown away, so it is not waited for)."""
    if not alive(pid, binary):
        return "not running"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not alive(pid, binary):
            return "stopped (SIGTERM)"
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while alive(pid, binary) and time.monotonic() < deadline:
        time.sleep(0.1)
    return "killed (SIGKILL)" if not alive(pid, binary) else "still running"


# --- configuration ----------------------------------------------------------------------------


def kubeconfig(path: Path, ca: pki.Pair, client: pki.Pair, user: str) -> Path:
    def b64(p: Path) -> str:
        return base64.b64encode(p.read_bytes()).decode()

    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "local",
                "cluster": {"server": f"https://127.0.0.1:{API_PORT}", "certificate-authority-data": b64(ca.cert)},
            }
        ],
        "users": [
            {"name": user, "user": {"client-certificate-data": b64(client.cert), "client-key-data": b64(client.key)}}
        ],
        "contexts": [{"name": "local", "context": {"cluster": "local", "user": user}}],
        "current-context": "local",
    }
    atomic.write_text(path, yaml.safe_dump(doc, sort_keys=False))
    os.chmod(path, 0o600)
    return path


def module_file(tool: Tool, module: str, version: str, relative: str) -> Path:
    """A file of a pinned Go module, from the module cache the go route filled."""

    path = Path(go_env()["GOMODCACHE"]) / f"{module}@v{version}" / relative
    if not path.is_file():
        raise ClusterError(f"{path}: not in the Go module cache; run `nox -s tools -- --all` to build {tool.name}")
    return path


def documents(path: Path) -> Iterator[dict[str, Any]]:
    for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        if isinstance(doc, dict):
            yield doc


def gatekeeper_manifests(deploy_yaml: Path, ca: pki.Pair) -> list[dict[str, Any]]:
    """Gatekeeper's own deploy/gatekeeper.yaml, made for a webhook process on 127.0.0.1: its
    CRDs, namespace and validating webhook (clientConfig.url, our CA, failurePolicy Fail: a
    webhook that does not answer refuses, it does not wave through)."""
    bundle = base64.b64encode(ca.cert.read_bytes()).decode()
    out: list[dict[str, Any]] = []
    for doc in documents(deploy_yaml):
        kind = doc.get("kind")
        if kind in ("CustomResourceDefinition", "Namespace"):
            out.append(doc)
        elif kind == "ValidatingWebhookConfiguration":
            for hook in doc.get("webhooks", []):
                path = hook["clientConfig"]["service"].get("path", "/v1/admit")
                hook["clientConfig"] = {"url": f"https://127.0.0.1:{GATEKEEPER_PORT}{path}", "caBundle": bundle}
                hook["failurePolicy"] = "Fail"
            out.append(doc)
    out.append(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": GATEKEEPER_POD, "namespace": GATEKEEPER_NAMESPACE},
            "spec": {  # never scheduled (no kubelet); restricted, as its namespace's Pod Security level demands
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 1000,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": "manager",
                        "image": "gatekeeper-runs-as-a-local-process",
                        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                    }
                ],
            },
        }
    )
    return out


def policy_controller_manifests(config_dir: Path) -> list[dict[str, Any]]:
    """policy-controller's own config/ manifests, for a webhook process: no Deployment; the
    `webhook` Service an ExternalName for localhost (the API server checks the certificate for
    webhook.cosign-system.svc and dials localhost); port 8443 wherever the service is named."""
    out: list[dict[str, Any]] = []
    for path in sorted(config_dir.glob("*.yaml")):
        if path.name in ("webhook.yaml", "kustomization.yaml"):
            continue
        for doc in documents(path):
            if doc.get("kind") == "Service":
                doc = {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": doc["metadata"],
                    "spec": {
                        "type": "ExternalName",
                        "externalName": "localhost",
                        "ports": [{"port": POLICY_CONTROLLER_PORT}],
                    },
                }
            for service in _service_refs(doc):
                service["port"] = POLICY_CONTROLLER_PORT
            out.append(doc)
    return out


def _service_refs(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for hook in doc.get("webhooks", []) or []:
        service = (hook.get("clientConfig") or {}).get("service")
        if isinstance(service, dict):
            yield service
    conversion = ((doc.get("spec") or {}).get("conversion") or {}).get("webhook") or {}
    service = (conversion.get("clientConfig") or {}).get("service")
    if isinstance(service, dict):
        yield service


def write_manifests(path: Path, docs: list[dict[str, Any]]) -> Path:
    atomic.write_text(path, yaml.safe_dump_all(docs, sort_keys=False))
    return path


def registry_config(root: Path) -> Path:
    """docker-registry inside the namespace: the host registry's storage, the same address."""
    reg = oci_registry.configured()
    config = root / "registry.yml"
    text = oci_registry.CONFIG.format(storage=reg.state / "storage", host=oci_registry.HOST, port=reg.port)
    atomic.write_text(config, text)
    return config


# --- up and down ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Started:
    netns: str
    pids: dict[str, int]
    kubeconfig: Path


def up(ctx: Context, rec: StageRecord, tools: dict[str, Tool], root: Path) -> Started:
    """Start the control plane and both webhooks; on any failure stop what started and remove
    the namespace (nothing half-running is left behind)."""
    ip = tools["ip"]
    paths = Paths(root)
    netns = namespace_name()
    create_namespace(rec, ip, netns)
    pids: dict[str, int] = {}
    try:
        _up(ctx, rec, tools, paths, netns, pids)
    except BaseException:
        down(rec, ip, netns, pids, {n: tools[n].path.name for n in pids if n in tools})
        raise
    return Started(netns, pids, paths.kubeconfig)


def _up(ctx: Context, rec: StageRecord, tools: dict[str, Tool], paths: Paths, netns: str, pids: dict[str, int]) -> None:
    ip = tools["ip"]
    certs = paths.pki
    ca = pki.certificate_authority(certs)
    api = pki.issue(
        ca,
        certs,
        "apiserver",
        "kube-apiserver",
        server=True,
        ips=(pki.LOOPBACK,),
        dns=("localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"),
    )
    admin = pki.issue(ca, certs, "admin", "secure-iot-admin", organization="system:masters", client=True)
    kcm = pki.issue(ca, certs, "controller-manager", "system:kube-controller-manager", client=True)
    hook = pki.issue(
        ca,
        certs,
        "gatekeeper-webhook",
        "gatekeeper-webhook-service.gatekeeper-system.svc",
        server=True,
        ips=(pki.LOOPBACK,),
    )
    sa = pki.service_account_key(certs)
    kubeconfig(paths.kubeconfig, ca, admin, "secure-iot-admin")
    kcm_config = kubeconfig(paths.root / "controller-manager.kubeconfig", ca, kcm, "system:kube-controller-manager")

    def launch(name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        pids[name] = start(rec, ip, netns, tools[name], args, paths.log(name), env)

    launch("docker-registry", ["serve", str(registry_config(paths.root))])
    data = paths.root / "etcd"
    shutil.rmtree(data, ignore_errors=True)  # every cluster starts empty: nothing from an earlier run is trusted
    launch(
        "etcd",
        [
            "--name",
            "local",
            "--data-dir",
            str(data),
            "--unsafe-no-fsync",
            "--log-level",
            "warn",
            "--listen-client-urls",
            "http://127.0.0.1:2379",
            "--advertise-client-urls",
            "http://127.0.0.1:2379",
            "--listen-peer-urls",
            "http://127.0.0.1:2380",
            "--initial-advertise-peer-urls",
            "http://127.0.0.1:2380",
            "--initial-cluster",
            "local=http://127.0.0.1:2380",
            "--listen-metrics-urls",
            "http://127.0.0.1:2381",
        ],
    )
    launch(
        "kube-apiserver",
        [
            "--etcd-servers=http://127.0.0.1:2379",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={API_PORT}",
            f"--tls-cert-file={api.cert}",
            f"--tls-private-key-file={api.key}",
            f"--client-ca-file={ca.cert}",
            f"--service-account-key-file={sa.cert}",
            f"--service-account-signing-key-file={sa.key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--authorization-mode=RBAC",
            "--endpoint-reconciler-type=none",
            # the API server's own privileged-pod refusal off: the demo shows Gatekeeper's
            "--allow-privileged=true",
        ],
    )
    kube_env = {"KUBECONFIG": str(paths.kubeconfig)}
    kubectl = tools["kubectl"]
    wait(
        rec,
        ip,
        netns,
        kubectl,
        ["get", "--raw=/readyz"],
        kube_env,
        "kube-apiserver /readyz",
        paths.log("kube-apiserver"),
    )
    launch(
        "kube-controller-manager",
        [
            f"--kubeconfig={kcm_config}",
            f"--authentication-kubeconfig={kcm_config}",
            f"--authorization-kubeconfig={kcm_config}",
            "--bind-address=127.0.0.1",
            "--leader-elect=false",
            f"--service-account-private-key-file={sa.key}",
            f"--root-ca-file={ca.cert}",
            "--use-service-account-credentials=true",  # each controller its own RBAC-bound identity, as kubeadm runs it
        ],
    )
    gatekeeper, policy = tools["gatekeeper"], tools["policy-controller"]
    deploy = module_file(
        gatekeeper, "github.com/open-policy-agent/gatekeeper/v3", gatekeeper.version, "deploy/gatekeeper.yaml"
    )
    manifests = gatekeeper_manifests(deploy, ca)
    webhooks = [d for d in manifests if d.get("kind") == "ValidatingWebhookConfiguration"]
    base = [d for d in manifests if d not in webhooks]  # the webhook is registered once Gatekeeper answers
    apply(rec, ip, netns, kubectl, kube_env, write_manifests(paths.root / "gatekeeper.yaml", base))
    cert_dir = paths.root / "gatekeeper-certs"
    cert_dir.mkdir(exist_ok=True)
    for source, name in ((hook.cert, "tls.crt"), (hook.key, "tls.key")):
        atomic.write_bytes(cert_dir / name, source.read_bytes())
        os.chmod(cert_dir / name, 0o600)
    launch(
        "gatekeeper",
        [
            f"--kubeconfig={paths.kubeconfig}",
            f"--port={GATEKEEPER_PORT}",
            f"--cert-dir={cert_dir}",
            "--disable-cert-rotation",
            "--operation=webhook",
            "--operation=audit",
            "--operation=status",
            "--operation=generate",
            f"--exempt-namespace={GATEKEEPER_NAMESPACE}",
            "--logtostderr",
            "--disable-opa-builtin={http.send}",
            f"--api-cache-dir={paths.root / 'gatekeeper-cache'}",
            "--health-addr=127.0.0.1:9090",
            "--metrics-addr=127.0.0.1:8887",
            "--prometheus-port=8888",
        ],
        GATEKEEPER_ENV,
    )
    apply(rec, ip, netns, kubectl, kube_env, write_manifests(paths.root / "gatekeeper-webhook.yaml", webhooks))
    # ready when the API server itself can call the webhook (a dry run the webhook must judge)
    wait(
        rec,
        ip,
        netns,
        kubectl,
        ["create", "configmap", "gatekeeper-probe", "-n", "default", "--dry-run=server", "-o", "name"],
        kube_env,
        "the API server to reach Gatekeeper's webhook",
        paths.log("gatekeeper"),
    )
    config = module_file(
        policy, "github.com/sigstore/policy-controller", policy.version, "config/100-namespace.yaml"
    ).parent
    apply(
        rec,
        ip,
        netns,
        kubectl,
        kube_env,
        write_manifests(paths.root / "policy-controller.yaml", policy_controller_manifests(config)),
    )
    launch(
        "policy-controller",
        ["--disable-tuf"],
        {
            "KUBECONFIG": str(paths.kubeconfig),
            "SYSTEM_NAMESPACE": POLICY_NAMESPACE,
            "METRICS_DOMAIN": "sigstore.dev/policy",
            "WEBHOOK_NAME": "webhook",
            "POD_NAME": "policy-controller-local",
        },
    )
    wait(
        rec,
        ip,
        netns,
        kubectl,
        [
            "get",
            "validatingwebhookconfiguration",
            "policy.sigstore.dev",
            "-o",
            "jsonpath={.webhooks[0].clientConfig.caBundle}",
        ],
        kube_env,
        "policy-controller to register its webhook (caBundle set)",
        paths.log("policy-controller"),
        nonempty=True,
    )


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
            raise ClusterError(f"timed out after {READY_S:.0f}s waiting for {what}: {tail(log)}")
        time.sleep(0.5)


def down(rec: StageRecord, ip: Tool, netns: str, pids: dict[str, int], binaries: dict[str, str]) -> dict[str, str]:
    """Stop every recorded process by PID (last started first; ``binaries``: name -> the file name
    its /proc cmdline must start with), then remove the namespace."""
    ended = {}
    for name, pid in reversed(list(pids.items())):
        ended[name] = stop(pid, binaries.get(name, name))
    if netns:
        ended[f"netns {netns}"] = "removed" if delete_namespace(rec, ip, netns) else "not present"
    return ended
