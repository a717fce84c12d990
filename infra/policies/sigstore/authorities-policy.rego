# The ClusterImagePolicy-level policy of cip-key.yaml and cip-keyless.yaml (not an
# attestation content policy: those are rego/*.rego). policy-controller admits an image
# when ANY authority matches; this policy makes it ALL of them, so the image needs its
# signature AND every required attestation. policy-controller evaluates it with OPA over
# {"authorityMatches": {<authority name>: {"signatures": [...], "attestations": {...}}}}.
# tasks/admission/cluster_image_policy.py appends `params` (the authority names of the template).
package sigstore

import rego.v1

default isCompliant := false

isCompliant if {
	every name in params.authorities {
		matched(input.authorityMatches[name])
	}
}

matched(match) if count(object.get(match, "signatures", [])) > 0

matched(match) if count(object.get(match, "attestations", {})) > 0
