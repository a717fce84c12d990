"""Python: bandit, over every Python file in scope (semgrep's Python rules run in semgrep.py).

`--ignore-nosec`: an inline `# nosec` does not silence the gate. An explicit, empty ini: a
.bandit file in the tree (skips: B602, ...) must not be read; BANDIT_* variables are dropped
by the runner.
"""

from __future__ import annotations

from collections.abc import Sequence

from tasks.context import Context
from tasks.core import atomic, runner
from tasks.core.errors import InputError
from tasks.core.evidence import StageRecord
from tasks.core.media_types import SARIF_MEDIA_TYPE
from tasks.policy import sarif
from tasks.policy.findings import Finding


def bandit(ctx: Context, rec: StageRecord, files: Sequence[str]) -> list[Finding]:
    out = ctx.stage_dir("sast") / "bandit.sarif"
    out.unlink(missing_ok=True)
    ini = ctx.stage_dir("sast") / "bandit.ini"
    atomic.write_text(ini, "[bandit]\n")
    done = runner.run(
        rec,
        ctx.tool("bandit"),
        ["--ignore-nosec", "--ini", ini, "--quiet", "--format", "sarif", "--output", out, *files],
        cwd=ctx.root,
        check=False,
    )
    if done.returncode not in (0, 1):  # 1 means "issues found"; anything else is a crash
        raise InputError(f"bandit exited {done.returncode}: {done.tail()}")
    rec.add_output(out, SARIF_MEDIA_TYPE)
    unread = sarif.notifications(sarif.load(out))
    if unread:
        raise InputError(f"bandit could not scan {len(unread)} file(s), the gate cannot pass them: {'; '.join(unread)}")
    return sarif.normalize(out, ctx.root)
