"""The stages, their order and the talk section each delivers. Pure data, stdlib only:
noxfile.py imports this module to create one session per stage, so there is one list."""

from __future__ import annotations

from typing import NamedTuple


class Entry(NamedTuple):
    target: str  # "module:function" implementing the stage body
    talk_section: str
    proves: str


CATALOGUE: dict[str, Entry] = {
    "sast": Entry("tasks.stages.sast:run", "01", "no unwaived SAST finding at or above the policy threshold"),
    "commits": Entry("tasks.stages.commits:run", "01", "every commit in the range is signed by an allowed key"),
    "tools": Entry("tasks.stages.tools:run", "02", "every external tool is the pinned, checksum-verified version"),
    "registry": Entry("tasks.stages.registry:run", "02", "a local OCI registry on 127.0.0.1 serves images by digest"),
    "build": Entry(
        "tasks.stages.build:run", "02", "the image is built hermetically and reproducibly and pushed by digest"
    ),
    "sbom": Entry(
        "tasks.stages.sbom:run",
        "02",
        "SPDX 2.3, SPDX 3.0.1 and CycloneDX 1.6 SBOMs describe the image and the source and meet the gated standards",
    ),
    "scan": Entry(
        "tasks.stages.scan:run", "02", "no known vulnerability at or above the threshold that VEX does not cover"
    ),
    "compliance": Entry(
        "tasks.stages.compliance:run", "04", "the image root filesystem passes the required OpenSCAP rules"
    ),
    "keys": Entry(
        "tasks.stages.keys:run", "02", "a local cosign key pair exists for key-mode signing (never overwritten)"
    ),
    "provenance": Entry(
        "tasks.stages.provenance:run",
        "02",
        "SLSA Provenance v1 records how, from what and by whom the image was built",
    ),
    "sign": Entry(
        "tasks.stages.sign:run",
        "02",
        "the image is signed by digest and carries its SBOM, provenance, vuln and VEX attestations",
    ),
    "verify": Entry(
        "tasks.stages.verify:run",
        "02",
        "signature, required attestations and their contents hold under the shared Rego policy",
    ),
    "rescan": Entry(
        "tasks.stages.rescan:run",
        "04",
        "signed images' attested SBOMs, re-scanned with today's DB and VEX, carry a new signed vuln result",
    ),
    "policy": Entry(
        "tasks.stages.policy:run",
        "10",
        "the chart passes Gatekeeper's constraints and bad manifests are rejected",
    ),
    "cluster": Entry(
        "tasks.stages.cluster:run",
        "09",
        "a real API server (local processes or kind) calls Gatekeeper and policy-controller with our policies",
    ),
    "deploy": Entry(
        "tasks.stages.deploy:run", "10", "the chart is deployed by digest into the protected namespace and admitted"
    ),
    "demo": Entry(
        "tasks.stages.demo:run",
        "demo",
        "the signed image is admitted; unsigned, other-key, unattested and vulnerable images, unprotected "
        "namespaces, privileged pods and tags are refused by the webhooks",
    ),
    "gitops": Entry(
        "tasks.stages.gitops:run",
        "03",
        "Argo CD syncs infra/gitops from Git into the cluster; a commit naming an unsigned image is refused at "
        "admission and its revert syncs again",
    ),
    "teardown": Entry(
        "tasks.stages.teardown:run", "demo", "the cluster is stopped: no process, namespace or container is left"
    ),
    "firmware": Entry(
        "tasks.stages.firmware:run",
        "06",
        "the firmware is built reproducibly from pinned inputs and its FIT signed; reference values come from it",
    ),
    "boot": Entry(
        "tasks.stages.boot:run",
        "08",
        "U-Boot verifies and measures the signed FIT; the device's PCRs equal the build's reference values",
    ),
    "release": Entry(
        "tasks.stages.release:run",
        "03",
        "the firmware is published as a RAUC bundle in a TUF repository a factory-fresh device verifies and installs",
    ),
    "fleet": Entry(
        "tasks.stages.fleet:run",
        "03",
        "fleet/ (signed commit) is reconciled into the TUF repository wave by wave, only with releases that verify",
    ),
    "update": Entry(
        "tasks.stages.update:run",
        "04",
        "a booted QEMU device takes the release into its other slot; U-Boot boots it and it is marked good",
    ),
    "network": Entry(
        "tasks.stages.network:run",
        "04",
        "zones in namespaces with default deny from the allow-list; 802.1X/EAP-TLS admits only enrolled devices; "
        "flows and open ports match what infra/network declares",
    ),
    "factory": Entry(
        "tasks.stages.factory:run",
        "05",
        "each device gets a TPM (swtpm, real EK) with a manufacturer-signed EK certificate, a printed registration"
        " code, and a record in a signed manufacturing manifest",
    ),
    "attest": Entry(
        "tasks.stages.attest:run",
        "05",
        "a device booted with the signed firmware registers with a TPM-bound key and re-attests; booted with a"
        " tampered FIT its key is unusable and its check-in quarantines it (certificate revoked)",
    ),
    "lifecycle": Entry(
        "tasks.stages.lifecycle:run",
        "03-08",
        "one device: registered on N, updated to N+1 (TUF + RAUC, A/B) and still attested with the same key,"
        " refused by its TPM and the server when rolled back, quarantined when tampered and then refused by the"
        " OTA repository, released by an operator and registered afresh",
    ),
    "workflows": Entry(
        "tasks.stages.workflows:run", "03", "workflows are least-privilege, SHA-pinned and run every stage"
    ),
    "report": Entry(
        "tasks.stages.report:run",
        "demo",
        "one self-contained page shows the run, the chain of custody and the findings, from the evidence only",
    ),
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
    "report",
)

# The tools a stage builds from source on a cold machine (go route), in the order it needs them.
# A profile's run builds these in the background while the stages before them run
# (tasks/toolchain/prefetch.py); a stage still resolves each tool itself, so a name missing here
# costs only time. tests/unit/pipeline/test_prefetch.py checks each is pinned with a go route.
BUILT_FROM_SOURCE: dict[str, tuple[str, ...]] = {
    "sast": ("gosec", "opa", "regal"),
    "scan": ("grype",),
    "keys": ("cosign",),
    "sign": ("cosign",),
    "verify": ("cosign", "opa"),
}

# The firmware through the image's supply-chain stages: the same stages, `--subject firmware`.
FIRMWARE_CHAIN: tuple[str, ...] = tuple(
    f"{name} --subject firmware" for name in ("sbom", "scan", "provenance", "sign", "verify")
)

# Named profiles run like the default pipeline: `nox -s device` = the device half, in order.
# A step is a stage name, optionally with arguments; its evidence key is tasks.pipeline.record_name.
PROFILES: dict[str, tuple[str, ...]] = {
    "default": PIPELINE,
    "device": ("keys", "firmware", *FIRMWARE_CHAIN, "boot"),
}
