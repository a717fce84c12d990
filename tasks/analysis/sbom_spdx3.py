"""The SPDX 3.0.1 JSON-LD twin of a completed SPDX 2.3 SBOM: what BSI TR-03183-2 v2.1 reads.

sbomcheck checks BSI TR-03183-2 on SPDX 3.0.1 only, and syft 1.18 writes SPDX 2.3. This module
writes the SPDX 3.0.1 document with spdx-python-model (the bindings sbomcheck itself reads
with; they type-check every property on assignment) from data the pipeline already holds:

- the completed SPDX 2.3 document (sbom_complete): components, versions, purls, suppliers,
  declared licences, the relationships syft found (the root ``contains`` each component,
  ``DEPENDENCY_OF`` between packages);
- the producer and its contact (security-policy.yaml ``gates.sbom.producer``) as the SBOM's
  creator and the root component's originator;
- the build's deployables manifest (container.deployables): each component's distribution
  file, by name and SHA-512, as ``hasDistributionArtifact``;
- the copyright notices of each Debian package's ``/usr/share/doc/<pkg>/copyright`` (syft's
  native JSON carries the file), as ``software_copyrightText``.

BSI's "distribution licence" is the licence under which the producer distributes a component
(sbomcheck reads ``hasConcludedLicense``). With ``distribution_licence: declared`` the policy
states that components are redistributed unmodified under the licence they declare; without
it none is claimed. What the data does not give stays out and is counted in the summary.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from spdx_python_model import v3_0_1 as spdx3

from tasks.analysis.sbom_complete import Producer, Supplier
from tasks.analysis.sbom_subject import RootArtifact
from tasks.container.deployables import DEB, WHEEL, Deployable, normalise
from tasks.core import atomic
from tasks.core.errors import InputError

_ACTOR = re.compile(r"^(?P<kind>Organization|Person|Tool):\s*(?P<name>[^()]*?)\s*(?:\((?P<email>[^()]*)\))?\s*$")
_BLANK = {"", "NOASSERTION", "NONE"}
COPYRIGHT_DIR = "/usr/share/doc/"


@dataclass
class Spdx3Summary:
    """What the SPDX 3 document could carry, counted per element."""

    components: int = 0
    sha512: int = 0
    no_deployable: list[str] = field(default_factory=list)
    copyright: int = 0
    distribution_licences: int = 0
    no_licence: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, object]:
        return {
            "components": self.components,
            "sha512": self.sha512,
            "without_deployable": len(self.no_deployable),
            "without_deployable_examples": sorted(set(self.no_deployable))[:5],
            "copyright_texts": self.copyright,
            "distribution_licences": self.distribution_licences,
            "without_licence": len(self.no_licence),
            "without_licence_examples": sorted(set(self.no_licence))[:5],
        }


def copyright_notices(native: Path) -> dict[str, str]:
    """Debian package name → the copyright notices of its copyright file (DEP-5 ``Copyright:``
    fields; in a free-form file, the lines that begin with "Copyright")."""
    try:
        doc = json.loads(native.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{native}: unreadable syft JSON ({exc})") from exc
    out: dict[str, str] = {}
    for entry in doc.get("files") or []:
        path = str(entry.get("location", {}).get("path", ""))
        if not (path.startswith(COPYRIGHT_DIR) and path.endswith("/copyright") and entry.get("contents")):
            continue
        text = base64.b64decode(entry["contents"]).decode("utf-8", "replace")
        package = path[len(COPYRIGHT_DIR) :].split("/", 1)[0]
        if notices := _notices(text):
            out[package] = "\n".join(notices)
    return out


def _notices(text: str) -> list[str]:
    lines = text.splitlines()
    if lines and lines[0].lower().startswith("format:"):  # DEP-5: Copyright fields and their continuations
        found: list[str] = []
        inside = False
        for line in lines:
            if line.lower().startswith("copyright:"):
                inside = True
                value = line.split(":", 1)[1].strip()
            elif inside and line[:1] in (" ", "\t") and line.strip() != ".":
                value = line.strip()
            else:
                inside = False
                continue
            if value and value not in found:
                found.append(value)
        return found
    return list(dict.fromkeys(s.strip() for s in lines if s.strip().lower().startswith(("copyright", "(c)", "©"))))


def _ecosystem(package: dict[str, Any]) -> tuple[str, str]:
    """(ecosystem, name) of an SPDX 2.3 package by its purl: deb, wheel, or ("", name)."""
    for ref in package.get("externalRefs") or []:
        locator = str(ref.get("referenceLocator", ""))
        if ref.get("referenceType") != "purl":
            continue
        if locator.startswith("pkg:deb/"):
            return DEB, str(package.get("name", ""))
        if locator.startswith("pkg:pypi/"):
            return WHEEL, normalise(str(package.get("name", "")))
    return "", str(package.get("name", ""))


def _actor(text: str) -> tuple[str, str, str] | None:
    match = _ACTOR.match(text or "")
    if match is None:
        return None
    return match["kind"], match["name"], (match["email"] or "").strip()


class _Writer:
    """Builds one SHACLObjectSet; every element shares one CreationInfo."""

    def __init__(self, namespace: str, created: dt.datetime, producer: Producer) -> None:
        self.namespace = namespace.rstrip("/#")
        self.count = 0
        self.objects = spdx3.SHACLObjectSet()
        self.info = spdx3.CreationInfo()
        self.info.specVersion = "3.0.1"
        self.info.created = created
        self.producer = self.agent("Organization", producer.organization, producer.contact)
        self.info.createdBy = [self.producer]
        self.agents: dict[tuple[str, str, str], Any] = {}

    def iri(self, local: str) -> str:
        return f"{self.namespace}#{re.sub(r'[^A-Za-z0-9.+-]', '-', local)}"

    def add(self, obj: Any, local: str) -> Any:
        obj._id = self.iri(local)
        obj.creationInfo = self.info
        return self.objects.add(obj)

    def agent(self, kind: str, name: str, contact: str) -> Any:
        obj = spdx3.Person() if kind == "Person" else spdx3.Organization()
        obj.name = name
        if contact:
            ident = spdx3.ExternalIdentifier()
            email = "@" in contact and not contact.startswith(("http://", "https://"))
            ident.externalIdentifierType = (
                spdx3.ExternalIdentifierType.email if email else spdx3.ExternalIdentifierType.urlScheme
            )
            ident.identifier = contact
            obj.externalIdentifier = [ident]
        # numbered: two names that differ only in characters an IRI fragment drops stay two agents
        self.count += 1
        return self.add(obj, f"{kind}-{self.count}-{name}")

    def supplier(self, text: str, known: Supplier | None) -> Any | None:
        """The supplier the SPDX 2.3 document names, with the contact the same package's metadata
        gives when the document has no e-mail (a Python project's Contact or Home-page URL)."""
        parsed = _actor(text)
        if parsed is None or parsed[0] == "Tool" or not parsed[1]:
            return None
        if not parsed[2] and known is not None and known.contact:
            parsed = (parsed[0], parsed[1], known.contact)
        if parsed not in self.agents:
            self.agents[parsed] = self.agent(*parsed)
        return self.agents[parsed]

    def licence(self, expression: str, local: str) -> Any:
        obj = spdx3.simplelicensing_LicenseExpression()
        obj.simplelicensing_licenseExpression = expression
        return self.add(obj, local)

    def relate(self, source: Any, kind: Any, targets: list[Any], local: str, completeness: Any = None) -> None:
        rel = spdx3.Relationship()
        rel.from_ = source
        rel.relationshipType = kind
        rel.to = targets
        if completeness is not None:
            rel.completeness = completeness
        self.add(rel, local)


def write_spdx3(
    spdx23: Path,
    native: Path,
    out: Path,
    producer: Producer,
    deployables: dict[tuple[str, str, str], Deployable],
    by_id: dict[str, Supplier],
    root_artifact: RootArtifact | None = None,
    *,
    distribution_licence: str = "",
) -> Spdx3Summary:
    """Write the SPDX 3.0.1 JSON-LD document for the completed SPDX 2.3 document ``spdx23``."""
    try:
        doc = json.loads(spdx23.read_text(encoding="utf-8"))
        created = dt.datetime.fromisoformat(doc["creationInfo"]["created"].replace("Z", "+00:00"))
        namespace = str(doc["documentNamespace"])
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{spdx23}: not a completed SPDX 2.3 document ({exc})") from exc
    notices = copyright_notices(native)
    w = _Writer(namespace, created, producer)
    tool = spdx3.Tool()
    tool.name = next((c.split(":", 1)[1].strip() for c in doc["creationInfo"]["creators"] if c.startswith("Tool:")), "")
    w.info.createdUsing = [w.add(tool, f"Tool-{tool.name}")] if tool.name else []
    roots = {r["relatedSpdxElement"] for r in doc.get("relationships", []) if r["relationshipType"] == "DESCRIBES"}
    done = Spdx3Summary()
    packages: dict[str, Any] = {}
    for pkg in doc.get("packages", []):
        sid = str(pkg["SPDXID"])
        is_root = sid in roots
        packages[sid] = element = w.add(spdx3.software_Package(), sid)
        element.name = str(pkg.get("name", ""))
        if (version := str(pkg.get("versionInfo", ""))) not in _BLANK:
            element.software_packageVersion = version
        purls = [r["referenceLocator"] for r in pkg.get("externalRefs") or [] if r.get("referenceType") == "purl"]
        if purls:
            element.software_packageUrl = purls[0]
            ident = spdx3.ExternalIdentifier()
            ident.externalIdentifierType = spdx3.ExternalIdentifierType.packageUrl
            ident.identifier = purls[0]
            element.externalIdentifier = [ident]
        known = by_id.get(sid.rsplit("-", 1)[-1])  # syft's SPDX ids end with its artifact id
        supplier = w.producer if is_root else w.supplier(str(pkg.get("supplier", "")), known)
        if supplier is not None:
            element.suppliedBy = supplier
            element.originatedBy = [supplier]
        element.software_primaryPurpose = (
            spdx3.software_SoftwarePurpose.container if is_root else spdx3.software_SoftwarePurpose.library
        )
        ecosystem, name = _ecosystem(pkg)
        if (text := notices.get(name) if ecosystem == DEB else None) is not None:
            element.software_copyrightText = text
            done.copyright += 1
        declared = str(pkg.get("licenseDeclared", ""))
        if declared not in _BLANK:
            w.relate(
                element,
                spdx3.RelationshipType.hasDeclaredLicense,
                [w.licence(declared, f"{sid}-declared")],
                f"{sid}-hasDeclaredLicense",
            )
            if distribution_licence == "declared":
                licence = w.licence(declared, f"{sid}-distribution")
                w.relate(element, spdx3.RelationshipType.hasConcludedLicense, [licence], f"{sid}-hasConcludedLicense")
                done.distribution_licences += 1
        else:
            done.no_licence.append(element.name)
        done.components += 1
        found = root_artifact if is_root else deployables.get((ecosystem, name, unquote(version)))
        if found is None:
            done.no_deployable.append(element.name)
            continue
        artifact = w.add(spdx3.software_File(), f"{sid}-deployable")
        if isinstance(found, RootArtifact):
            artifact.name, sha512, purpose = found.filename, found.sha512, found.purpose
        else:
            artifact.name, sha512, purpose = found.filename, found.sha512, "container"
        digest = spdx3.Hash()
        digest.algorithm = spdx3.HashAlgorithm.sha512
        digest.hashValue = sha512
        artifact.verifiedUsing = [digest]
        artifact.software_primaryPurpose = spdx3.software_SoftwarePurpose.archive
        # BSI TR-03183-2 "structured" (its contents are described): 'container' or 'firmware'
        artifact.software_additionalPurpose = [getattr(spdx3.software_SoftwarePurpose, purpose)]
        w.relate(element, spdx3.RelationshipType.hasDistributionArtifact, [artifact], f"{sid}-hasDistributionArtifact")
        done.sha512 += 1
    _relationships(w, doc, packages, roots)
    sbom = w.add(spdx3.software_Sbom(), "SBOM")
    sbom.software_sbomType = [spdx3.software_SbomType.build]
    sbom.rootElement = [packages[r] for r in sorted(roots) if r in packages]
    sbom.element = [o for o in w.objects.foreach() if isinstance(o, spdx3.Element) and o is not sbom]
    document = w.add(spdx3.SpdxDocument(), "DOCUMENT")
    document.name = str(doc.get("name", ""))
    document.rootElement = [sbom]
    document.element = [sbom]
    document.profileConformance = [
        spdx3.ProfileIdentifierType.core,
        spdx3.ProfileIdentifierType.software,
        spdx3.ProfileIdentifierType.simpleLicensing,
    ]
    missing = w.objects.link()
    if missing:
        raise InputError(f"{out.name}: SPDX 3 elements refer to ids that are not in it: {sorted(missing)[:3]}")
    tmp = out.with_name(out.name + ".tmp")
    with tmp.open("wb") as handle:
        spdx3.JSONLDSerializer().write(w.objects, handle, indent=2)
    atomic.write_bytes(out, tmp.read_bytes())
    tmp.unlink()
    return done


def _relationships(w: _Writer, doc: dict[str, Any], packages: dict[str, Any], roots: set[str]) -> None:
    """The root ``contains`` each component syft catalogued (complete: every package in the
    package databases syft read); ``DEPENDENCY_OF`` edges between packages become ``dependsOn``
    (no assertion about completeness: syft records the dependencies it could resolve)."""
    contains: dict[str, list[Any]] = {}
    depends: dict[str, list[Any]] = {}
    for rel in doc.get("relationships", []):
        a, b, kind = rel["spdxElementId"], rel["relatedSpdxElement"], rel["relationshipType"]
        if a not in packages or b not in packages:
            continue
        if kind == "CONTAINS":
            contains.setdefault(a, []).append(packages[b])
        elif kind == "DEPENDENCY_OF":
            depends.setdefault(b, []).append(packages[a])
        elif kind == "DEPENDS_ON":
            depends.setdefault(a, []).append(packages[b])
    for root in roots & packages.keys():
        members = contains.get(root) or [p for sid, p in packages.items() if sid != root]
        if members:
            w.relate(
                packages[root],
                spdx3.RelationshipType.contains,
                members,
                f"{root}-contains",
                spdx3.RelationshipCompleteness.complete,
            )
    for sid, targets in sorted(depends.items()):
        w.relate(
            packages[sid],
            spdx3.RelationshipType.dependsOn,
            targets,
            f"{sid}-dependsOn",
            spdx3.RelationshipCompleteness.noAssertion,
        )
