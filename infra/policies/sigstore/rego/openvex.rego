# OpenVEX attestation policy (same single source as provenance.rego; time-dependent, so
# tasks/policy/rego.py appends freshness.rego). input: the in-toto Statement whose predicate
# is the OpenVEX document the scan applied.
package sigstore

import rego.v1

default isCompliant := false

isCompliant if count(violations) == 0

issued := object.get(input, ["predicate", "timestamp"], "")

violations contains msg if {
	input.predicateType != "https://openvex.dev/ns"
	msg := sprintf("openvex: predicateType %v is not https://openvex.dev/ns", [input.predicateType])
}

# OpenVEX: a not_affected statement carries a justification or an impact statement.
violations contains msg if {
	some s in object.get(input, ["predicate", "statements"], [])
	s.status == "not_affected"
	object.get(s, "justification", "") == ""
	object.get(s, "impact_statement", "") == ""
	msg := sprintf("openvex: %v is not_affected without a justification", [object.get(s, ["vulnerability", "name"], "?")])
}
