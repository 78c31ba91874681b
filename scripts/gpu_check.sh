#!/usr/bin/env bash
# GPU check (see scripts/gpu_check.py): every sample and small zoo model compiled, run with CuPy, compared with
# onnxruntime and timed; one process per model, the table written row by row to OUT_DIR/gpu_check.md.
# For a GPU machine without network: see scripts/gpu_run.sh (lark/click from wheels/, tilec from src/).
#
#   scripts/gpu_check.sh OUT_DIR [--dry-run] [--runs N] [--models GLOB ...] [--zoo small|none] [--jobs N]
#                        [--arch ARCH] [--backend cupy|hip]   (an AMD GPU: docs/gpu.md, "On an AMD GPU")
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 OUT_DIR [--dry-run] [--runs N] [--models GLOB ...] [--zoo small|none] [--jobs N] [--budget S] [--arch ARCH]" >&2
  exit 2
fi
exec "$(dirname "$0")/gpu_run.sh" scripts/gpu_check.py "$@"
