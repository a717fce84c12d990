# SLSA Provenance v1 attestation policy — evaluated by `nox -s verify` (opa eval) and, in
# the cluster, by sigstore policy-controller (OPA) as the ClusterImagePolicy's
# attestation policy. One source: tasks/policy/rego.py appends `params` (from
# security-policy.yaml gates.verify) to this module for both.
# input: the in-toto Statement v1 carried by the attestation.
package sigstore

import rego.v1

default isCompliant := false

isCompliant if count(violations) == 0

builder := object.get(input, ["predicate", "runDetails", "builder", "id"], "")

repository := object.get(input, ["predicate", "buildDefinition", "externalParameters", "repository"], "")

subject_digests := [d | some s in input.subject; d := object.get(s, ["digest", "sha256"], "")]

violations contains msg if {
	input.predicateType != "https://slsa.dev/provenance/v1"
	msg := sprintf("provenance: predicateType %v is not https://slsa.dev/provenance/v1", [input.predicateType])
}

# At admission policy-controller binds the attestation to the image; `nox -s verify` also
# passes the digest it expects, and then the subject must name exactly that digest.
violations contains msg if {
	params.image_digest != ""
	not trim_prefix(params.image_digest, "sha256:") in subject_digests
	msg := sprintf("provenance: subject %v is not the image digest %v", [concat(", ", subject_digests), params.image_digest])
}

violations contains msg if {
	not builder_allowed
	msg := sprintf("provenance: builder %v is not on the allowed list (%v)", [builder, concat(", ", params.allowed_builders)])
}

builder_allowed if {
	some pattern in params.allowed_builders
	glob.match(pattern, ["/"], builder) # `*` stays inside one path segment; `**` crosses them
}

violations contains msg if {
	params.source_repository != ""
	repository != params.source_repository
	msg := sprintf("provenance: source repository %v is not %v", [repository, params.source_repository])
}
