"""nox -s keys"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tasks import signing
from tasks.context import Context
from tasks.core import runner
from tasks.core.console import console
from tasks.core.evidence import StageRecord, Verdict


def run(ctx: Context, rec: StageRecord, argv: Sequence[str]) -> Verdict:
    parser = argparse.ArgumentParser(prog="nox -s keys", description="cosign key pair for key-mode signing")
    parser.add_argument("--force", action="store_true", help="replace an existing pair (the old one is kept aside)")
    args = parser.parse_args(argv)
    signer = signing.Signer("key", signing.configured(ctx).key_dir)
    if signer.private_key.exists() and not args.force:
        rec.add_output(signer.public_key, "application/x-pem-file")
        console.print(f"  keys: {signer.private_key} exists; kept (use --force to replace it)")
        return "pass"
    password = os.environ.get("COSIGN_PASSWORD", "")
    if password == "":
        console.print(
            "  [yellow]warning: COSIGN_PASSWORD is empty or unset — the key is not protected by a password; "
            "fine for a workshop, not for a product[/]"
        )
        rec.opt_out("empty-password", "COSIGN_PASSWORD empty or unset: the private key has no password")
    signer.key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(signer.key_dir, 0o700)
    with tempfile.TemporaryDirectory(dir=signer.key_dir, prefix=".new-") as tmp:
        runner.run(
            rec,
            ctx.tool("cosign"),
            ["generate-key-pair", "--output-key-prefix", Path(tmp) / "cosign"],
            env={"COSIGN_PASSWORD": password},
        )
        if signer.private_key.exists():
            stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
            aside = signer.key_dir / f"replaced-{stamp}"
            aside.mkdir(mode=0o700)
            for old in (signer.private_key, signer.public_key):
                if old.exists():
                    shutil.move(old, aside / old.name)
            console.print(f"  keys: previous pair moved to {aside}")
        for name, mode in (("cosign.key", 0o600), ("cosign.pub", 0o644)):
            os.chmod(Path(tmp) / name, mode)
            os.replace(Path(tmp) / name, signer.key_dir / name)
    rec.add_output(signer.public_key, "application/x-pem-file")
    console.print(f"[green]keys: pass[/] — {signer.private_key} (0600), {signer.public_key}")
    return "pass"
