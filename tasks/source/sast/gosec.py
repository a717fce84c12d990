"""Go: gosec over every first-party Go file in scope (test files included), without the dependency graphs.

The repository's Go is first-party glue: wrapper modules under tools/ whose few lines call an
upstream `main`. Type-checking them the usual way means downloading and compiling every
dependency of Kubernetes, etcd, grype and Argo CD (~15 minutes cold) for ~300 lines of our own
code, a cost the default pipeline would pay for tools it never builds. So the scan runs on a copy
(ADR 0021):

- every Go file in scope is copied, at its own path, into a scratch tree under out/sast/go/;
  each Go module of the repository becomes a scratch module with the same module path, its own
  `go` line (capped at the host's Go) and no requirements, so the module's own packages resolve
  and third-party ones do not; files in no module fall into one root scratch module;
- a file must parse (`gofmt -e`), and `go list` must place every file in scope in a package that
  gosec reads (a file excluded by a build constraint, its name or cgo fails the gate: nothing
  would check it);
- gosec runs once per scratch module on its package directories, named one by one, with
  GOPROXY=off (nothing is downloaded, nothing of a dependency is compiled) and `-nosec`
  (`#nosec` and `//gosec:disable` do not silence the gate);
- coverage is decided per package and recorded per file (``details.gosec_coverage``): ``types``
  when the package type-checked (every rule, the SSA analysers included), or ``syntax`` when a
  file of it imports third-party packages (gosec's AST rules with standard-library types; the
  package's SSA analysers are skipped). ``syntax`` is allowed only in the wrapper modules under
  tools/, for imports their go.mod requires; any other type error fails the gate.

Its JSON report is read (its SARIF names files without their directory); the findings are
written back out as out/sast/gosec.sarif for code scanning.
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
ROOT_MODULE = "secure-iot.local/firstparty"  # the module path of files that are in no module
WRAPPERS = PurePosixPath("tools")  # the wrapper modules (tools/README.md): the only ones whose imports stay untyped
LISTED = ("GoFiles", "TestGoFiles", "XTestGoFiles")  # what go list puts in a package gosec reads


def module_of(root: Path, directory: str) -> str | None:
    """The Go module (the nearest directory holding go.mod) a package directory belongs to."""
    for candidate in (PurePosixPath(directory), *PurePosixPath(directory).parents):
        if (root / candidate / "go.mod").is_file():
            return str(candidate)
    return None


def third_party(import_path: str) -> bool:
    """A path whose first element has a dot is not the standard library's."""
    return "." in import_path.split("/", 1)[0]


def language(version: str) -> tuple[int, int]:
    found = re.match(r"(?:go)?(\d+)\.(\d+)", version)
    if found is None:
        raise InputError(f"not a Go version: {version!r}")
    return int(found.group(1)), int(found.group(2))


@dataclass(frozen=True)
class Module:
    """One scratch module: the repository's module directory (``.`` for files in none)."""

    directory: str
    path: str  # its module path
    go: str  # its `go` line, capped at the host's
    requires: tuple[str, ...]  # the module paths its go.mod requires
    packages: tuple[str, ...]  # package directories in scope, relative to the repository

    def required(self, import_path: str) -> bool:
        return any(import_path == m or import_path.startswith(m + "/") for m in self.requires)

    def patterns(self) -> list[str]:
        """Its package directories, relative to the module, one by one (nothing is walked)."""
        return [f"./{PurePosixPath(p).relative_to(self.directory)}" for p in self.packages]

    @property
    def wrapper(self) -> bool:
        return PurePosixPath(self.directory).parent == WRAPPERS


def describe(rec: StageRecord, go: Tool, root: Path, directory: str, host: tuple[int, int]) -> dict[str, Any]:
    """Module path, go line and requirements of ``directory``'s go.mod, read by the go command."""
    go_mod = root / directory / "go.mod"
    if directory == "." and not go_mod.is_file():
        return {"path": ROOT_MODULE, "go": "{}.{}".format(*host), "requires": ()}
    done = runner.run(rec, go, ["mod", "edit", "-json", go_mod], env={"GOTOOLCHAIN": "local"}, check=False)
    try:
        parsed = json.loads(done.stdout) if done.returncode == 0 else None
    except json.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict) or not (parsed.get("Module") or {}).get("Path"):
        raise InputError(f"{directory}/go.mod: the go command cannot read it: {done.tail()}")
    declared = language(str(parsed.get("Go") or "1.16"))
    return {
        "path": parsed["Module"]["Path"],
        "go": "{}.{}".format(*min(declared, host)),  # loop-variable and other rules follow the module's own go line
        "requires": tuple(sorted(str(r["Path"]) for r in parsed.get("Require") or [])),
    }


def scratch_modules(
    ctx: Context, rec: StageRecord, go: Tool, files: Sequence[str], into: Path
) -> tuple[list[Module], dict[str, Module]]:
    """Copy ``files`` into ``into`` at their own paths; one requirement-free go.mod per module."""
    if into.is_symlink():
        into.unlink()
    if into.exists():
        shutil.rmtree(into)  # not ignore_errors: a tree we cannot clear is not the tree we scan
    into.mkdir(parents=True)
    host = language(go.version)
    grouped: dict[str, set[str]] = {}
    of_file: dict[str, str] = {}
    for file in files:
        package = str(PurePosixPath(file).parent)
        key = module_of(ctx.root, package) or "."
        grouped.setdefault(key, set()).add(package)
        of_file[file] = key
    modules = {
        key: Module(key, packages=tuple(sorted(packages)), **describe(rec, go, ctx.root, key, host))
        for key, packages in sorted(grouped.items())
    }
    for file in files:
        target = into / file
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ctx.root / file, target)
    for module in modules.values():
        (into / module.directory).mkdir(parents=True, exist_ok=True)
        (into / module.directory / "go.mod").write_text(f"module {module.path}\n\ngo {module.go}\n", encoding="utf-8")
    return list(modules.values()), {file: modules[key] for file, key in of_file.items()}


def parse_check(rec: StageRecord, go: Tool, into: Path, files: Sequence[str]) -> None:
    """Every file parses, or nothing was checked in it: gofmt -e names the first errors."""
    gofmt = Tool("gofmt", go.version, go.path.resolve().parent / "gofmt", route="host")
    if not gofmt.path.is_file():
        raise InputError(f"gofmt is not beside {go.path}: the Go installation is incomplete")
    done = runner.run(rec, gofmt, ["-e", "-l", "--", *files], cwd=into, check=False)
    if done.returncode != 0:
        raise InputError(f"Go file(s) that do not parse, the gate cannot pass them: {done.tail()}")


def scan_env() -> dict[str, str]:
    base = go_env()
    return {
        **base,
        "GOPROXY": "off",
        "GOTOOLCHAIN": "local",
        "GOWORK": "off",
        "GO111MODULE": "on",
        "GOFLAGS": f"{base['GOFLAGS']} -mod=mod",
    }


def listed_check(rec: StageRecord, go: Tool, into: Path, modules: Sequence[Module], files: Sequence[str]) -> None:
    """`go list` places every file in scope in a package gosec reads; a file it leaves out fails."""
    read: set[str] = set()
    for module in modules:
        done = runner.run(
            rec,
            go,
            ["list", "-e", "-find", "-json", "--", *module.patterns()],
            cwd=into / module.directory,
            env=scan_env(),
        )
        for package in _json_stream(done.stdout):
            directory = Path(str(package.get("Dir", "")))
            for field in LISTED:
                read |= {_relative(into, directory / name) for name in package.get(field) or []}
    if left := sorted(set(files) - read):
        raise InputError(
            f"Go file(s) no package of this platform builds (a build constraint, a GOOS/GOARCH suffix, cgo), so "
            f"gosec would not read them: {', '.join(left[:5])}; take them out with gates.sast.exclude and a reason"
        )


def scan(ctx: Context, rec: StageRecord, files: Sequence[str]) -> list[Finding]:
    report = ctx.stage_dir("sast") / "gosec.json"
    report.unlink(missing_ok=True)
    go = ctx.tool("go")
    into = ctx.stage_dir("sast") / "go"
    modules, module_of_file = scratch_modules(ctx, rec, go, files, into)
    parse_check(rec, go, into, files)
    listed_check(rec, go, into, modules, files)
    tool = ctx.tool("gosec")
    merged: dict[str, Any] = {"Golang errors": {}, "Issues": []}  # gosec's own report shape, all modules
    for number, module in enumerate(modules):
        part = report.with_suffix(f".{number}.part.json")
        part.unlink(missing_ok=True)
        done = runner.run(
            rec,
            tool,
            [
                "-nosec",
                "-tests",
                "-fmt",
                "json",
                "-out",
                part,
                *module.patterns(),
            ],  # named one by one: gosec walks nothing
            cwd=into / module.directory,
            env=scan_env(),
            check=False,
            timeout=600,
        )
        if done.returncode not in (0, 1) or not part.is_file():  # 1: issues found
            raise InputError(f"gosec exited {done.returncode}: {done.tail()}")
        data = _report(part)
        for name, errors in (data.get("Golang errors") or {}).items():
            merged["Golang errors"].setdefault(name, []).extend(errors)
        merged["Issues"] += data.get("Issues") or []
        part.unlink()
    atomic.write_json(report, merged)
    rec.add_output(report, "application/json")
    rec.details["gosec_coverage"] = coverage(into, module_of_file, merged["Golang errors"])
    return as_sarif(ctx, rec, tool, _findings(into, merged, set(files)))


def coverage(into: Path, module_of_file: dict[str, Module], errors: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """How gosec covered each file, decided per package: ``types``, or ``syntax`` when a file of the
    package imports third-party packages a wrapper module's go.mod requires. Anything else that
    kept a package from type-checking fails the gate."""
    broken: list[str] = []
    by_file: dict[str, list[dict[str, Any]]] = {}
    for name, found in errors.items():
        relative = _relative(into, Path(name)) if name and Path(name).is_absolute() else None
        if relative in module_of_file:
            by_file[relative] = found
        else:  # the go command's own, a package directory, a file not in scope: nothing to attribute it to
            broken += [f"{name or '(package)'}: {' '.join(str(e.get('error', '?')).split())}" for e in found[:1]]
    untyped: dict[str, list[str]] = {}  # package directory -> the third-party imports left unresolved
    for file, module in module_of_file.items():
        found = by_file.get(file) or []
        unresolved = sorted({m.group(1) for e in found if (m := UNRESOLVED.search(str(e.get("error", ""))))})
        stray = [path for path in unresolved if not (third_party(path) and module.required(path))]
        if not found:
            continue
        if stray:
            broken.append(f"{file}: imports {', '.join(stray)}, which its go.mod does not require")
        elif not unresolved:
            broken.append(f"{file}:{found[0].get('line', '?')}: {found[0].get('error', '?')}")
        elif not module.wrapper:
            broken.append(
                f"{file}: imports third-party packages ({', '.join(unresolved)}); only the wrapper modules under "
                f"{WRAPPERS}/ are scanned without their dependencies (ADR 0021)"
            )
        else:
            untyped.setdefault(str(PurePosixPath(file).parent), []).extend(unresolved)
    if broken:
        raise InputError(
            f"gosec could not type-check {len(broken)} file(s), the gate cannot pass them: {'; '.join(broken[:5])}"
        )
    shown = {}
    for file in sorted(module_of_file):
        imports = untyped.get(str(PurePosixPath(file).parent))
        shown[file] = (
            f"syntax (third-party imports not compiled: {', '.join(sorted(set(imports)))})" if imports else "types"
        )
    return shown


def _json_stream(text: str) -> list[dict[str, Any]]:
    """The objects of a concatenated JSON stream (`go list -json`)."""
    decoder, objects, index = json.JSONDecoder(), [], 0
    while (index := len(text) - len(text[index:].lstrip())) < len(text):
        value, index = decoder.raw_decode(text, index)
        if isinstance(value, dict):
            objects.append(value)
    return objects


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
