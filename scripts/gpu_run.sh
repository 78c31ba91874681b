#!/usr/bin/env bash
# Run a GPU script (scripts/gpu_check.py, scripts/gpu_bench.py) on a lent GPU machine: no network, no .venv.
# What the machine's Python lacks comes from the wheels/ folder, installed into build/gpu_deps (so no
# site-packages are touched and PEP 668 "externally managed" Pythons work too); tilec runs from src/:
#   - lark and click (tilec's parser and CLI);
#   - the CUDA headers the kernels include (<cuda_fp16.h>, <cuda_bf16.h>, <mma.h> -> crt/): the
#     nvidia-cuda-runtime and nvidia-cuda-crt wheels, where tilec.backend.nvrtc_lib finds none. libnvrtc itself
#     (90 MB) is not carried: it comes from the nvidia-cuda-nvrtc wheel torch installed (see docs/gpu.md).
#
#   scripts/gpu_run.sh SCRIPT.py ARGS...
# PYTHON picks the interpreter, TILEC_GPU_DEPS the install folder, GPU_RUN_NEEDS the modules it must have.
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 SCRIPT.py ARGS..." >&2
  exit 2
fi
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PYTHON:-python3}"
DEPS="${TILEC_GPU_DEPS:-$ROOT/build/gpu_deps}"
export PYTHONPATH="$ROOT/src:$ROOT:$DEPS${PYTHONPATH:+:$PYTHONPATH}"

install() {  # install() WHAT PACKAGE...: from wheels/ into $DEPS, or exit 1 saying what is missing
  local what="$1"; shift
  if [ ! -d "$ROOT/wheels" ]; then
    echo "gpu_run: $what missing and there is no $ROOT/wheels folder to install it from" >&2
    exit 1
  fi
  echo "gpu_run: installing $* from wheels/ into $DEPS ($what missing)" >&2
  PIP_ROOT_USER_ACTION=ignore "$PY" -m pip install --quiet --disable-pip-version-check --no-index --no-deps --find-links "$ROOT/wheels" --target "$DEPS" --upgrade "$@"
}

NEEDS="${GPU_RUN_NEEDS:-numpy onnx onnxruntime}"  # what the Python must bring itself (not in wheels/)
if ! "$PY" -c "import ${NEEDS// /, }" 2>/dev/null; then
  echo "gpu_run: $PY lacks one of: $NEEDS (not carried in wheels/): set PYTHON to one that has them" >&2
  exit 1
fi
if ! "$PY" -c "import lark, click" 2>/dev/null; then
  install "lark/click" lark click
fi
# Headers only: a missing libnvrtc is not fatal (CuPy's own NVRTC is tried next, with these include folders).
NVRTC='from tilec.backend.nvrtc_lib import find_toolchain as f; t = f()
print("gpu_run: NVRTC headers from", ":".join(t.include_dirs), "; libnvrtc:", t.library or "none (CuPy NVRTC)")'
# CuPy's ROCm build (an AMD GPU) compiles the .hip kernels with hiprtc and its own headers: no CUDA headers.
if "$PY" -c "import cupy, sys; sys.exit(0 if getattr(cupy.cuda.runtime, 'is_hip', False) else 1)" 2>/dev/null; then
  echo "gpu_run: CuPy is a ROCm build: HIP kernels through hiprtc, no CUDA headers needed" >&2
else
  if ! "$PY" -c "$NVRTC" >/dev/null 2>&1; then
    install "the CUDA headers for NVRTC" nvidia-cuda-runtime nvidia-cuda-crt
  fi
  if ! "$PY" -c "$NVRTC" >&2 2>/dev/null; then
    echo "gpu_run: the CUDA headers for NVRTC are still missing after installing wheels/ into $DEPS" >&2
    exit 1
  fi
fi
cd "$ROOT"
exec "$PY" "$@"
