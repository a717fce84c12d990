"""The cluster sessions' own error family."""

from __future__ import annotations

from tasks.core.errors import PipelineError


class ClusterError(PipelineError):
    """A prerequisite of the cluster sessions is missing, or the cluster did not come up."""
