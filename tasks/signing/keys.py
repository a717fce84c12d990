"""Talk 02 — a cosign key pair for local signing, in .keys/ (gitignored, private key 0600).

The password comes from COSIGN_PASSWORD; an empty one is allowed for workshops, with a
warning recorded as an opt-out. Existing keys are kept unless --force, and then the old
pair is moved aside, never deleted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tasks.context import Context
from tasks.core import runner
from tasks.core.console import console
from tasks.core.evidence import StageRecord, Verdict
from tasks.signing import signer as signing
