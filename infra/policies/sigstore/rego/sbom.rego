# SPDX SBOM attestation policy (same single source as provenance.rego; see there).
# input: the in-toto Statement whose predicate is the SPDX 2.3 JSON document.
package sigstore

import rego.v1

default isCompliant := false

isCompliant if count(violations) == 0

violations contains msg if {
	input.predicateType != "https://spdx.dev/Document"
	msg := sprintf("sbom: predicateType %v is not https://spdx.dev/Document", [input.predicateType])
}

violations contains msg if {
	object.get(input, ["predicate", "spdxVersion"], "") != "SPDX-2.3"
	msg := sprintf("sbom: spdxVersion %v is not SPDX-2.3", [object.get(input, ["predicate", "spdxVersion"], "missing")])
}

violations contains "sbom: the SPDX document lists no packages" if {
	count(object.get(input, ["predicate", "packages"], [])) == 0
}
