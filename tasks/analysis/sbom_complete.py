"""Complete what syft cannot know, from data the project has — never invented.

syft describes what it finds; a buyer's or regulator's minimum elements (NTIA 2021, CISA
2024, BSI TR-03183-2) also ask who produced the SBOM, who supplies each component, what the
root component is and which lifecycle phase the SBOM describes. This module adds exactly that:

- the producing organisation (security-policy.yaml ``gates.sbom.producer``) as an SBOM creator
  and as the root component's supplier; the root's version and purl stay the ones syft took
  from the artifact's digest;
- each component's supplier from its own package metadata where syft left it empty: the
  Debian ``Maintainer`` of the image's dpkg status, a Python distribution's
  ``Author``/``Author-email`` (both read from syft's native JSON, which carries them);
- the SBOM type (lifecycle phase ``build``).

A value truly unknown stays NOASSERTION and is counted in the returned summary. SPDX is
edited through spdx-tools (parsed, changed, validated against SPDX 2.3, written); CycloneDX
is changed in place and validated against the CycloneDX 1.6 JSON schema that
cyclonedx-python-lib ships.
"""

from __future__ import annotations

import base64
import json
import tempfile
from dataclasses import dataclass, field, replace
from email.parser import HeaderParser
from email.utils import getaddresses
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_tools.spdx.model.actor import Actor, ActorType
from spdx_tools.spdx.model.package import ExternalPackageRef, ExternalPackageRefCategory
from spdx_tools.spdx.model.spdx_no_assertion import SpdxNoAssertion
from spdx_tools.spdx.parser.jsonlikedict.license_expression_parser import LicenseExpressionParser
from spdx_tools.spdx.parser.parse_anything import parse_file
from spdx_tools.spdx.writer.write_anything import write_file

from tasks.analysis.sbom_subject import Root
from tasks.core import atomic
from tasks.core.errors import InputError, PolicyError
from tasks.policy.security_policy import Policy

OCI_LICENSES_LABEL = "org.opencontainers.image.licenses"
LIFECYCLE = "build"  # CISA "Types of SBOM" (2023): made while building the artifact it describes
SPDX_SBOM_TYPE_NOTE = f"SBOM type (CISA, 2023): {LIFECYCLE}. Completed by secure-iot from package metadata."


@dataclass(frozen=True)
class Producer:
    """Who produces the artifact and its SBOM (security-policy.yaml gates.sbom.producer)."""

    organization: str
    email: str = ""
    url: str = ""  # where the producer is reached (https)

    @classmethod
    def from_policy(cls, policy: Policy) -> Producer:
        spec = policy.gate("sbom").settings.get("producer")
        if not isinstance(spec, dict) or not spec.get("organization"):
            raise PolicyError(f"{policy.path}: gates.sbom.producer.organization is missing (who produces the SBOM)")
        return cls(str(spec["organization"]), str(spec.get("email", "")), str(spec.get("url", "")))

    @property
    def contact(self) -> str:
        """An e-mail address or URL (BSI TR-03183-2: the SBOM creator's); empty when none is known."""
        return self.email or self.url


@dataclass(frozen=True)
class Supplier:
    """A supplier as a package's own metadata names it."""

    name: str
    email: str = ""
    url: str = ""  # where the project says it is reached (a Python distribution's Project-URL)

    @property
    def contact(self) -> str:
        return self.email or self.url

    @property
    def spdx(self) -> str:
        return f"Organization: {self.name}" + (f" ({self.email})" if self.email else "")


def declared_license(native: Path) -> str:
    """The licence the scanned image declares in its ``org.opencontainers.image.licenses`` label."""
    try:
        doc = json.loads(native.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{native}: unreadable syft JSON ({exc})") from exc
    labels = (doc.get("source") or {}).get("metadata", {}).get("labels") or {}
    return str(labels.get(OCI_LICENSES_LABEL, "")).strip()


@dataclass
class Completion:
    """What was added and what stays unknown, per document."""

    suppliers_added: int = 0
    still_unknown: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        unknown = sorted(set(self.still_unknown))
        return {"suppliers_added": self.suppliers_added, "suppliers_unknown": len(unknown), "examples": unknown[:5]}


def _supplier_from(field_text: str) -> Supplier | None:
    """``Name <mail>, Other <mail2>`` → the first named party; None when the field is empty."""
    parties = [(n.strip(), e.strip()) for n, e in getaddresses([field_text]) if n.strip() or e.strip()]
    if not parties:
        return None
    name, email = parties[0]
    # SPDX actor names may not carry parentheses (they delimit the e-mail).
    return Supplier((name or email).replace("(", "[").replace(")", "]"), email if "@" in email else "")


def _party(fields: dict[str, str], name_key: str, email_key: str) -> str:
    """``Name <mail>`` from a name field and an e-mail field (which may already carry the name)."""
    name, email = fields.get(name_key, "").strip(), fields.get(email_key, "").strip()
    if name and email and "<" not in email:
        return f"{name} <{email}>"
    return email or name


def _core_metadata(text: str) -> dict[str, str]:
    """The header fields of a Python distribution's METADATA file (core metadata); ``url`` is
    the project's own contact URL (``Project-URL: Contact, …``), else its ``Home-page`` or
    ``Project-URL: Homepage, …``."""
    headers = HeaderParser().parsestr(text, headersonly=True)
    fields = {k: str(v) for k, v in headers.items()}
    labelled: dict[str, str] = {}
    for value in headers.get_all("Project-URL") or []:
        label, _, url = str(value).partition(",")
        labelled.setdefault(label.strip().lower(), url.strip())
    urls = (labelled.get("contact"), fields.get("Home-page"), labelled.get("homepage"))
    fields["url"] = next((u for u in urls if u and u.startswith("https://")), "")
    return fields


def suppliers(native: Path) -> dict[str, Supplier]:
    """syft artifact id → supplier, from syft's native JSON: a Debian package's Maintainer
    (dpkg status), a Python distribution's Author or, failing that, Maintainer (its METADATA,
    whose text syft carries when SYFT_FILE_CONTENT_GLOBS selects it)."""
    try:
        doc = json.loads(native.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{native}: unreadable syft JSON ({exc})") from exc
    contents = {
        f["location"]["path"]: base64.b64decode(f["contents"]).decode("utf-8", "replace")
        for f in doc.get("files") or []
        if f.get("contents") and f.get("location", {}).get("path")
    }
    out: dict[str, Supplier] = {}
    for art in doc.get("artifacts", []):
        meta = {k: str(v) for k, v in (art.get("metadata") or {}).items() if isinstance(v, str)}
        core = next(
            (_core_metadata(contents[loc["path"]]) for loc in art.get("locations", []) if loc.get("path") in contents),
            {},
        )
        text = (
            meta.get("maintainer")  # Debian
            or _party(meta, "author", "authorEmail")
            or _party(core, "Author", "Author-email")
            or _party(core, "Maintainer", "Maintainer-email")
        )
        if text and (supplier := _supplier_from(text)) is not None:
            out[str(art["id"])] = replace(supplier, url=core.get("url", ""))
    return out


def _blank(value: object) -> bool:
    return value is None or isinstance(value, SpdxNoAssertion) or not str(value).strip()


def complete_spdx(path: Path, producer: Producer, by_id: dict[str, Supplier], root: Root) -> Completion:
    """Producer as creator and root supplier, suppliers from metadata, SBOM type; validated on write."""
    try:
        doc = parse_file(str(path))
    except Exception as exc:  # spdx-tools raises its own parsing errors and plain ValueErrors
        raise InputError(f"{path}: spdx-tools cannot parse it: {exc}") from exc
    info = doc.creation_info
    org = Actor(ActorType.ORGANIZATION, producer.organization, producer.email or None)
    if org not in info.creators:
        info.creators.insert(0, org)
    info.creator_comment = SPDX_SBOM_TYPE_NOTE
    roots = {r.related_spdx_element_id for r in doc.relationships if r.spdx_element_id == info.spdx_id}
    done = Completion()
    for package in doc.packages:
        if package.spdx_id in roots:
            _complete_spdx_root(package, root)
        if not _blank(package.supplier):
            continue
        if package.spdx_id in roots:
            package.supplier = org
        elif (found := by_id.get(package.spdx_id.rsplit("-", 1)[-1])) is not None:
            package.supplier = Actor(ActorType.ORGANIZATION, found.name, found.email or None)
        else:
            done.still_unknown.append(package.name)
            continue
        done.suppliers_added += 1
    with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
        tmp = Path(scratch) / path.name
        try:
            write_file(doc, str(tmp), validate=True)
        except ValueError as exc:
            raise InputError(f"{path}: the completed document is not valid SPDX 2.3: {exc}") from exc
        atomic.write_bytes(path, tmp.read_bytes())
    return done


def _complete_spdx_root(package: Any, root: Root) -> None:
    if root.version and _blank(package.version):
        package.version = root.version
    if root.license and _blank(package.license_declared):
        package.license_declared = LicenseExpressionParser().parse_license_expression(root.license)
    if root.purl:
        package.external_references = [r for r in package.external_references if r.reference_type != "purl"]
        package.external_references.append(
            ExternalPackageRef(ExternalPackageRefCategory.PACKAGE_MANAGER, "purl", root.purl)
        )


def complete_cyclonedx(path: Path, producer: Producer, by_id: dict[str, Supplier], root: Root) -> Completion:
    """The same completion for CycloneDX 1.6, then a strict check against its JSON schema."""
    bom: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    meta = bom.setdefault("metadata", {})
    org: dict[str, Any] = {"name": producer.organization}
    if producer.email:
        org["contact"] = [{"email": producer.email}]
    meta["manufacturer"] = org
    meta["supplier"] = org
    meta["lifecycles"] = [{"phase": LIFECYCLE}]
    described = meta.get("component")
    if isinstance(described, dict):
        described["supplier"] = org
        if root.purl:
            described["purl"] = root.purl
        if root.version and not described.get("version"):
            described["version"] = root.version
        if root.license and not described.get("licenses"):
            described["licenses"] = [{"expression": root.license}]
    done = Completion()
    for comp in bom.get("components", []):
        if comp.get("supplier") or comp.get("type") == "file":
            continue
        package_id = parse_qs(urlsplit(str(comp.get("bom-ref", ""))).query).get("package-id", [""])[0]
        if (found := by_id.get(package_id)) is None:
            done.still_unknown.append(str(comp.get("name", "")))
            continue
        comp["supplier"] = {"name": found.name, **({"contact": [{"email": found.email}]} if "@" in found.email else {})}
        done.suppliers_added += 1
    text = json.dumps(bom, indent=2) + "\n"
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        raise InputError(f"{path}: the completed document is not valid CycloneDX 1.6: {error}")
    atomic.write_text(path, text)
    return done
