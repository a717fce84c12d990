# How `nox -s verify` decides over ALL the signed statements of one attestation type, with
# the type's rendered module (package sigstore) loaded beside it: each statement is judged
# by that module (`with input as`), then
#   - time-dependent types (params.time_dependent): the NEWEST statement decides, by the
#     module's `issued` timestamp. Every statement must have a readable timestamp (else they
#     cannot be ordered); a statement from the future is the newest and fails on its own.
#   - static types: any one compliant statement is enough.
# At admission policy-controller judges each statement by the same module; the
# ClusterImagePolicy-level rule is authorities-policy.rego (it cannot see timestamps).
# input: {"kind": <cosign --type>, "statements": [<in-toto statement>, ...]}
package decision

import rego.v1

time_dependent if input.kind in data.sigstore.params.time_dependent

judged := [j |
	some i, s in input.statements
	found := data.sigstore.violations with input as s
	j := {"index": i, "issued": issued_of(s), "violations": sort(found)}
]

issued_of(s) := t if {
	t := data.sigstore.issued with input as s
	time.parse_rfc3339_ns(t)
} else := ""

unordered := [j.index | some j in judged; j.issued == ""]

newest_ns := max([time.parse_rfc3339_ns(j.issued) | some j in judged; j.issued != ""])

deciding := [j | some j in judged; time_dependent; j.issued != ""; time.parse_rfc3339_ns(j.issued) == newest_ns]

violations contains msg if {
	not time_dependent
	count([j | some j in judged; count(j.violations) == 0]) == 0
	some j in judged
	some msg in j.violations
}

violations contains msg if {
	time_dependent
	count(unordered) > 0
	msg := sprintf("%v: %v of %v signed statement(s) have no readable timestamp, so the newest cannot be told", [
		input.kind, count(unordered), count(judged),
	])
}

violations contains msg if {
	time_dependent
	some j in deciding
	some msg in j.violations
}

violations contains msg if {
	count(judged) == 0
	msg := sprintf("%v: no signed statement", [input.kind])
}

compliant if count(violations) == 0

# For the report: which statement decided (time-dependent types).
decided_by := [{"index": j.index, "issued": j.issued} | some j in deciding]
