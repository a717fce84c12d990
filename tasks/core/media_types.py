"""Every media type and predicate type the pipeline writes or reads, and the digest forms.

One table: evidence, attestations, registry pushes and policies name types from here only.
"""

from __future__ import annotations

import re

# OCI
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
# SBOMs and scan results
SPDX_MEDIA_TYPE = "application/spdx+json"
CYCLONEDX_MEDIA_TYPE = "application/vnd.cyclonedx+json"
SYFT_JSON_MEDIA_TYPE = "application/vnd.syft+json"
GRYPE_JSON_MEDIA_TYPE = "application/vnd.grype+json"
SARIF_MEDIA_TYPE = "application/sarif+json"
OPENVEX_MEDIA_TYPE = "application/openvex+json"
# in-toto statements and their predicates
STATEMENT_MEDIA_TYPE = "application/vnd.in-toto+json"
PREDICATE_MEDIA_TYPE = "application/vnd.slsa.provenance.v1+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
VULN_PREDICATE_TYPE = "https://cosign.sigstore.dev/attestation/vuln/v1"
# the project's own documents
REPORT_MEDIA_TYPE = "application/json"
STATE_MEDIA_TYPE = "application/vnd.secure-iot.cluster-state+json"
CIP_MEDIA_TYPE = "application/yaml"

# Digests: a bare sha256 digest, and an image reference pinned by one.
DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
IMAGE_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
