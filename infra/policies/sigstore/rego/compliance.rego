# OpenSCAP compliance attestation policy (the project's own predicate type, documented in
# docs/compliance/openscap-result.md; same single source as the other modules). Every rule
# of params.required_rules (security-policy.yaml gates.compliance) must have been evaluated
# and passed, under the profile the policy names; every other rule that failed must be in
# the statement's `waived`, by a waiver not expired (as the compliance stage judged it). Time-dependent: the image's files do not
# change, but the benchmark and the rules do, and `nox -s rescan` re-evaluates it, so
# freshness.rego is appended and the newest statement decides.
package sigstore

import rego.v1

# A list of results, not a bare boolean: at admission the denial then names the failed rule.
isCompliant := [{"result": count(violations) == 0, "error": concat("; ", sort(violations))}]

# The evaluation's timestamp (freshness.rego orders statements by it).
issued := object.get(input, ["predicate", "metadata", "evaluationFinishedOn"], "")

results := object.get(input, ["predicate", "results"], null)

violations contains msg if {
	input.predicateType != "urn:secure-iot:attestation:openscap-result:v1"
	msg := sprintf("compliance: predicateType %v is not urn:secure-iot:attestation:openscap-result:v1", [
		input.predicateType,
	])
}

violations contains "compliance: the statement has no results object (not an OpenSCAP result)" if {
	not is_object(results)
}

violations contains msg if {
	profile := object.get(input, ["predicate", "benchmark", "profile"], "")
	profile != params.compliance_profile
	msg := sprintf("compliance: evaluated profile %v, the policy requires %v", [profile, params.compliance_profile])
}

violations contains msg if {
	is_object(results)
	some rule in params.required_rules
	result := object.get(results, rule, "notevaluated")
	result != "pass"
	msg := sprintf("compliance: required rule %v: %v", [rule, result])
}

waived := object.get(input, ["predicate", "waived"], {})

violations contains msg if {
	is_object(results)
	some rule, result in results
	result in {"fail", "error", "unknown"}
	not rule in params.required_rules # said above
	not rule in object.keys(waived)
	msg := sprintf("compliance: rule %v: %v, and no waiver in the statement accepts it", [rule, result])
}

violations contains msg if {
	is_object(waived)
	some rule, waiver in waived
	expires := object.get(waiver, "expires", "")
	not time.parse_ns("2006-01-02", expires) > time.now_ns() - 86400000000000 # valid through its day
	msg := sprintf("compliance: the waiver for %v expired (expires: %v)", [rule, expires])
}
