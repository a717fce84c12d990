"""Talk 02/04 - What is inside an artifact (image or blob): SBOMs with syft, vulnerabilities
with grype, the vulnerability database.
"""
