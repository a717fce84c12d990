"""Talk 09/10 - A cluster to admit into: the kind engine, kubectl wiring, Gatekeeper and
policy-controller charts, the demo steps.
"""

from __future__ import annotations

from tasks.cluster.charts import (
    CHARTS,
    GATEKEEPER,
    IMAGE_REGISTRIES,
    POLICY_CONTROLLER,
    Chart,
    cluster_policy,
    fetch_chart,
    gatekeeper_policies,
    install_chart,
    network,
    unreachable,
)
from tasks.cluster.demo import (
    DEMO_UNPROTECTED_NAMESPACE,
    built_image,
    demo_pod,
    denial,
    dry_run,
    ready,
    step_signed,
    step_unprotected,
    step_unsigned,
    unsigned_image,
)
from tasks.cluster.engine import KIND_CONFIG, NODE_IMAGE, RFC1918, Engine, cluster_tools, engine
from tasks.cluster.errors import ClusterError
from tasks.cluster.kube import Kube, enforced, exists, poll
from tasks.cluster.registry_wiring import (
    CERTS_D,
    KIND_NETWORK,
    KUBE_PUBLIC_CONFIGMAP,
    REGISTRY_CONTAINER,
    REGISTRY_IMAGE,
    REGISTRY_LABEL,
    REGISTRY_PORT_IN_CONTAINER,
    connect_registry,
    registry_container,
    wire_nodes,
)
from tasks.cluster.state import State, cluster_name, load, recorded_state, save, state_path

__all__ = [
    "CERTS_D",
    "CHARTS",
    "DEMO_UNPROTECTED_NAMESPACE",
    "GATEKEEPER",
    "IMAGE_REGISTRIES",
    "KIND_CONFIG",
    "KIND_NETWORK",
    "KUBE_PUBLIC_CONFIGMAP",
    "NODE_IMAGE",
    "POLICY_CONTROLLER",
    "REGISTRY_CONTAINER",
    "REGISTRY_IMAGE",
    "REGISTRY_LABEL",
    "REGISTRY_PORT_IN_CONTAINER",
    "RFC1918",
    "Chart",
    "ClusterError",
    "Engine",
    "Kube",
    "State",
    "built_image",
    "cluster_name",
    "cluster_policy",
    "cluster_tools",
    "connect_registry",
    "demo_pod",
    "denial",
    "dry_run",
    "enforced",
    "engine",
    "exists",
    "fetch_chart",
    "gatekeeper_policies",
    "install_chart",
    "load",
    "network",
    "poll",
    "ready",
    "recorded_state",
    "registry_container",
    "save",
    "state_path",
    "step_signed",
    "step_unprotected",
    "step_unsigned",
    "unreachable",
    "unsigned_image",
    "wire_nodes",
]
