"""One exception type per failure family.

Each carries a message a user can act on; ``tasks.cli`` prints it as one red line
and exits non-zero. Gate failures (blocking findings) are verdicts, not errors:
they are reported by the stage and exit with code 1.
"""

from __future__ import annotations


class PipelineError(Exception):
    """Base class: a failure that stops a stage, with an actionable message."""

    exit_code = 2


class PolicyError(PipelineError):
    """security-policy.yaml (or another policy input) is missing, malformed or expired."""


class ToolError(PipelineError):
    """An external tool is missing, unpinned, fails its checksum or fails to run."""


class InputError(PipelineError):
    """An input file is missing, malformed, or outside the repository."""


class EvidenceError(PipelineError):
    """out/evidence.json cannot be read or written."""


class RegistryError(PipelineError):
    """The local OCI registry could not be started, reached or written to."""


class BuildError(PipelineError):
    """An image or firmware build failed."""


class VerificationError(PipelineError):
    """A signature, attestation or policy over their contents did not verify."""


class SigningError(PipelineError):
    """Keys are missing or signing/attesting failed."""


class NetworkError(PipelineError):
    """The device network (namespaces, links, rules, daemons) could not be built, reached or removed."""
