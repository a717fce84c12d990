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
SPDX3_MEDIA_TYPE = "application/spdx+json; version=3.0.1"  # SPDX 3.0.1 JSON-LD (the BSI TR-03183-2 document)
DEPLOYABLES_MEDIA_TYPE = "application/vnd.secure-iot.deployables+json"  # files an image was made from, SHA-512
GRYPE_JSON_MEDIA_TYPE = "application/vnd.grype+json"
SARIF_MEDIA_TYPE = "application/sarif+json"
COMPLIANCE_RESULT_MEDIA_TYPE = "application/vnd.secure-iot.openscap-result+json"  # the compliance predicate
OPENVEX_MEDIA_TYPE = "application/openvex+json"
# in-toto statements and their predicates
STATEMENT_MEDIA_TYPE = "application/vnd.in-toto+json"
SIGSTORE_BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"  # cosign --new-bundle-format
PREDICATE_MEDIA_TYPE = "application/vnd.slsa.provenance.v1+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
VULN_PREDICATE_TYPE = "https://cosign.sigstore.dev/attestation/vuln/v1"
# the project's own predicate types (URNs: the project owns no domain to publish them under)
REFERENCE_VALUES_PREDICATE_TYPE = "urn:secure-iot:attestation:reference-values:v1"  # golden PCRs of a signed build
COMPLIANCE_PREDICATE_TYPE = "urn:secure-iot:attestation:openscap-result:v1"  # an OpenSCAP result, gated
# pinned inputs from Debian's archive (tools.lock [inputs.*])
DEBIAN_PACKAGE_MEDIA_TYPE = "application/vnd.debian.binary-package"  # IANA-registered, a .deb
DEBIAN_SOURCE_MEDIA_TYPE = "application/vnd.secure-iot.debian-source-file"  # a .dsc or one of its tarballs
# firmware blobs (talk 06/08): later stages (SBOM, signing, the OCI artifact) pick them up by these
FIT_MEDIA_TYPE = "application/vnd.secure-iot.firmware.fit"  # the signed FIT: kernel + fdt + initramfs
BOOTLOADER_MEDIA_TYPE = "application/vnd.secure-iot.firmware.u-boot"  # u-boot.bin
CONTROL_DTB_MEDIA_TYPE = "application/vnd.secure-iot.firmware.control-dtb"  # the key-bearing root of trust
INITRAMFS_MEDIA_TYPE = "application/vnd.secure-iot.firmware.initramfs+gzip"  # cpio newc, gzip -n
ITS_MEDIA_TYPE = "application/vnd.secure-iot.firmware.its"  # the rendered image source mkimage signed
REFERENCE_VALUES_MEDIA_TYPE = "application/vnd.secure-iot.reference-values+json"  # expected PCRs + event log
MANUFACTURING_MANIFEST_MEDIA_TYPE = "application/vnd.secure-iot.manufacturing-manifest+json"  # the file
PEM_CERTIFICATE_MEDIA_TYPE = "application/pem-certificate-chain"  # IANA (RFC 8555): a CA certificate
MANUFACTURING_MANIFEST_TYPE = "secure-iot/manufacturing-manifest/v1"  # the factory's signed device records (#14)
FIRMWARE_ARTIFACT_TYPE = "application/vnd.secure-iot.firmware.v1"  # artifactType of the firmware OCI artifact
FIRMWARE_BLOB_MEDIA_TYPES = (FIT_MEDIA_TYPE, BOOTLOADER_MEDIA_TYPE, CONTROL_DTB_MEDIA_TYPE, INITRAMFS_MEDIA_TYPE)
# over-the-air updates (talk 03/04)
RAUC_BUNDLE_MEDIA_TYPE = "application/vnd.secure-iot.rauc-bundle"  # a signed verity RAUC bundle (.raucb)
TUF_METADATA_MEDIA_TYPE = "application/vnd.secure-iot.tuf-metadata+json"  # a signed TUF role's metadata
OTA_OFFLINE_MEDIA_TYPE = "application/vnd.secure-iot.ota-offline-bundle+tar"  # TUF chain + target, one file
CONSOLE_LOG_MEDIA_TYPE = "text/plain"  # a device's serial console, as captured
# the project's own documents
REPORT_MEDIA_TYPE = "application/json"
STATE_MEDIA_TYPE = "application/vnd.secure-iot.cluster-state+json"
CIP_MEDIA_TYPE = "application/yaml"

# Digests: a bare sha256 digest, and an image reference pinned by one.
DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")
IMAGE_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
