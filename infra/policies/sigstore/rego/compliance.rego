# OpenSCAP compliance attestation policy (the project's own predicate type, documented in
# docs/compliance/openscap-result.md; same single source as the other modules). Every rule
# of params.required_rules (security-policy.yaml gates.compliance) must have been evaluated
# and passed, under the profile the policy names; every other rule that failed must be in
# the statement's `waived`, by a well-formed waiver that security-policy.yaml holds for the
# image (params.compliance_waivers) and whose expiry, the policy's, has not passed.
# Time-dependent: the image's files do not change, but the benchmark and the rules do, and
# `nox -s rescan` re-evaluates it, so freshness.rego is appended and the newest statement decides.
package sigstore

import rego.v1

# A list of results, not a bare boolean: at admission the denial then names the failed rule.
isCompliant := [{"result": count(violations) == 0, "error": concat("; ", sort(violations))}]

# The evaluation's timestamp (freshness.rego orders statements by it).
issued := object.get(input, ["predicate", "metadata", "evaluationFinishedOn"], "")

results := object.get(input, ["predicate", "results"], null)

# Fail closed throughout: in OPA a builtin that errors (object.keys of a list, time.parse_ns of
# "2099-13-40" or of a date past 2262) leaves its rule body undefined, so a check written as
# `not <builtin …>` inside a violation would silently yield no violation. Every such call sits
# in a helper rule, whose undefinedness `not` turns into a violation, and messages are built by
# helpers that cannot error.
waived := object.get(input, ["predicate", "waived"], {})

# The statement's waivers (rule -> waiver); a `waived` that is not an object waives nothing, and says so.
default statement_waivers := {}

statement_waivers := waived if is_object(waived)

# Failing rules outside required_rules (those are said below): each needs a waiver.
failing contains rule if {
	is_object(results)
	some rule, result in results
	result in {"fail", "error", "unknown"}
	not rule in params.required_rules
}

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

violations contains msg if {
	not is_object(waived)
	msg := sprintf("compliance: the statement's waived must be an object (rule -> waiver), not %v", [type_name(waived)])
}

violations contains msg if {
	some rule in failing
	not rule in object.keys(statement_waivers)
	msg := sprintf("compliance: rule %v: %v, and no waiver in the statement accepts it", [rule, results[rule]])
}

# The statement's waiver must be one security-policy.yaml holds for the image, for this rule
# (params.compliance_waivers: rule -> the waiver's full id and expiry), judged by the policy's
# expiry: a waiver the policy drops or lets lapse no longer counts, whatever the signed statement says.
violations contains msg if {
	some rule in failing
	waiver := statement_waivers[rule]
	not policy_expiry(rule, waiver)
	msg := sprintf(
		"compliance: rule %v: %v, waived by the statement as %v, a waiver security-policy.yaml does not hold for the image",
		[rule, results[rule], waiver_name(waiver)],
	)
}

violations contains msg if {
	some rule in failing
	expires := policy_expiry(rule, statement_waivers[rule])
	not current({"expires": expires})
	msg := sprintf("compliance: rule %v: %v, and the policy's waiver %v expired (expires: %v)", [
		rule, results[rule], params.compliance_waivers[rule].waiver, expires,
	])
}

# And every waiver the statement carries is well-formed and unexpired by its own date, as the
# compliance stage signed it.
violations contains msg if {
	some rule, waiver in statement_waivers
	not current(waiver)
	msg := sprintf("compliance: the waiver for %v %v", [rule, lapse(waiver)])
}

policy_expiry(rule, waiver) := held.expires if {
	is_object(waiver)
	held := params.compliance_waivers[rule]
	waiver.waiver == held.waiver
}

# A waiver object whose expires is a date (YYYY-MM-DD) not yet past: valid through its day, UTC,
# as in the policy file.
current(waiver) if {
	is_object(waiver)
	is_string(waiver.expires)
	time.parse_ns("2006-01-02", waiver.expires) > time.now_ns() - 86400000000000
}

dated(waiver) if {
	is_object(waiver)
	is_string(waiver.expires)
	is_number(time.parse_ns("2006-01-02", waiver.expires))
}

lapse(waiver) := sprintf("expired (expires: %v)", [waiver.expires]) if {
	dated(waiver)
} else := sprintf("has no valid expiry date, YYYY-MM-DD (expires: %v)", [waiver.expires]) if {
	is_object(waiver)
	"expires" in object.keys(waiver)
} else := "has no expires" if {
	is_object(waiver)
} else := sprintf("is %v, not an object (waiver, owner, justification, expires)", [waiver])

waiver_name(waiver) := sprintf("%v", [waiver.waiver]) if {
	is_object(waiver)
	"waiver" in object.keys(waiver)
} else := "no waiver id"
