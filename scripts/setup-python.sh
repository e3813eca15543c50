#!/usr/bin/env bash
# Creates $REPO/.venv with the Python Mesos clients the integration tests drive:
# pymesos 0.3.15 (with a pure-Python http-parser 0.9.0, see
# shared/reference/clients.md), mesoshttp 0.4.2 and requests.
# Idempotent: a second run with an unchanged script is a no-op.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"
PY="${PYTHON:-python3}"
STAMP="$VENV/.setup-stamp"
WANT="$(sha256sum "${BASH_SOURCE[0]}" | cut -d' ' -f1)"
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

log() { echo "[setup-python] $*"; }

if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$WANT" ]] &&
    "$VENV/bin/python" -c 'import pymesos, mesoshttp' 2>/dev/null; then
    log "up to date: $VENV (stamp $WANT)"
    exit 0
fi

# Debian's own python3 needs python3-venv for ensurepip.
if ! "$PY" -c 'import venv, ensurepip' 2>/dev/null; then
    log "installing python3-venv via apt-get"
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q python3-venv; then
        apt-get update -q && apt-get install -y -q python3-venv
    fi
fi

log "creating venv $VENV with $("$PY" --version)"
rm -rf "$VENV"
"$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install -q)

# http-parser 0.9.0's Cython extension does not build on CPython 3.11:
# install it with the extension switched off (pure-Python pyparser fallback).
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
log "installing http-parser 0.9.0 (C extension disabled)"
"$VENV/bin/python" -m pip download -q --no-binary :all: --no-deps -d "$WORK" http-parser==0.9.0
tar -xzf "$WORK"/http-parser-0.9.0.tar.gz -C "$WORK"
SETUP="$WORK/http-parser-0.9.0/setup.py"
grep -q 'run_setup(not IS_PYPY)' "$SETUP"
sed -i 's/run_setup(not IS_PYPY)/run_setup(False)/' "$SETUP"
"${PIP[@]}" --use-pep517 "$WORK/http-parser-0.9.0"

log "installing pymesos 0.3.15 (--no-deps) + six addict kazoo"
"${PIP[@]}" --no-deps pymesos==0.3.15
"${PIP[@]}" six addict kazoo

log "installing mesoshttp 0.4.2 + requests"
"${PIP[@]}" mesoshttp==0.4.2 requests

"$VENV/bin/python" -c "import pymesos, mesoshttp, requests; from pymesos import MesosSchedulerDriver; from http_parser.http import HttpStream"
echo "$WANT" > "$STAMP"
log "done: $("$VENV/bin/python" -m pip freeze | tr '\n' ' ')"
