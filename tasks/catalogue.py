"""The stages, their order and the talk section each delivers. Pure data, stdlib only:
noxfile.py imports this module to create one session per stage, so there is one list."""

from __future__ import annotations

from typing import NamedTuple


class Entry(NamedTuple):
    target: str  # "module:function" implementing the stage body
    talk_section: str
    proves: str


CATALOGUE: dict[str, Entry] = {
    "sast": Entry("tasks.sast:run", "01", "no unwaived SAST finding at or above the policy threshold"),
    "commits": Entry("tasks.commits:run", "01", "every commit in the range is signed by an allowed key"),
    "tools": Entry("tasks.stages.tools:run", "02", "every external tool is the pinned, checksum-verified version"),
    "registry": Entry("tasks.registry:run", "02", "a local OCI registry on 127.0.0.1 serves images by digest"),
    "build": Entry("tasks.build:run", "02", "the image is built hermetically and reproducibly and pushed by digest"),
    "sbom": Entry("tasks.sbom:run", "02", "SPDX 2.3 and CycloneDX 1.6 SBOMs describe the image and the source"),
    "scan": Entry("tasks.scan:run", "02", "no known vulnerability at or above the threshold that VEX does not cover"),
    "compliance": Entry("tasks.compliance:run", "04", "the image root filesystem passes the required OpenSCAP rules"),
    "keys": Entry("tasks.keys:run", "02", "a local cosign key pair exists for key-mode signing (never overwritten)"),
    "provenance": Entry(
        "tasks.provenance:run", "02", "SLSA Provenance v1 records how, from what and by whom the image was built"
    ),
    "sign": Entry(
        "tasks.sign:run",
        "02",
        "the image is signed by digest and carries its SBOM, provenance, vuln and VEX attestations",
    ),
    "verify": Entry(
        "tasks.verify:run",
        "02",
        "signature, required attestations and their contents hold under the shared Rego policy",
    ),
    "policy": Entry(
        "tasks.admission:run", "10", "the chart passes Gatekeeper's constraints and bad manifests are rejected"
    ),
    "cluster": Entry(
        "tasks.cluster:cluster", "09", "a kind cluster runs Gatekeeper and policy-controller with our policies"
    ),
    "deploy": Entry(
        "tasks.cluster:deploy", "10", "the chart is deployed by digest into the protected namespace and admitted"
    ),
    "demo": Entry(
        "tasks.cluster:demo",
        "demo",
        "the signed image is admitted; an unsigned image and an unprotected namespace are rejected",
    ),
    "teardown": Entry("tasks.cluster:teardown", "demo", "the kind cluster and its registry container are removed"),
    "workflows": Entry("tasks.workflows:run", "03", "workflows are least-privilege, SHA-pinned and run every stage"),
}

# The default pipeline: `nox` runs these in order and stops at the first failure.
PIPELINE: tuple[str, ...] = (
    "sast",
    "build",
    "sbom",
    "scan",
    "compliance",
    "keys",
    "provenance",
    "sign",
    "verify",
)
