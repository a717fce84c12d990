"""Talk 02 — a cosign key pair for local signing, in .keys/ (gitignored, private key 0600).

The password comes from COSIGN_PASSWORD; an empty one is allowed for workshops, with a
warning recorded as an opt-out. Existing keys are kept unless --force, and then the old
pair is moved aside, never deleted.
"""

from __future__ import annotations
