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
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from tasks.cluster import pki
from tasks.cluster.netns import apply, create_namespace, delete_namespace, namespace_name, start, wait
from tasks.cluster.webhooks import (
    GATEKEEPER_NAMESPACE,
    GATEKEEPER_POD,
    GATEKEEPER_PORT,
    gatekeeper_manifests,
    module_file,
    policy_controller_manifests,
    write_manifests,
)
from tasks.container import oci_registry
from tasks.context import Context
from tasks.core import atomic, processes
from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool

LOCAL_TOOLS = ("etcd", "kube-apiserver", "kube-controller-manager", "gatekeeper", "policy-controller")
API_PORT = 6443
POLICY_NAMESPACE = "cosign-system"
IGNORE_LABEL = "admission.gatekeeper.sh/ignore"
# policy-controller takes ~a minute to drain: a demo cluster's data is thrown away, so it is not waited for
STOP_GRACE_S = 10.0
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
    atomic.write_secret(path, yaml.safe_dump(doc, sort_keys=False))  # it carries the client's key
    return path


def registry_config(root: Path) -> Path:
    """docker-registry inside the namespace: the host registry's storage, the same address."""
    reg = oci_registry.configured()
    config = root / "registry.yml"
    text = oci_registry.CONFIG.format(storage=reg.state / "storage", host=oci_registry.HOST, port=reg.port)
    atomic.write_text(config, text)
    return config


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
    atomic.write_bytes(cert_dir / "tls.crt", hook.cert.read_bytes())
    atomic.write_secret(cert_dir / "tls.key", hook.key.read_bytes())
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


def down(rec: StageRecord, ip: Tool, netns: str, pids: dict[str, int], binaries: dict[str, str]) -> dict[str, str]:
    """Stop every recorded process by PID (last started first; ``binaries``: name -> the file name
    its /proc cmdline must start with), then remove the namespace."""
    ended = {}
    for name, pid in reversed(list(pids.items())):
        ended[name] = processes.stop_pid(pid, binaries.get(name, name), grace=STOP_GRACE_S)
    if netns:
        ended[f"netns {netns}"] = "removed" if delete_namespace(rec, ip, netns) else "not present"
    return ended
