"""The local registry as kind nodes see it: a registry container on the kind network, containerd mirrors."""

from __future__ import annotations

import ipaddress
import json
import os

from tasks.cluster.engine import RFC1918
from tasks.cluster.errors import ClusterError
from tasks.cluster.kube import Kube
from tasks.cluster.state import State, save
from tasks.container import oci_registry
from tasks.context import Context

# CNCF distribution, as kind's local-registry guide runs it; digest of the 2.8.3 index as
# pinned in public projects (it could not be pulled from here to check).
REGISTRY_IMAGE = (
    "docker.io/library/registry:2.8.3@sha256:a3d8aaa63ed8681a604f1dea0aa03f100d5895b6a58ace528858a7b332415373"
)


REGISTRY_CONTAINER = "secure-iot-kind-registry"


REGISTRY_LABEL = "io.secure-iot.kind-registry"


REGISTRY_PORT_IN_CONTAINER = 5000


KIND_NETWORK = "kind"


CERTS_D = "/etc/containerd/certs.d"


KUBE_PUBLIC_CONFIGMAP = "local-registry-hosting"


def registry_container(kube: Kube, state: State, ctx: Context) -> None:
    """The registry container kind's guide runs: started once, published on 127.0.0.1 for pushes."""
    if state.registry_container:
        done = kube.run("engine", ["inspect", "--format", "{{.State.Running}}", state.registry_container], check=False)
        if done.stdout.strip() == "true":
            return
        kube.run("engine", ["rm", "--force", state.registry_container], check=False)
    port = os.environ.get("SECURE_IOT_KIND_REGISTRY_PORT", "5001")
    started = kube.run(
        "engine",
        [
            "run",
            "--detach",
            "--restart=always",
            "--name",
            REGISTRY_CONTAINER,
            "--label",
            f"{REGISTRY_LABEL}={state.cluster}",
            "--publish",
            f"{oci_registry.HOST}:{port}:{REGISTRY_PORT_IN_CONTAINER}",
            REGISTRY_IMAGE,
        ],
        timeout=600,
    )
    state.registry_container = started.stdout.strip().splitlines()[-1]
    state.push_address = f"{oci_registry.HOST}:{port}"
    save(ctx, state)


def connect_registry(kube: Kube, state: State) -> str:
    """The registry container on the kind network; its (RFC 1918) address there."""
    networks = kube.run(
        "engine", ["inspect", "--format", "{{json .NetworkSettings.Networks}}", state.registry_container]
    )
    if KIND_NETWORK not in json.loads(networks.stdout or "{}"):
        kube.run("engine", ["network", "connect", KIND_NETWORK, state.registry_container])
    done = kube.run(
        "engine",
        [
            "inspect",
            "--format",
            f"{{{{(index .NetworkSettings.Networks {json.dumps(KIND_NETWORK)}).IPAddress}}}}",
            state.registry_container,
        ],
    )
    address = done.stdout.strip()
    try:
        private = any(ipaddress.ip_address(address) in net for net in RFC1918)
    except ValueError:
        private = False
    if not private:
        raise ClusterError(
            f"the registry container's address on the {KIND_NETWORK!r} network is {address!r}, not an RFC 1918 "
            "IPv4 address: policy-controller would not reach it over plain HTTP"
        )
    return address


def wire_nodes(kube: Kube, state: State) -> int:
    """One hosts.toml per node: 127.0.0.1:<port> -> the registry container (kind's guide)."""
    local = oci_registry.configured().address
    hosts = f'[host."http://{REGISTRY_CONTAINER}:{REGISTRY_PORT_IN_CONTAINER}"]\n'
    nodes = kube.run("kind", ["get", "nodes", "--name", state.cluster]).stdout.split()
    for node in nodes:
        directory = f"{CERTS_D}/{local}"
        kube.run("engine", ["exec", node, "mkdir", "-p", directory])
        kube.run("engine", ["exec", "-i", node, "cp", "/dev/stdin", f"{directory}/hosts.toml"], stdin=hosts)
    hosting = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": KUBE_PUBLIC_CONFIGMAP, "namespace": "kube-public"},
        "data": {
            "localRegistryHosting.v1": f'host: "{state.push_address}"\n'
            'help: "https://kind.sigs.k8s.io/docs/user/local-registry/"\n'
        },
    }
    kube.kubectl("apply", "-f", "-", stdin=json.dumps(hosting))
    return len(nodes)
