# The ClusterImagePolicy-level policy of cip-key.yaml and cip-keyless.yaml (not an
# attestation content policy: those are rego/*.rego). policy-controller admits an image
# when ANY authority matches; this policy makes it ALL of them, so the image needs its
# signature AND every required attestation. policy-controller evaluates it with OPA over
# {"authorityMatches": {<authority name>: {"signatures": [...], "attestations": {<name>: [{"id": ...}, ...]}}}}.
# tasks/admission/cluster_image_policy.py appends `params` (the authority names of the
# template, the time-dependent attestation types).
#
# Time-dependent types (gates.verify.evaluation): policy-controller lists under <type> only
# the statements its content policy admits (any one is enough for it) and hides every
# payload from this level, so no timestamp can be compared here. The template therefore
# also lists every signed statement of the type under <type>-signed, and this policy admits
# the image only if ALL of them comply: a newer non-compliant scan is never outvoted by an
# older clean one. Stricter than `nox -s verify` (where the newest statement decides) only
# while a superseded non-compliant statement is still attached: `nox -s rescan` and
# `nox -s sign` attest time-dependent types with `cosign attest --replace`, so normally
# one statement of each is attached and the two agree.
package sigstore

import rego.v1

default isCompliant := false

isCompliant if {
	every name in params.authorities {
		matched(input.authorityMatches[name])
	}
	count(outvoted) == 0
}

matched(match) if count(object.get(match, "signatures", [])) > 0

matched(match) if count(object.get(match, "attestations", {})) > 0

# [authority, type] pairs where a signed statement of a time-dependent type is not compliant.
# Counted, not compared by `id`: policy-controller v0.13.1 derives the id from the layer's
# cosign signature annotation, which is empty for every attestation (the signature is inside
# the DSSE envelope), so all attestations share one id.
outvoted contains [name, kind] if {
	some name, match in input.authorityMatches
	some kind in params.time_dependent
	signed := object.get(match, ["attestations", concat("", [kind, params.signed_suffix])], [])
	compliant := object.get(match, ["attestations", kind], [])
	count(signed) > count(compliant)
}
