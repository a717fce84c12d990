"""security-policy.yaml: the project's written definition of secure and threat tolerance.

Per-gate severity thresholds, gate settings, and waivers. The file is validated against
schemas/security-policy.schema.json; an error names the exact field. A waiver without a
justification, past its expiry date, or naming a rule its gate requires (gates.compliance.
required_rules), is an error — never a pass.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fnmatch
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tasks.core import atomic
from tasks.core.cache import cache_root
from tasks.core.errors import PolicyError
from tasks.core.repository import CHECKOUT
from tasks.policy.findings import Finding, Severity

SCHEMA_PATH = CHECKOUT / "schemas" / "security-policy.schema.json"
# The SCAP Security Guide's XCCDF rule ids begin with this. A compliance waiver names a rule by
# its full id; gates.compliance.required_rules and the OpenSCAP predicate's results without it.
SSG_RULE_PREFIX = "xccdf_org.ssgproject.content_rule_"


@dataclass(frozen=True)
class Waiver:
    """A reviewed, owned, expiring exception for one rule or vulnerability id."""

    id: str
    gate: str
    justification: str
    owner: str
    expires: dt.date
    path: str | None = None
    package: str | None = None

    def covers_path(self, gate: str, path: str) -> bool:
        """This waiver is for ``gate`` and its scope's path glob (if any) matches ``path``."""
        return gate == self.gate and (self.path is None or fnmatch.fnmatch(path, self.path))

    def covers(self, gate: str, finding: Finding) -> bool:
        if self.id not in finding.ids() or not self.covers_path(gate, finding.path):
            return False
        # fnmatch too: an image component is named with its registry (host:port varies by run)
        return self.package is None or fnmatch.fnmatchcase(finding.package, self.package)


@dataclass(frozen=True)
class Gate:
    name: str
    fail_on: Severity
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Policy:
    path: Path
    gates: Mapping[str, Gate]
    waivers: Sequence[Waiver]

    def gate(self, name: str) -> Gate:
        try:
            return self.gates[name]
        except KeyError:
            raise PolicyError(f"{self.path}: gates.{name} is missing (no threshold for this gate)") from None

    def waiver_for(self, gate: str, finding: Finding) -> Waiver | None:
        return next((w for w in self.waivers if w.covers(gate, finding)), None)


def _plain(obj: Any) -> Any:
    """YAML dates become ISO strings so that the JSON Schema sees what the user wrote."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    if isinstance(obj, dt.date):
        return obj.isoformat()
    return obj


def _field(path: Sequence[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _validated_marker(schema_text: str, data: Any) -> Path:
    """Content-addressed: this exact document (canonical JSON) passed this exact schema."""
    digest = hashlib.sha256(schema_text.encode() + b"\0" + json.dumps(data, sort_keys=True).encode()).hexdigest()
    return cache_root() / "validated" / "security-policy" / digest


def validate(path: Path, data: Any) -> None:
    """``data`` against schemas/security-policy.schema.json; PolicyError names the field.

    A document that passed is remembered by the digest of its canonical JSON and of the schema:
    the same bytes pass again without importing jsonschema, whose format checkers (lark grammars
    compiled at import) cost most of a no-op run's second. Any change is validated afresh."""
    schema_text = SCHEMA_PATH.read_text(encoding="utf-8")
    marker = _validated_marker(schema_text, data)
    if marker.is_file():
        return
    import jsonschema  # deferred: see above

    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(json.loads(schema_text)).iter_errors(data))
    if error is not None:
        raise PolicyError(f"{path}: {_field(error.absolute_path)}: {error.message}")
    with contextlib.suppress(OSError):  # a read-only cache only costs the import next time
        atomic.write_text(marker, "valid\n")


def load(path: Path, *, today: dt.date | None = None) -> Policy:
    """Load and validate the policy; raise PolicyError naming the file and field."""
    today = today or dt.datetime.now(dt.UTC).date()
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PolicyError(f"{path}: security policy not found (copy security-policy.yaml from the repo)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: unreadable security policy ({exc})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise PolicyError(f"{path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    data = _plain(raw)
    validate(path, data)

    gates = {
        name: Gate(name, Severity.parse(spec["fail_on"]), {k: v for k, v in spec.items() if k != "fail_on"})
        for name, spec in data["gates"].items()
    }
    waivers = []
    for i, spec in enumerate(data.get("waivers", [])):
        where = f"{path}: waivers[{i}] ({spec['id']})"
        if spec["gate"] not in gates:
            raise PolicyError(f"{where}: gate '{spec['gate']}' is not defined under gates")
        if not spec["justification"].strip():
            raise PolicyError(f"{where}: justification is empty; say why the risk is accepted")
        required = gates[spec["gate"]].settings.get("required_rules") or []
        if spec["id"].removeprefix(SSG_RULE_PREFIX) in required:
            raise PolicyError(
                f"{where}: gates.{spec['gate']}.required_rules names this rule, and a required rule is never "
                "waived; fix what fails, or take the rule out of required_rules in a reviewed change"
            )
        try:
            expires = dt.date.fromisoformat(spec["expires"])
        except ValueError:
            raise PolicyError(f"{where}: expires: {spec['expires']!r} is not a calendar date (YYYY-MM-DD)") from None
        if expires < today:
            raise PolicyError(
                f"{where}: expired on {expires.isoformat()}; review it and set a new expiry, or remove it"
            )
        waivers.append(
            Waiver(
                id=spec["id"],
                gate=spec["gate"],
                justification=spec["justification"],
                owner=spec["owner"],
                expires=expires,
                path=spec.get("scope", {}).get("path"),
                package=spec.get("scope", {}).get("package"),
            )
        )
    return Policy(path=path, gates=gates, waivers=tuple(waivers))
