# Vulnerability-scan attestation policy (cosign vuln predicate around grype's result; same
# single source as provenance.rego). Matches covered by VEX are in ignoredMatches and do
# not count; anything else at or above params.fail_on does. The scan's database must be
# younger than params.max_db_age_hours.
package sigstore

import rego.v1

default isCompliant := false

isCompliant if count(violations) == 0

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

violations contains msg if {
	some m in matches
	not rank[lower(m.vulnerability.severity)]
	not rank[lower(m.vulnerability.severity)] == 0
	msg := sprintf("vuln: %v has an unknown severity %v", [m.vulnerability.id, m.vulnerability.severity])
}

built_ns := time.parse_rfc3339_ns(db_built)

violations contains msg if {
	not built_ns
	msg := sprintf("vuln: the scan's database build time %v is missing or unreadable", [db_built])
}

violations contains msg if {
	age_hours := (time.now_ns() - built_ns) / 3600000000000
	age_hours > params.max_db_age_hours
	msg := sprintf("vuln: the scan's database was built %v (%vh ago), older than %vh", [
		db_built, round(age_hours), params.max_db_age_hours,
	])
}
