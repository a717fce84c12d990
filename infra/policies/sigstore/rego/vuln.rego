# Vulnerability-scan attestation policy (cosign vuln predicate around grype's result; same
# single source as provenance.rego). Matches covered by VEX are in ignoredMatches and do
# not count; anything else at or above params.fail_on does. The scan's database must be
# younger than params.max_db_age_hours, and the scan itself younger than params.max_age_hours
# (freshness.rego).
package sigstore

import rego.v1

# A list of results, not a bare boolean: policy-controller (cosign's Rego evaluation) then
# reports `error` when it denies, so the denial names the CVE, not only "not compliant".
isCompliant := [{"result": count(violations) == 0, "error": concat("; ", sort(violations))}]

# The scan's timestamp: time-dependent (freshness.rego is appended; the newest statement decides).
issued := object.get(input, ["predicate", "metadata", "scanFinishedOn"], "")

rank := {"negligible": 0, "unknown": 0, "info": 0, "low": 1, "medium": 2, "high": 3, "critical": 4}

matches := object.get(input, ["predicate", "scanner", "result", "matches"], [])

db_built := object.get(input, ["predicate", "scanner", "db", "version"], "")

violations contains msg if {
	input.predicateType != "https://cosign.sigstore.dev/attestation/vuln/v1"
	msg := sprintf("vuln: predicateType %v is not the cosign vuln predicate", [input.predicateType])
}

violations contains msg if {
	some m in matches
	rank[lower(m.vulnerability.severity)] >= rank[params.fail_on]
	msg := sprintf("vuln: %v (%v) in %v@%v is at or above %v and not covered by VEX", [
		m.vulnerability.id, m.vulnerability.severity, m.artifact.name, m.artifact.version, params.fail_on,
	])
}

severity_known(m) if {
	is_string(m.vulnerability.severity)
	rank[lower(m.vulnerability.severity)] >= 0
}

violations contains msg if {
	some i, m in matches
	not severity_known(m)
	msg := sprintf("vuln: match %v (%v) has no known severity", [i, object.get(m, ["vulnerability", "id"], "?")])
}

violations contains "vuln: the scan result has no matches list (not a grype result)" if {
	not is_array(object.get(input, ["predicate", "scanner", "result", "matches"], null))
}

violations contains msg if {
	object.get(input, ["predicate", "scanner", "db", "uri"], "") == "grype-db:demo"
	not params.allow_demo_db
	msg := "vuln: the scan used the demo database (SECURE_IOT_VULNDB=demo), which gates.verify does not allow"
}

built_ns := time.parse_rfc3339_ns(db_built)

violations contains msg if {
	not built_ns
	msg := sprintf("vuln: the scan's database build time %v is missing or unreadable", [db_built])
}

violations contains msg if {
	built_ns > time.now_ns() + 3600000000000 # an hour of clock skew, no more
	msg := sprintf("vuln: the scan's database build time %v is in the future", [db_built])
}

violations contains msg if {
	age_hours := (time.now_ns() - built_ns) / 3600000000000
	age_hours > params.max_db_age_hours
	msg := sprintf("vuln: the scan's database was built %v (%vh ago), older than %vh", [
		db_built, round(age_hours), params.max_db_age_hours,
	])
}
