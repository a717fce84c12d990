"""What the SAST stage scans: every file git knows, minus the policy's reasoned exclusions.

"Knows" is `git ls-files --cached --others --exclude-standard`: every tracked file, and a new
file not yet added (unless .gitignore'd: then it is not part of the product either). Nothing
is scanned because a list names it; a new file in a new folder is in scope with no edit to
the policy. `gates.sast.exclude` takes files out, each with a reason, and the evidence counts
what every exclusion took out.
"""

from __future__ import annotations

import fnmatch
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tasks.context import Context
from tasks.core import runner
from tasks.core.errors import InputError, PolicyError, ToolError
from tasks.core.evidence import StageRecord
from tasks.source.sast.languages import Kind, classify


@dataclass(frozen=True)
class Exclusion:
    """``path``: a directory (ending in ``/``), a file, or a glob over the repo-relative path."""

    path: str
    reason: str
    in_policy: bool = True  # False: the stage's own (its output directory)

    def matches(self, file: str) -> bool:
        if self.path.endswith("/"):
            return file.startswith(self.path)
        return file == self.path or fnmatch.fnmatchcase(file, self.path)


@dataclass(frozen=True)
class Scope:
    code: Mapping[str, tuple[str, ...]]  # code language -> files in scope
    data: Mapping[str, int]  # documents and data formats -> how many files (not code: no SAST)
    unrecognised: tuple[str, ...]
    excluded: Mapping[Exclusion, tuple[str, ...]] = field(default_factory=dict)

    def files(self, languages: Iterable[str]) -> list[str]:
        return sorted({f for language in languages for f in self.code.get(language, ())})

    @property
    def stale(self) -> list[Exclusion]:
        return [e for e, files in self.excluded.items() if not files and e.in_policy]

    def not_covered(self, scanners: Mapping[str, list[str]]) -> dict[str, int]:
        """Code languages in scope that no scanner reads -> how many files."""
        return {lang: len(files) for lang, files in sorted(self.code.items()) if lang not in scanners}

    def coverage(self, scanners: Mapping[str, list[str]]) -> dict[str, object]:
        """The evidence: files per language and what scanned them; what no scanner covers."""
        return {
            "scanned": {
                lang: {"files": len(files), "scanners": scanners[lang]}
                for lang, files in sorted(self.code.items())
                if lang in scanners
            },
            "not_covered": self.not_covered(scanners),
            "not_code": dict(sorted(self.data.items())),
            "unrecognised": list(self.unrecognised),
            "excluded": [
                {"path": e.path, "reason": e.reason, "files": len(files)} for e, files in self.excluded.items()
            ],
        }


def exclusions(ctx: Context) -> list[Exclusion]:
    """gates.sast.exclude from the (schema-validated) policy; refuses paths outside the repository."""
    out = []
    for i, spec in enumerate(ctx.policy.gate("sast").settings.get("exclude", [])):
        path = str(spec["path"])
        if path.startswith("/") or ".." in Path(path).parts:
            raise PolicyError(
                f"{ctx.policy_path}: gates.sast.exclude[{i}].path: {path!r} must be repo-relative (inside it)"
            )
        out.append(Exclusion(path, str(spec["reason"]).strip()))
    return out


def known_files(ctx: Context, rec: StageRecord) -> list[str]:
    """Every file git knows under the root (tracked, or untracked and not ignored), that exists."""
    try:
        done = runner.run(
            rec,
            ctx.tool("git"),
            ["-C", ctx.root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        )
    except ToolError as exc:
        raise InputError(
            f"{ctx.root}: not a git work tree ({exc}); the SAST scope is what git tracks: run it in a clone"
        ) from None
    names = sorted({name for name in done.stdout.split("\0") if name})
    # a tracked file deleted in the work tree, a submodule (a directory) or a symlink is not a file to read
    return [n for n in names if (ctx.root / n).is_file() and not (ctx.root / n).is_symlink()]


def collect(ctx: Context, rec: StageRecord) -> Scope:
    rules = exclusions(ctx)
    if ctx.out.is_relative_to(ctx.root) and ctx.out != ctx.root:  # not every clone's .gitignore has it
        rules.append(Exclusion(f"{ctx.rel(ctx.out)}/", "the pipeline's own outputs (SECURE_IOT_OUT)", in_policy=False))
    excluded: dict[Exclusion, list[str]] = {rule: [] for rule in rules}
    code: dict[str, list[str]] = defaultdict(list)
    data: Counter[str] = Counter()
    unrecognised: list[str] = []
    for name in known_files(ctx, rec):
        rule = next((r for r in rules if r.matches(name)), None)
        if rule is not None:
            excluded[rule].append(name)
            continue
        kind: Kind = classify(ctx.root, name)
        if kind.code:
            code[kind.name].append(name)
        elif kind.name == "unrecognised":
            unrecognised.append(name)
        else:
            data[kind.name] += 1
    return Scope(
        code={lang: tuple(files) for lang, files in code.items()},
        data=dict(data),
        unrecognised=tuple(unrecognised),
        excluded={rule: tuple(files) for rule, files in excluded.items()},
    )
