"""Talk 02 - Identity and signatures: the signer (key or keyless), local keys, attaching
signatures and attestations, cosign verify.
"""
