"""A small image SBOM as syft writes it (SPDX 2.3, CycloneDX 1.6, syft-json): three components,
one supplier syft filled, two only the package metadata names."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from tasks.analysis.sbom import Documents

REF = "127.0.0.1:5000/secure-iot-server@sha256:" + "a" * 64
ROOT_ID = "SPDXRef-DocumentRoot-Image-127.0.0.1-5000-secure-iot-server"
# (name, version, syft id, purl, supplier syft wrote or None, syft metadata)
PACKAGES = [
    ("base-files", "12.4", "1111111111111111", "pkg:deb/debian/base-files@12.4", "Person: Santiago Vila", {}),
    (
        "libc6",
        "2.36",
        "2222222222222222",
        "pkg:deb/debian/libc6@2.36",
        None,
        {"maintainer": "GNU Libc Maintainers <debian-glibc@lists.debian.org>"},
    ),
    ("click", "8.5.1", "3333333333333333", "pkg:pypi/click@8.5.1", None, {"author": "", "authorEmail": ""}),
]
CLICK_METADATA = "\n".join(
    (
        "Metadata-Version: 2.4",
        "Name: click",
        "Version: 8.5.1",
        "Maintainer-email: Pallets <contact@palletsprojects.com>",
    )
)


def write(out: Path) -> Documents:
    docs = Documents(out / "image.spdx.json", out / "image.cdx.json", out / "image.syft.json")
    spdx_packages = [
        {
            "name": REF.split("@")[0],
            "SPDXID": ROOT_ID,
            "versionInfo": REF.split("@")[1],
            "supplier": "NOASSERTION",
            "downloadLocation": "NOASSERTION",
            "filesAnalyzed": False,
            "licenseConcluded": "NOASSERTION",
            "licenseDeclared": "NOASSERTION",
            "copyrightText": "NOASSERTION",
            "primaryPackagePurpose": "CONTAINER",
        }
    ]
    for name, version, ident, purl, supplier, _ in PACKAGES:
        spdx_packages.append(
            {
                "name": name,
                "SPDXID": f"SPDXRef-Package-x-{name}-{ident}",
                "versionInfo": version,
                "supplier": supplier or "NOASSERTION",
                "downloadLocation": "NOASSERTION",
                "filesAnalyzed": False,
                "licenseConcluded": "NOASSERTION",
                "licenseDeclared": "NOASSERTION",
                "copyrightText": "NOASSERTION",
                "externalRefs": [
                    {"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl}
                ],
            }
        )
    spdx = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": REF.split("@")[0],
        "documentNamespace": "https://anchore.com/syft/image/test",
        "creationInfo": {
            "creators": ["Organization: Anchore, Inc", "Tool: syft-1.18.1"],
            "created": "2026-11-30T00:00:00Z",
        },
        "packages": spdx_packages,
        "relationships": [
            {"spdxElementId": "SPDXRef-DOCUMENT", "relatedSpdxElement": ROOT_ID, "relationshipType": "DESCRIBES"},
            *(
                {"spdxElementId": ROOT_ID, "relatedSpdxElement": p["SPDXID"], "relationshipType": "CONTAINS"}
                for p in spdx_packages[1:]
            ),
        ],
    }
    cdx = {
        "$schema": "http://cyclonedx.org/schema/bom-1.6.schema.json",
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "version": 1,
        "metadata": {"component": {"bom-ref": "root", "type": "container", "name": REF.split("@")[0]}},
        "components": [
            {"bom-ref": f"{purl}?package-id={ident}", "type": "library", "name": name, "version": version, "purl": purl}
            for name, version, ident, purl, _, _ in PACKAGES
        ],
    }
    native = {
        "source": {"metadata": {"labels": {"org.opencontainers.image.licenses": "Apache-2.0"}}},
        "artifacts": [
            {
                "id": ident,
                "name": name,
                "version": version,
                "metadata": meta,
                "locations": [{"path": f"/site-packages/{name}.dist-info/METADATA"}],
            }
            for name, version, ident, _, _, meta in PACKAGES
        ],
        "files": [
            {
                "location": {"path": "/site-packages/click.dist-info/METADATA"},
                "contents": base64.b64encode(CLICK_METADATA.encode()).decode(),
            }
        ],
    }
    for path, doc in ((docs.spdx, spdx), (docs.cyclonedx, cdx), (docs.native, native)):
        path.write_text(json.dumps(doc), encoding="utf-8")
    return docs
