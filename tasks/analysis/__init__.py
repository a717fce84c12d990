"""Talk 02/04 - What is inside an artifact (image or blob): SBOMs with syft, vulnerabilities
with grype, the vulnerability database.
"""

from __future__ import annotations

from tasks.analysis.sbom import SOURCE_EXCLUDES, SYFT_ENV, check_document, generate
from tasks.analysis.scan import GRYPE_DEFAULT_IGNORES, findings, grype_config, vex_documents
from tasks.analysis.vulndb import (
    BUILDER_DIR,
    DEMO_WORKSPACE,
    SOURCE_ENV,
    DbStatus,
    build_demo,
    builder,
    cache_dir,
    grype_env,
    prepare,
    report_status,
    source,
    status,
)

__all__ = [
    "BUILDER_DIR",
    "DEMO_WORKSPACE",
    "GRYPE_DEFAULT_IGNORES",
    "SOURCE_ENV",
    "SOURCE_EXCLUDES",
    "SYFT_ENV",
    "DbStatus",
    "build_demo",
    "builder",
    "cache_dir",
    "check_document",
    "findings",
    "generate",
    "grype_config",
    "grype_env",
    "prepare",
    "report_status",
    "source",
    "status",
    "vex_documents",
]
