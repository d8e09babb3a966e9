#!/usr/bin/env bash
# Run a command with .venv/pyX.Y active:  scripts/in-venv.sh 3.12 pytest -x
# (Creating the venv is scripts/bootstrap.sh's job; this only activates it.)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

[[ $# -ge 2 ]] || { echo "usage: $0 X.Y COMMAND [ARGS...]" >&2; exit 2; }
ver=$1
shift
venv="$ROOT/.venv/py$ver"
[[ -x $venv/bin/python ]] ||
    { echo "simloom: error: .venv/py$ver does not exist; run 'make venv-$ver' first" >&2; exit 1; }

unset PYTHONHOME CONDA_PREFIX
export VIRTUAL_ENV="$venv"
export PATH="$venv/bin:$PATH"
exec "$@"
