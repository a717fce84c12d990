"""The image as a supply-chain subject: the container image the build stage pushed by digest."""

from __future__ import annotations

import hashlib

from tasks import signing
from tasks.analysis.sbom import SOURCE_EXCLUDES
from tasks.analysis.sbom_subject import Root, RootArtifact, Subject, oci_purl
from tasks.container import deployables, oci_registry
from tasks.container.deployables import Deployable
from tasks.context import Context, git_revision
from tasks.core import runner
from tasks.core.console import console
from tasks.core.errors import EvidenceError, VerificationError
from tasks.core.evidence import StageRecord, Verdict
from tasks.core.image_ref import ImageRef
from tasks.core.media_types import DEPLOYABLES_MEDIA_TYPE, MANIFEST_MEDIA_TYPE
from tasks.core.recorded import BuiltImage, ImageBuild
from tasks.core.subject import IMAGE_NAMES
from tasks.policy import rego
from tasks.signing.attach import attest, attestations, blobs, bound_to_image, sign, sign_blob
from tasks.statements.provenance import BUILD_TYPE, Provenance, from_evidence


class ImageSubject:
    """Signed and attested in place, in its own repository (cosign's .sig/.att tags)."""

    names = IMAGE_NAMES
    verified_as = "image"

    def sbom_sources(self, ctx: Context, rec: StageRecord) -> tuple[str, list[Subject]]:
        """The image in the registry, and the source tree it was built from."""
        image = BuiltImage.read(ctx.evidence).image  # pushed by digest, never a tag
        ref = str(image)
        oci_registry.ensure_for(ctx, rec, ref)
        rec.add_oci(ref, image.digest, MANIFEST_MEDIA_TYPE, output=False)
        excludes = [arg for path in SOURCE_EXCLUDES for arg in ("--exclude", path)]
        # Every SBOM the pipeline makes is one Subject; the firmware is one more (--subject firmware).
        return ref, [
            Subject("image", f"registry:{ref}", (), Root(version=image.digest, purl=oci_purl(ref))),
            Subject(
                "source", f"dir:{ctx.root}", (*excludes, "--source-name", "secure-iot"), Root(git_revision(ctx, rec))
            ),
        ]

    def deployables(self, ctx: Context, rec: StageRecord) -> dict[tuple[str, str, str], Deployable]:
        """The files the build installed, by SHA-512 (its deployables manifest, read by digest)."""
        try:
            manifest = ctx.evidence.output("build", DEPLOYABLES_MEDIA_TYPE)
        except EvidenceError as exc:
            raise EvidenceError(f"{exc}; rerun `nox -s build` (it records each installed file's SHA-512)") from exc
        rec.add_input(ctx.unchanged(manifest.name, manifest.digest), DEPLOYABLES_MEDIA_TYPE)
        return deployables.read(ctx.artifact(manifest.name))

    def root_artifact(self, ctx: Context, rec: StageRecord, stem: str, ref: str) -> RootArtifact | None:
        """The image's deployable form: its manifest as the registry serves it, checked against
        the digest; the source tree has none."""
        if stem != self.names.name:
            return None
        image = ImageRef.parse(ref)
        repository, digest = image.repository, image.digest
        done = runner.run(
            rec, ctx.tool("skopeo"), ["inspect", "--raw", *oci_registry.tls_flags(ref), f"docker://{ref}"], timeout=120
        )
        body = done.stdout.encode()
        if "sha256:" + hashlib.sha256(body).hexdigest() != digest:
            raise VerificationError(f"{ref}: the registry served a manifest that is not {digest}")
        return RootArtifact(f"{repository.rsplit('/', 1)[-1]}@{digest}", hashlib.sha512(body).hexdigest(), "container")

    def provenance(self, ctx: Context, rec: StageRecord) -> tuple[Provenance, dict[str, object], str]:
        """SLSA v1 provenance of the image build (its subject: the image, by digest)."""
        prov = from_evidence(ctx, rec)
        rec.add_oci(
            f"{prov.subject_name}@sha256:{prov.subject_digest}",
            f"sha256:{prov.subject_digest}",
            MANIFEST_MEDIA_TYPE,
            output=False,
        )
        details: dict[str, object] = {
            "builder_id": prov.builder_id,
            "build_type": BUILD_TYPE,
            "invocation_id": prov.invocation_id,
        }
        return prov, details, f"builder {prov.builder_id}, subject sha256:{prov.subject_digest[:12]}"

    def sign(self, ctx: Context, rec: StageRecord, signer: signing.Signer) -> Verdict:
        """The build's image signed by digest, its attestations attached, every blob bundled."""
        image = BuiltImage.read(ctx.evidence).image  # by digest: nothing else is signed
        bound_to_image(ctx, image.digest)
        todo = attestations(ctx)
        timed = rego.evaluation(ctx.policy)[0]
        oci_registry.ensure_for(ctx, rec, str(image))
        cosign = ctx.tool("cosign")
        rec.add_oci(str(image), image.digest, MANIFEST_MEDIA_TYPE, output=False)
        memo = ctx.stage_dir("sign") / "memo"
        signed = sign(rec, cosign, signer, str(image), memo)
        for att in todo:
            rec.add_input(att.predicate, "application/json")
            # a time-dependent type's newer statement replaces the older (authorities-policy.rego)
            attest(rec, cosign, signer, str(image), att.type, att.predicate, replace=att.type in timed, memo_dir=memo)
        bundles = [sign_blob(ctx, rec, signer, path) for path in blobs(ctx)]
        for bundle in bundles:
            rec.add_output(bundle, "application/vnd.dev.sigstore.bundle.v0.3+json")
        tags = {"signature": image.tagged(image.signature_tag), "attestations": image.tagged(image.attestation_tag)}
        rec.details.update(
            {
                "image": str(image),
                "signer": signer.describe(),
                "attached": [a.type for a in todo],
                "where": tags,
                "bundles": len(bundles),
            }
        )
        console.print(
            f"[green]sign: pass[/] — signature{'' if signed else ' (already signed)'} + {len(todo)} attestations on "
            f"{image}; {len(bundles)} blob bundles"
        )
        return "pass"

    def signed(self, ctx: Context, override: str | None) -> tuple[ImageRef, str, list[str]]:
        """What verify checks: ``override`` (--image, by digest), else the build's image and its tag;
        no attestation beyond the policy's."""
        if override:
            return ImageRef.parse(override, what="--image"), "", []
        built = ImageBuild.read(ctx.evidence)
        return built.image, built.tag, []
