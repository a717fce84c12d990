"""Talk 03 — the CI workflows are part of the supply chain: least privilege, pinned, complete.

Four checks, all required to pass with zero findings:

1. actionlint (syntax, expressions, untrusted input in `run:`), machine output as JSON.
   Its shellcheck/pyflakes integrations are off: those tools are not pinned in tools.lock,
   and a result must not depend on what happens to be on PATH.
2. zizmor `--offline --persona auditor` over .github/ (workflows, composite actions,
   dependabot.yml). `--no-config`: an exception is an inline `# zizmor: ignore[rule]`
   comment next to the line it excuses, and it must carry a reason (checked here).
3. Session parity: every `nox -s ...` (and `python -m tasks <stage>`) in a `run:` names a
   session that exists — the stage catalogue plus the @nox.session functions of
   noxfile.py, read with `ast`, nox is not run — and ci.yml runs every stage of the
   default pipeline plus `policy` and `verify`. The branch ruleset requires exactly the
   ci.yml jobs.
4. Pins and hardening: every `uses:` is a 40-hex commit SHA with a `# vX.Y.Z` comment
   (except the entries of TAG_PINNED_ALLOWED, each with its reason); top-level
   `permissions: {}`, a concurrency group, `timeout-minutes` on every job, and no
   `pull_request_target`.
"""

from __future__ import annotations

from tasks.source.workflows.gate import KINDS, check, checks, reason
from tasks.source.workflows.linters import ZIZMOR_FINDINGS_EXIT, relative, run_actionlint, run_zizmor
from tasks.source.workflows.model import (
    CI_WORKFLOW,
    JSON,
    RULESET,
    WORKFLOW_DIR,
    YAML,
    NoxCall,
    Problem,
    Scalar,
    Workflow,
    load_workflow,
    load_workflows,
)
from tasks.source.workflows.parity import (
    COMMAND_PREFIXES,
    REQUIRED_IN_CI_EXTRA,
    SESSION_FLAGS,
    SHELL_STOP,
    available_sessions,
    nox_calls,
    noxfile_sessions,
    parity,
    required_in_ci,
)
from tasks.source.workflows.rules import (
    FULL_TAG,
    SHA_PIN,
    SOFT_RUN,
    TAG_PINNED_ALLOWED,
    VERSION_COMMENT,
    ZIZMOR_IGNORE,
    ci_check_names,
    enforced,
    hardening,
    pins,
    ruleset,
    suppressions,
)

__all__ = [
    "CI_WORKFLOW",
    "COMMAND_PREFIXES",
    "FULL_TAG",
    "JSON",
    "KINDS",
    "REQUIRED_IN_CI_EXTRA",
    "RULESET",
    "SESSION_FLAGS",
    "SHA_PIN",
    "SHELL_STOP",
    "SOFT_RUN",
    "TAG_PINNED_ALLOWED",
    "VERSION_COMMENT",
    "WORKFLOW_DIR",
    "YAML",
    "ZIZMOR_FINDINGS_EXIT",
    "ZIZMOR_IGNORE",
    "NoxCall",
    "Problem",
    "Scalar",
    "Workflow",
    "available_sessions",
    "check",
    "checks",
    "ci_check_names",
    "enforced",
    "hardening",
    "load_workflow",
    "load_workflows",
    "nox_calls",
    "noxfile_sessions",
    "parity",
    "pins",
    "reason",
    "relative",
    "required_in_ci",
    "ruleset",
    "run_actionlint",
    "run_zizmor",
    "suppressions",
]
