"""The ASGI app the mTLS repository server runs: the repository directory as static files, nothing else.

uvicorn (the fleet server's ASGI server, already a dependency) imports it in its own process;
the directory comes from SECURE_IOT_OTA_REPOSITORY. Who may read is decided before a request
exists: the TLS handshake requires a client certificate the fleet CA issued (tasks/ota/serve.py).
Starlette's StaticFiles refuses paths outside the directory and serves GET/HEAD only.
"""

from __future__ import annotations

import os

from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

# Mounted in a Starlette app: its exception middleware turns StaticFiles' 404 into a 404 response
# (ngclient probes for the next root version and needs exactly that).
files = StaticFiles(directory=os.environ.get("SECURE_IOT_OTA_REPOSITORY", "."), check_dir=False)
app = Starlette(routes=[Mount("/", app=files)])
