"""python -m tasks.network.fetch_crl URL SERVER_CA FLEET_CA DEST: the fleet server's CRL, fetched where
the edge sits.

tasks/network/quarantine.py runs this inside the edge's namespace: the fleet server's address is
reachable from the edge, not necessarily from the process that drives the pipeline. It is
tasks/device/revocations.py's ``refresh`` (https with the server's certificate checked, the CRL
verified before it is written) and nothing else; a failure is the one line of its reason on stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tasks.core.errors import PipelineError
from tasks.device import revocations


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print("usage: python -m tasks.network.fetch_crl URL SERVER_CA FLEET_CA DEST", file=sys.stderr)
        return 2
    url, server_ca, fleet_ca, dest = argv
    try:
        got = revocations.refresh(url, Path(server_ca), Path(fleet_ca), Path(dest))
    except PipelineError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"CRL #{got.number}: {got.revoked} revoked, next update {got.next_update:%Y-%m-%d %H:%M:%S}Z")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
