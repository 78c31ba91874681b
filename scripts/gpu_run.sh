#!/usr/bin/env bash
# Run a GPU script (scripts/gpu_check.py, scripts/gpu_bench.py) on a lent GPU machine: no network, no .venv.
# lark and click come from the wheels/ folder (installed into build/gpu_deps, so no site-packages are touched
# and PEP 668 "externally managed" Pythons work too); tilec runs from src/.
#
#   scripts/gpu_run.sh SCRIPT.py ARGS...
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 SCRIPT.py ARGS..." >&2
  exit 2
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python3}"
DEPS="$ROOT/build/gpu_deps"
export PYTHONPATH="$ROOT/src:$ROOT:$DEPS${PYTHONPATH:+:$PYTHONPATH}"
if ! "$PY" -c "import lark, click" 2>/dev/null; then
  if [ ! -d "$ROOT/wheels" ]; then
    echo "gpu_run: lark/click are missing and there is no $ROOT/wheels folder to install them from" >&2
    exit 1
  fi
  "$PY" -m pip install --quiet --no-index --find-links "$ROOT/wheels" --target "$DEPS" lark click
fi
cd "$ROOT"
exec "$PY" "$@"
