# The freshness rules of every TIME-DEPENDENT attestation type (security-policy.yaml
# gates.verify.evaluation.time_dependent). tasks/policy/rego.py appends these rules to the
# type's own module (vuln.rego, openvex.rego), which defines `issued`: the statement's
# timestamp (scanFinishedOn of a scan, the timestamp of a VEX document). Without a readable
# timestamp, statements cannot be ordered and the newest cannot decide: that fails, as does
# one from the future (it would stay "newest" forever) and one older than the maximum age.
package sigstore

import rego.v1

skew_ns := 300000000000 # five minutes of clock skew, no more

issued_ns := time.parse_rfc3339_ns(issued)

violations contains msg if {
	not issued_ns
	msg := sprintf("%v: the statement's timestamp %v is missing or unreadable", [params.kind, issued])
}

violations contains msg if {
	issued_ns > time.now_ns() + skew_ns
	msg := sprintf("%v: the statement's timestamp %v is in the future", [params.kind, issued])
}

violations contains msg if {
	age_hours := (time.now_ns() - issued_ns) / 3600000000000
	age_hours > params.max_age_hours
	msg := sprintf("%v: the statement was made %v (%vh ago), older than the maximum age of %vh", [
		params.kind, issued, round(age_hours), params.max_age_hours,
	])
}
