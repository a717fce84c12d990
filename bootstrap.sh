#!/usr/bin/env bash
# Fresh-machine set-up, then run the given command (default: the whole pipeline).
#
#   ./bootstrap.sh             -> nox            (the whole pipeline, offline, local keys)
#   ./bootstrap.sh nox -s tests
#
# Installs nox and uv from the hash-locked requirements/bootstrap.txt into a venv under
# ${XDG_CACHE_HOME:-~/.cache}/secure-iot/bootstrap (outside the checkout), puts it first on
# PATH and runs the command. Every other tool is installed by the pipeline itself
# (`nox -s tools`, from tools.lock). Idempotent: a second run only checks the lock.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${XDG_CACHE_HOME:-$HOME/.cache}/secure-iot
venv=$cache/bootstrap
lock=$here/requirements/bootstrap.txt
python=${PYTHON:-python3}

"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "error: Python >= 3.11 is required (set PYTHON=/path/to/python3.11)" >&2; exit 2; }
stamp=$venv/.lock.sha256
want=$(sha256sum "$lock" | cut -d' ' -f1)
if [ ! -x "$venv/bin/nox" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r "$lock"
  echo "$want" > "$stamp"
fi
export PATH="$venv/bin:$PATH"
cd "$here"
if [ $# -eq 0 ]; then set -- nox; fi
exec "$@"
