#!/usr/bin/env bash
# GPU check (see scripts/gpu_check.py): compile every sample, run it with CuPy and against numpy, and write a
# markdown table to OUT_DIR/gpu_check.md. For a GPU machine without network: lark and click come from the
# wheels/ folder of pre-downloaded wheels, and tilec runs from this source tree (PYTHONPATH=src).
#
#   scripts/gpu_check.sh OUT_DIR [--dry-run] [--runs N] [--models GLOB] [--cuda-graph]
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 OUT_DIR [--dry-run] [--runs N] [--models GLOB] [--cuda-graph] [--check-ptx]" >&2
  exit 2
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$(mkdir -p "$1" && cd "$1" && pwd)"
shift
PY="${PYTHON:-python3}"
if ! "$PY" -c "import lark, click" 2>/dev/null; then
  if [ ! -d "$ROOT/wheels" ]; then
    echo "gpu_check: lark/click are missing and there is no $ROOT/wheels folder to install them from" >&2
    exit 1
  fi
  "$PY" -m pip install --quiet --no-index --find-links "$ROOT/wheels" lark click
fi
cd "$ROOT"
PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}" exec "$PY" scripts/gpu_check.py "$OUT" "$@"
