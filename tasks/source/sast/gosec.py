"""Go: gosec over every first-party Go file in scope (test files included), without the dependency graphs.

The repository's Go is first-party glue: wrapper modules under tools/ whose few lines call an
upstream `main`. Type-checking them the usual way means downloading and compiling every
dependency of Kubernetes, etcd, grype and Argo CD (~15 minutes cold) for ~300 lines of our own
code, a cost the default pipeline would pay for tools it never builds. So the scan runs on a copy:

- every Go file in scope is copied, at its own path, into a scratch tree under out/sast/go/;
  each Go module of the repository becomes a scratch module with the same module path and no
  requirements (so the module's own packages resolve, third-party ones do not), and files in no
  module fall into one root scratch module; the host's Go type-checks the standard library;
- gosec runs once per scratch module with GOPROXY=off (nothing is downloaded, nothing of a
  dependency is compiled), `-nosec` (`#nosec` and `//gosec:disable` do not silence the gate);
- a file must parse (`gofmt -e`), else the gate fails: nothing could be checked in it;
- how each file was covered goes into the evidence (``details.gosec_coverage``): ``types`` when it
  type-checked (every rule, the SSA taint analysers included) or ``syntax`` with the third-party
  imports left unresolved (gosec's AST rules run on it — weak crypto, subprocess, file
  inclusion, … — with standard-library types; its SSA analysers are skipped for that package);
- a type error with no unresolved import behind it is a real error in our code: the gate fails.

Its JSON report is read (its SARIF names files without their directory); the findings are
written back out as out/sast/gosec.sarif for code scanning. See ADR 0021.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from tasks.context import Context
from tasks.core import atomic, runner
from tasks.core.errors import InputError
from tasks.core.evidence import StageRecord
from tasks.core.runner import Tool
from tasks.policy.findings import Finding, Severity
from tasks.source.sast.converted import as_sarif
from tasks.toolchain.go import go_env

UNRESOLVED = re.compile(r"could not import (\S+)")
MODULE_LINE = re.compile(r"^module\s+(\S+)\s*$", re.MULTILINE)
ROOT_MODULE = "secure-iot.local/firstparty"  # the module path of files that are in no module


def module_of(root: Path, directory: str) -> str | None:
    """The Go module (the nearest directory holding go.mod) a package directory belongs to."""
    for candidate in (PurePosixPath(directory), *PurePosixPath(directory).parents):
        if (root / candidate / "go.mod").is_file():
            return str(candidate)
    return None


def module_path(go_mod: Path) -> str:
    found = MODULE_LINE.search(go_mod.read_text(encoding="utf-8"))
    if found is None:
        raise InputError(f"{go_mod}: no `module` line; gosec cannot place its packages")
    return found.group(1)


def third_party(import_path: str) -> bool:
    """A path whose first element has a dot is not the standard library's."""
    return "." in import_path.split("/", 1)[0]


def go_language(go: Tool) -> str:
    """The host Go's language version (1.26.8 -> 1.26), written into each scratch go.mod."""
    found = re.match(r"(\d+\.\d+)", go.version)
    if found is None:
        raise InputError(f"go reports version {go.version!r}; gosec needs Go >= 1.21 on the host")
    return found.group(1)


@dataclass(frozen=True)
class Scratch:
    """The copy gosec reads: one scratch module per Go module of the repository (``.`` for none)."""

    into: Path
    requires: dict[str, tuple[str, ...]]  # module directory -> the module paths its go.mod requires
    module_of: dict[str, str]  # file -> module directory

    def directories(self) -> list[Path]:
        return [self.into / key for key in sorted(self.requires)]

    def required(self, file: str, import_path: str) -> bool:
        """Does the go.mod of ``file``'s module require the module ``import_path`` is in?"""
        return any(import_path == m or import_path.startswith(m + "/") for m in self.requires[self.module_of[file]])


def requirements(go_mod: Path) -> tuple[str, ...]:
    """The module paths of a go.mod's ``require`` lines (single and block form)."""
    text = go_mod.read_text(encoding="utf-8")
    blocks = " ".join(re.findall(r"^require\s*\((.*?)^\)", text, re.MULTILINE | re.DOTALL))
    singles = re.findall(r"^require\s+([^\s(]+)\s", text, re.MULTILINE)
    return tuple(sorted({*singles, *re.findall(r"^\s*([^\s/]+\.[^\s]+)\s+v", blocks, re.MULTILINE)}))


def scratch_modules(ctx: Context, files: Sequence[str], into: Path, language: str) -> Scratch:
    """Copy ``files`` into ``into`` at their own paths; one requirement-free go.mod per module."""
    shutil.rmtree(into, ignore_errors=True)
    paths: dict[str, str] = {}  # module directory -> module path
    requires: dict[str, tuple[str, ...]] = {}
    module_of_file: dict[str, str] = {}
    for file in files:
        key = module_of(ctx.root, str(PurePosixPath(file).parent)) or "."
        if key not in paths:
            go_mod = ctx.root / key / "go.mod"
            paths[key] = module_path(go_mod) if go_mod.is_file() else ROOT_MODULE
            requires[key] = requirements(go_mod) if go_mod.is_file() else ()
        module_of_file[file] = key
        target = into / file
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ctx.root / file, target)
    for key, path in paths.items():
        (into / key).mkdir(parents=True, exist_ok=True)
        (into / key / "go.mod").write_text(f"module {path}\n\ngo {language}\n", encoding="utf-8")
    return Scratch(into, requires, module_of_file)


def parse_check(ctx: Context, rec: StageRecord, go: Tool, into: Path, files: Sequence[str]) -> None:
    """Every file parses, or nothing was checked in it: gofmt -e names the first errors."""
    gofmt = Tool("gofmt", go.version, go.path.resolve().parent / "gofmt", route="host")
    if not gofmt.path.is_file():
        raise InputError(f"gofmt is not beside {go.path}: the Go installation is incomplete")
    done = runner.run(rec, gofmt, ["-e", "-l", *files], cwd=into, check=False)
    if done.returncode != 0:
        raise InputError(f"Go file(s) that do not parse, the gate cannot pass them: {done.tail()}")


def scan(ctx: Context, rec: StageRecord, files: Sequence[str]) -> list[Finding]:
    report = ctx.stage_dir("sast") / "gosec.json"
    report.unlink(missing_ok=True)
    go = ctx.tool("go")
    into = ctx.stage_dir("sast") / "go"
    scratch = scratch_modules(ctx, files, into, go_language(go))
    parse_check(ctx, rec, go, into, files)
    tool = ctx.tool("gosec")
    merged: dict[str, Any] = {"Golang errors": {}, "Issues": []}  # gosec's own report shape, all modules
    base = go_env()
    env = {**base, "GOPROXY": "off", "GOTOOLCHAIN": "local", "GOWORK": "off", "GOFLAGS": f"{base['GOFLAGS']} -mod=mod"}
    loaded = 0
    for number, module in enumerate(scratch.directories()):
        part = report.with_suffix(f".{number}.part.json")
        part.unlink(missing_ok=True)
        done = runner.run(
            rec,
            tool,
            ["-nosec", "-tests", "-fmt", "json", "-out", part, "./..."],
            cwd=module,
            env=env,
            check=False,
            timeout=600,
        )
        if done.returncode not in (0, 1) or not part.is_file():  # 1: issues found
            raise InputError(f"gosec exited {done.returncode}: {done.tail()}")
        data = _report(part)
        merged["Golang errors"].update(data.get("Golang errors") or {})
        merged["Issues"] += data.get("Issues") or []
        loaded += int((data.get("Stats") or {}).get("files") or 0)
        part.unlink()
    if loaded != len(files):  # a file its build constraints exclude was not read at all
        raise InputError(f"gosec read {loaded} of the {len(files)} Go files in scope (build constraints?)")
    atomic.write_json(report, merged)
    rec.add_output(report, "application/json")
    rec.details["gosec_coverage"] = coverage(scratch, merged["Golang errors"], files)
    return as_sarif(ctx, rec, tool, _findings(into, merged, set(files)))


def coverage(scratch: Scratch, errors: dict[str, list[dict[str, Any]]], files: Sequence[str]) -> dict[str, str]:
    """How gosec covered each file: ``types``, or ``syntax`` with the imports left unresolved.

    Refuses a file whose type errors have no unresolved third-party import behind them, and one
    that imports a module its go.mod does not require (it could not build; and an import added only
    to leave a package untyped would otherwise switch off the SSA analysers without a word)."""
    shown: dict[str, str] = {}
    broken: list[str] = []
    by_file = {_relative(scratch.into, Path(name)): found for name, found in errors.items() if name}
    for error in errors.get("", []):  # not tied to a file: the go command's own (a package that does not build)
        broken.append(" ".join(str(error.get("error", "?")).split()))
    for file in files:
        found = by_file.get(file) or []
        unresolved = sorted({m.group(1) for e in found if (m := UNRESOLVED.search(str(e.get("error", ""))))})
        stray = [path for path in unresolved if not (third_party(path) and scratch.required(file, path))]
        if not found:
            shown[file] = "types"
        elif unresolved and not stray:
            shown[file] = f"syntax (third-party imports not compiled: {', '.join(unresolved)})"
        elif stray:
            broken.append(f"{file}: imports {', '.join(stray)}, which its go.mod does not require")
        else:
            broken.append(f"{file}:{found[0].get('line', '?')}: {found[0].get('error', '?')}")
    if broken:
        raise InputError(
            f"gosec could not type-check {len(broken)} file(s), the gate cannot pass them: {'; '.join(broken[:5])}"
        )
    return shown


def _relative(into: Path, path: Path) -> str:
    try:
        return str(path.resolve().relative_to(into.resolve()))
    except ValueError:
        raise InputError(f"gosec reported {path}, outside the files it was given") from None


def _report(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not gosec's JSON report ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not gosec's JSON report (not an object)")
    return data


def _findings(into: Path, data: dict[str, Any], in_scope: set[str]) -> list[Finding]:
    findings = []
    for issue in data.get("Issues") or []:
        path = _relative(into, Path(issue["file"]))
        if path not in in_scope:  # only the files in scope were copied; anything else is gosec's surprise
            raise InputError(f"gosec reported {path}, which is not in the SAST scope")
        cwe = (issue.get("cwe") or {}).get("id")
        findings.append(
            Finding(
                tool="gosec",
                rule=str(issue["rule_id"]),
                severity=Severity.parse(str(issue["severity"])),
                location=f"{path}:{str(issue['line']).split('-')[0]}",
                message=str(issue["details"]) + (f" (CWE-{cwe})" if cwe else ""),
                path=path,
            )
        )
    return findings
