"""Talk 02 - in-toto statements the pipeline makes: SLSA provenance (vuln and OpenVEX predicates join here)."""
