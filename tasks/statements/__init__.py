"""Talk 02 - in-toto statements the pipeline makes: SLSA provenance (vuln and OpenVEX predicates join here)."""

from __future__ import annotations

from tasks.statements.provenance import (
    BUILD_TYPE,
    LOCAL_BUILDER,
    LOCKS,
    Provenance,
    ResourceDescriptor,
    builder_id,
    from_evidence,
    git_ref,
    invocation_id,
    validate,
)

__all__ = [
    "BUILD_TYPE",
    "LOCAL_BUILDER",
    "LOCKS",
    "Provenance",
    "ResourceDescriptor",
    "builder_id",
    "from_evidence",
    "git_ref",
    "invocation_id",
    "validate",
]
