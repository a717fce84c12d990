"""Talk 05/08 - the device side (issue #14): TPM work, factory enrolment, attestation checks."""
