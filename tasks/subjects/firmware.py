"""The firmware as a supply-chain subject: what the firmware stage built (FIT, U-Boot, initramfs),
pushed by `sign -- --subject firmware` as one OCI artifact and signed and attested there."""

from __future__ import annotations

import hashlib

from tasks import signing, toolchain
from tasks.analysis.sbom_subject import Root, RootArtifact, Subject
from tasks.container import oci_artifact, oci_registry
from tasks.container.deployables import Deployable
from tasks.context import Context
from tasks.core.console import console
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.image_ref import ImageRef
from tasks.core.media_types import (
    BOOTLOADER_MEDIA_TYPE,
    CONTROL_DTB_MEDIA_TYPE,
    FIRMWARE_ARTIFACT_TYPE,
    FIT_MEDIA_TYPE,
    INITRAMFS_MEDIA_TYPE,
    MANIFEST_MEDIA_TYPE,
    REFERENCE_VALUES_MEDIA_TYPE,
    REFERENCE_VALUES_PREDICATE_TYPE,
    SIGSTORE_BUNDLE_MEDIA_TYPE,
)
from tasks.core.recorded import BuiltFirmware, SignedFirmware
from tasks.core.subject import FIRMWARE_NAMES
from tasks.firmware.sbom_tree import sbom_tree
from tasks.policy import rego
from tasks.signing.attach import attest, sign, sign_blob
from tasks.statements.provenance import FIRMWARE_BUILD_TYPE, Provenance, from_firmware_evidence
from tasks.toolchain.inputs import load_inputs

# What the provenance is about, by sha256: the blobs the device boots.
PROVENANCE_SUBJECTS = (FIT_MEDIA_TYPE, BOOTLOADER_MEDIA_TYPE, INITRAMFS_MEDIA_TYPE)
# The firmware artifact's layers, in order: deterministic files only, so the same build pushes the same
# digest (the reference values' signed bundle is not a layer: its statement is attached instead).
LAYERS = (
    FIT_MEDIA_TYPE,
    BOOTLOADER_MEDIA_TYPE,
    CONTROL_DTB_MEDIA_TYPE,
    INITRAMFS_MEDIA_TYPE,
    REFERENCE_VALUES_MEDIA_TYPE,
)
REPOSITORY = "secure-iot-firmware"


class FirmwareSubject:
    """Signed as an OCI artifact by digest; the golden values ride on it as one more statement."""

    names = FIRMWARE_NAMES
    verified_as = "artifact"

    def sbom_sources(self, ctx: Context, rec: StageRecord) -> tuple[str, list[Subject]]:
        """The firmware stage's initramfs unpacked, plus its pinned Debian components (firmware.sbom_tree)."""
        initramfs = ctx.evidence.output("firmware", INITRAMFS_MEDIA_TYPE)
        fit = ctx.evidence.output("firmware", FIT_MEDIA_TYPE)
        rec.add_input(ctx.unchanged(initramfs.name, initramfs.digest), INITRAMFS_MEDIA_TYPE)
        rec.add_input(ctx.unchanged(fit.name, fit.digest), FIT_MEDIA_TYPE)
        inputs = load_inputs(toolchain.lock_path(ctx.root))
        tree = ctx.stage_dir("sbom") / "firmware-tree"
        sbom_tree(ctx.artifact(initramfs.name).read_bytes(), inputs, tree)
        version = BuiltFirmware.read(ctx.evidence).firmware_version
        name = "secure-iot-firmware"
        extra = ("--source-name", name, "--source-version", version)
        root = Root(version=version, purl=f"pkg:generic/{name}@{version}?checksum={fit.digest}")
        return f"{name}@{fit.digest}", [Subject("firmware", f"dir:{tree}", extra, root)]

    def deployables(self, ctx: Context, rec: StageRecord) -> dict[tuple[str, str, str], Deployable]:
        """None recorded: the firmware's files are named by the SBOM tree itself."""
        return {}

    def root_artifact(self, ctx: Context, rec: StageRecord, stem: str, ref: str) -> RootArtifact:
        """The firmware's deployable form: the signed FIT the firmware stage recorded."""
        fit = ctx.evidence.output("firmware", FIT_MEDIA_TYPE)
        path = ctx.unchanged(fit.name, fit.digest)
        return RootArtifact(path.name, hashlib.sha512(path.read_bytes()).hexdigest(), "firmware")

    def provenance(self, ctx: Context, rec: StageRecord) -> tuple[Provenance, dict[str, object], str]:
        """SLSA v1 provenance of the firmware build: subjects FIT, u-boot.bin and initramfs by sha256."""
        subjects = []
        for media in PROVENANCE_SUBJECTS:
            art = ctx.evidence.output("firmware", media)
            path = ctx.unchanged(art.name, art.digest)
            rec.add_input(path, media)
            subjects.append((path.name, art.digest.removeprefix("sha256:")))
        prov = from_firmware_evidence(ctx, rec, subjects)
        details: dict[str, object] = {
            "subject": self.names.name,
            "builder_id": prov.builder_id,
            "build_type": FIRMWARE_BUILD_TYPE,
            "invocation_id": prov.invocation_id,
            "subjects": dict(subjects),
        }
        return prov, details, f"firmware, builder {prov.builder_id}, {len(subjects)} subjects"

    def sign(self, ctx: Context, rec: StageRecord, signer: signing.Signer) -> Verdict:
        """The firmware stage's blobs (re-hashed) pushed as one OCI artifact by digest, signed by digest,
        and carrying the reference-values statement — only after its bundle verified."""
        paths = signing.verified_firmware(ctx, rec, signer, LAYERS).paths
        signing.bound_to_firmware(ctx, ctx.evidence.output("firmware", FIT_MEDIA_TYPE).digest)
        timed = rego.evaluation(ctx.policy)[0]
        built = BuiltFirmware.read(ctx.evidence)
        version, epoch = built.firmware_version, built.source_date_epoch
        pushed = oci_artifact.push(
            ctx,
            rec,
            f"{oci_registry.destination(ctx, rec)}/{REPOSITORY}",
            version,
            FIRMWARE_ARTIFACT_TYPE,
            [(paths[m], m) for m in LAYERS],
            epoch=epoch,
            annotations={
                "org.opencontainers.image.version": version,
                "vnd.secure-iot.firmware.security-version": str(built.security_version),
            },
            manifest=ctx.stage_dir("sign") / "firmware.manifest.json",
        )
        rec.add_oci(pushed.ref, pushed.digest, MANIFEST_MEDIA_TYPE)
        cosign = ctx.tool("cosign")
        signed = sign(rec, cosign, signer, pushed.ref, ctx.stage_dir("sign") / "memo")
        todo = signing.attestations(ctx, self.names, pushed.digest)
        for att in todo:
            rec.add_input(att.predicate, "application/json")
            attest(rec, cosign, signer, pushed.ref, att.type, att.predicate, replace=att.type in timed)
        # The same predicate the bundle signs, now about the artifact (its subject: the manifest digest,
        # whose layers name the FIT by sha256). --replace: a rerun leaves one statement.
        attest(
            rec,
            cosign,
            signer,
            pushed.ref,
            REFERENCE_VALUES_PREDICATE_TYPE,
            paths[REFERENCE_VALUES_MEDIA_TYPE],
            replace=True,
        )
        bundles = [sign_blob(ctx, rec, signer, path) for path in signing.blobs(ctx, self.names)]
        for bundle in bundles:
            rec.add_output(bundle, SIGSTORE_BUNDLE_MEDIA_TYPE)
        attached = [a.type for a in todo] + [REFERENCE_VALUES_PREDICATE_TYPE]
        rec.details.update(
            {
                "subject": self.names.name,
                "artifact": pushed.ref,
                "artifact_type": FIRMWARE_ARTIFACT_TYPE,
                "tag": version,
                "firmware_version": version,
                "signer": signer.describe(),
                "attached": attached,
                "bundles": len(bundles),
            }
        )
        console.print(
            f"[green]sign: pass[/] — firmware {version} as {pushed.ref}: "
            f"signature{'' if signed else ' (already signed)'} + {len(attached)} attestations; "
            f"{len(bundles)} blob bundles"
        )
        return "pass"

    def signed(self, ctx: Context, override: str | None) -> tuple[ImageRef, str, list[str]]:
        """What verify checks: the OCI artifact `sign -- --subject firmware` pushed, by digest, and
        its tag; the golden values ride on the artifact too."""
        signed = SignedFirmware.read(ctx.evidence)
        return signed.artifact, signed.tag, [REFERENCE_VALUES_PREDICATE_TYPE]
