"""Talk 10 — the sigstore policy-controller's ClusterImagePolicy, rendered and proved offline.

One source: what each attestation must contain is the Rego of infra/policies/sigstore/rego/
that `nox -s verify` evaluates with OPA, rendered by ``tasks.attestation_policy.render``
with the parameters of security-policy.yaml. The committed templates
(infra/policies/sigstore/cip-key.yaml, cip-keyless.yaml) say only where it goes; which
attestations are required comes from gates.verify.required_attestations.

In `nox -s policy` (tasks/admission/gatekeeper.py), when the evidence holds a signed build (key mode),
policy-tester — policy-controller's own verification code, without a cluster — evaluates
the key-mode policy against:

- the signed image from the build evidence: admitted;
- an unsigned image: denied;
- an image attested but not signed: denied (the signature itself is required);
- an image signed and attested except its SPDX SBOM: denied, naming the missing type;
- an image whose provenance names a builder not on the allowed list: denied by the Rego.

The rejected images are small fixtures (buildah from scratch with one file, a fixed
timestamp) pushed to the local registry and signed with the project key. policy-tester
reaches the plain-HTTP registry on 127.0.0.1 with no flag: go-containerregistry speaks
HTTP to loopback (and RFC 1918) registries (``name.Registry.Scheme``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml

from tasks import signing
from tasks.core import atomic
from tasks.core.errors import InputError, PolicyError, SigningError
from tasks.policy import rego
from tasks.policy.security_policy import Policy

Mode = Literal["key", "keyless"]

SIGSTORE = Path("infra/policies/sigstore")
TEMPLATES: dict[Mode, Path] = {"key": SIGSTORE / "cip-key.yaml", "keyless": SIGSTORE / "cip-keyless.yaml"}
AUTHORITIES_POLICY = SIGSTORE / "authorities-policy.rego"
# The attestation entry listing every signed statement of a time-dependent type.
SIGNED_SUFFIX = "-signed"
PLACEHOLDER = re.compile(r"^\$\{([a-z_]+)\}$")

# What this part of the policy stage writes under out/policy/.
OUTPUTS = ("cip-key.yaml", "cip-keyless.yaml", "policy-tester.json")


# --- rendering ---------------------------------------------------------------------------


def template(root: Path, mode: Mode) -> dict[str, Any]:
    path = root / TEMPLATES[mode]
    if not path.is_file():
        raise InputError(f"{path}: the ClusterImagePolicy template ({mode} mode) is missing")
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or doc.get("kind") != "ClusterImagePolicy":
        raise InputError(f"{path}: not a ClusterImagePolicy")
    return doc


def fill(node: Any, values: Mapping[str, Any], where: Path, used: set[str]) -> Any:
    """Replace every whole-value ``${name}`` by ``values[name]``; a None value drops its key."""
    if isinstance(node, dict):
        filled = {key: fill(value, values, where, used) for key, value in node.items()}
        return {key: value for key, value in filled.items() if value is not None}
    if isinstance(node, list):
        return [fill(item, values, where, used) for item in node]
    if isinstance(node, str):
        match = PLACEHOLDER.match(node)
        if match is None:
            if "${" in node:
                raise InputError(f"{where}: {node!r}: a placeholder must be a whole value, like ${{name}}")
            return node
        name = match.group(1)
        if name not in values:
            raise InputError(f"{where}: placeholder ${{{name}}} is not one the pipeline fills")
        used.add(name)
        return values[name]
    return node


def required_kinds(policy: Policy) -> list[str]:
    kinds = [str(k) for k in policy.gate("verify").settings.get("required_attestations", [])]
    if not kinds:
        raise PolicyError(
            f"{policy.path}: gates.verify.required_attestations is empty: the ClusterImagePolicy "
            "would admit images without any attestation"
        )
    return kinds


def attestations(root: Path, policy: Policy) -> list[dict[str, Any]]:
    """One CIP attestation per required kind, with the same Rego `nox -s verify` evaluates.

    No image digest in the parameters: at admission policy-controller itself binds each
    attestation to the image it verifies.
    """
    values = rego.params(policy, "")
    entries: list[dict[str, Any]] = []
    for kind in required_kinds(policy):
        module = rego.render(root, kind, values)
        entry: dict[str, Any] = {"name": kind, "predicateType": rego.KINDS[kind][0]}
        if module is not None:
            entry["policy"] = {"type": "rego", "data": module}
        entries.append(entry)
        if kind in values["time_dependent"]:
            # Every signed statement of the type, judged by nothing: the policy-level Rego
            # compares it with the compliant ones above (authorities-policy.rego).
            entries.append({"name": kind + SIGNED_SUFFIX, "predicateType": rego.KINDS[kind][0]})
    return entries


def authorities_policy(root: Path, names: Sequence[str], time_dependent: Sequence[str] = ()) -> str:
    path = root / AUTHORITIES_POLICY
    if not path.is_file():
        raise InputError(f"{path}: the ClusterImagePolicy-level policy is missing")
    values = {"authorities": list(names), "time_dependent": list(time_dependent), "signed_suffix": SIGNED_SUFFIX}
    return (
        path.read_text(encoding="utf-8")
        + "\n# the authorities of the ClusterImagePolicy template, the time-dependent attestation types\nparams := "
        + json.dumps(values)
        + "\n"
    )


def public_key_pem(path: Path) -> str:
    try:
        pem = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SigningError(f"{path}: no public key for the ClusterImagePolicy ({exc}); run `nox -s keys`") from exc
    if "-----BEGIN PUBLIC KEY-----" not in pem:
        raise SigningError(f"{path}: not a PEM public key")
    return pem


def render(
    root: Path,
    policy: Policy,
    mode: Mode,
    *,
    image_glob: str,
    public_key: Path | None = None,
    sources: Sequence[str] = (),
) -> dict[str, Any]:
    """The ClusterImagePolicy for ``mode`` as a document (see ``dump``).

    ``sources`` are repositories to read signatures and attestations from instead of the
    image's own (policy-controller's ``source.oci``): the cluster needs that, offline not.
    """
    path = root / TEMPLATES[mode]
    doc = template(root, mode)
    names = [str(a.get("name", "")) for a in (doc.get("spec") or {}).get("authorities") or []]
    values: dict[str, Any] = {
        "image_glob": image_glob,
        "sources": [{"oci": s} for s in sources] or None,
        "attestations": attestations(root, policy),
        "authorities_policy": authorities_policy(
            root, names, [k for k in required_kinds(policy) if k in rego.evaluation(policy)[0]]
        ),
    }
    if mode == "key":
        if public_key is None:
            raise SigningError("key mode: the ClusterImagePolicy needs the public key (cosign.pub)")
        values["public_key"] = public_key_pem(public_key)
    else:
        settings = policy.gate("verify").settings
        identity = signing.keyless_identity(policy)
        if not identity:
            raise PolicyError(
                f"{policy.path}: gates.verify.keyless_identity is not set: the keyless "
                "ClusterImagePolicy needs the signing workflow's identity (a regular expression)"
            )
        values["subject_regexp"] = identity
        values["issuer"] = str(settings.get("keyless_issuer", signing.GITHUB_ISSUER))
    used: set[str] = set()
    rendered = fill(doc, values, path, used)
    unused = sorted(set(values) - used)
    if unused:
        raise InputError(f"{path}: the template has no placeholder for {', '.join(unused)}")
    return dict(rendered)


class _Literal(str):
    """A multi-line string, dumped as a YAML block so the Rego stays readable."""


def _literal(dumper: yaml.SafeDumper, data: _Literal) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(data), style="|")


class _Dumper(yaml.SafeDumper):
    def analyze_scalar(self, scalar: str) -> Any:
        """PyYAML refuses block style for text with tabs; YAML allows them in block content."""
        analysis = super().analyze_scalar(scalar)
        if "\t" in scalar and "\n" in scalar:
            analysis.allow_block = super().analyze_scalar(scalar.replace("\t", " ")).allow_block
        return analysis


_Dumper.add_representer(_Literal, _literal)


def _blocks(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _blocks(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_blocks(v) for v in node]
    if isinstance(node, str) and "\n" in node and not any(line != line.rstrip() for line in node.splitlines()):
        return _Literal(node)
    return node


def dump(doc: Mapping[str, Any], header: str = "") -> str:
    body = yaml.dump(
        _blocks(doc), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=100, allow_unicode=True
    )
    return header + body


def write(path: Path, doc: Mapping[str, Any], source: Path) -> None:
    header = f"# Rendered by tasks/admission/cluster_image_policy.py from {source}; do not edit.\n"
    atomic.write_text(path, dump(doc, header))


# --- policy-tester -----------------------------------------------------------------------


# --- fixtures ----------------------------------------------------------------------------


# --- the stage's part --------------------------------------------------------------------
