"""Gatekeeper's and policy-controller's own deploy manifests, made for webhook processes on the
namespace's loopback (no Deployments, no kubelet): the API server calls them by URL or through an
ExternalName service, with the project's CA, and a webhook that does not answer refuses.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tasks.cluster import pki
from tasks.cluster.errors import ClusterError
from tasks.core import atomic
from tasks.core.runner import Tool
from tasks.toolchain.go import go_env

GATEKEEPER_PORT = 8444  # policy-controller holds 8443 (its hard-wired port)
POLICY_CONTROLLER_PORT = 8443
GATEKEEPER_NAMESPACE = "gatekeeper-system"
GATEKEEPER_POD = "gatekeeper-local"  # Gatekeeper looks its own Pod object up by POD_NAME


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
