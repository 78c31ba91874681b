# tilec developer targets. Every target installs what it needs first (into .venv), so each works on a
# fresh machine by itself.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: install install-ray test test-unit test-lit samples models lint demo bench bench-roller zoo-check gpu-check gpu-bench gpu-calibrate fuzz realworld tensorcore test-torch clean

install: $(STAMP)

# Ray for `--ray` (tilec.testing.campaign) and its tests (tests/testing/test_campaign_ray.py, which skip without
# it); CI runs this after make install.
RAY_STAMP = $(VENV)/.installed-ray
install-ray: $(RAY_STAMP)

$(RAY_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e ".[ray]"
	touch $(RAY_STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

test: install test-unit test-lit

test-unit: install
	$(BIN)/python -m pytest -q -m "not slow" tests

test-lit: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/lit -sv tests/lit

samples: install
	$(BIN)/python samples/build_samples.py

models: install
	$(BIN)/python samples/models/build_zoo.py --size full

# CPU benchmark of the model zoo x every pipeline -> docs/benchmarks/cpu-<date>.md/.json (2 cores at load ~5:
# 14 min with empty ~/.cache/tilec, 5 min warm).
# BENCH_NOTE="..." adds a sentence to the table's header (e.g. what else ran on the machine).
# RAY=local (a local Ray cluster), RAY=auto (the running one) or RAY=HOST:PORT: the rows as Ray tasks (same
# table); likewise on make fuzz and make realworld.
bench: install $(if $(RAY),install-ray)
	$(BIN)/python scripts/bench.py --out docs/benchmarks $(if $(BENCH_NOTE),--note "$(BENCH_NOTE)") $(if $(RAY),--ray $(RAY))
	$(BIN)/python scripts/bench_rammer.py samples/parallel/*.onnx  # launches, est. makespan: welder vs rammer
	$(BIN)/python scripts/bench_grinder.py --out docs/benchmarks
	$(BIN)/python scripts/bench_amd.py --out docs/benchmarks  # mi250x: samples + small zoo, --check-hip (skipped without hipcc)

# On a lent GPU machine (no network, no .venv): lark/click and the CUDA headers come from wheels/
# (scripts/gpu_run.sh), tilec from src/. One process per row with a timeout, the table written row by row, the
# budget (9 min) printed up front; docs/gpu.md. DRY=1: the same path without a GPU (emu backend, CPU baselines,
# the .venv's Python) -> build/gpu_bench_dry/.
GPU_PY = $(if $(DRY),$(BIN)/python,$(PYTHON))
gpu-bench: $(if $(DRY),install)
	PYTHON=$(GPU_PY) scripts/gpu_run.sh scripts/gpu_bench.py $(if $(DRY),--dry-run --out build/gpu_bench_dry,--out docs/benchmarks)

# Every full-size zoo model: tilec's numpy interpreter vs onnxruntime -> docs/benchmarks/zoo-full-<date>.md.
zoo-check: install
	$(BIN)/python scripts/zoo_full_check.py --out docs/benchmarks

# Tensor cores without a GPU: the f16/bf16 GEMM main loops tilec builds for sm_80 and sm_90 (ptxas + SASS), beside
# Triton's tutorial matmul compiled ahead of time (TRITON_PYTHON=/a/python/with/triton; optional, never a
# dependency) -> docs/benchmarks/tensorcore-<date>.md.
tensorcore: install
	$(BIN)/python scripts/tensorcore_table.py --out docs/benchmarks/tensorcore-$$(date -u +%Y-%m-%d).md $(if $(TRITON_PYTHON),--triton-python $(TRITON_PYTHON))

# Real exports (twelve: ResNet-50, MobileNet-V3, EfficientNet-B0, ConvNeXt-tiny, ViT-B/16, Swin-T, BERT,
# DistilBERT, Whisper-tiny encoder, GPT-2, T5-small, a 12-head f16 attention; random weights, written under
# $(REALWORLD), never committed) compiled with the default pipeline, run under numpy and, with --emu, the
# CUDA emulator in resident-limit mode, and compared with onnxruntime: a table of compile s, kernels, launches
# and errors. The export needs torch, torchvision, transformers and onnxscript: pip install -e ".[export]", or
# EXPORT_PYTHON=/a/python/that/has/them. Not part of make test (about 10 minutes on 2 CPUs, and torch).
REALWORLD       ?= /tmp/realworld
EXPORT_PYTHON   ?= $(BIN)/python
REALWORLD_FLAGS ?= --emu
realworld: install $(if $(RAY),install-ray)
	$(EXPORT_PYTHON) scripts/export_real.py --out $(REALWORLD)
	nice -n 5 $(BIN)/python scripts/realworld.py --dir $(REALWORLD) $(REALWORLD_FLAGS) $(if $(RAY),--ray $(RAY))

# torch.compile(backend="tilec") against eager (tests/runtime/test_torch_backend.py): needs torch, which make
# test does not install (a CUDA torch wheel is gigabytes), so there those tests skip. TORCH_PYTHON is a Python
# with torch (and tilec's dependencies, pytest and onnxruntime); it runs this tree's sources.
TORCH_PYTHON ?= $(BIN)/python
test-torch: install
	PYTHONPATH=$(CURDIR)/src $(TORCH_PYTHON) -c "import torch" 2>/dev/null || $(BIN)/pip install -e ".[torch]"
	PYTHONPATH=$(CURDIR)/src $(TORCH_PYTHON) -m pytest -q tests/runtime/test_torch_backend.py tests/runtime/test_api.py::test_torch_inputs_give_torch_outputs

bench-roller: install
	$(BIN)/python scripts/bench_roller.py --out docs/benchmarks

fuzz: install $(if $(RAY),install-ray)
	$(BIN)/python scripts/fuzz.py --graphs 1000 --pipeline-graphs 2000 --pipeline-f16-graphs 500 --precision-graphs 100 --ir 10000 --onnx 1000 --run-inputs 1000 --seed 0 $(if $(RAY),--ray $(RAY))

# Every sample and small zoo model on the GPU vs onnxruntime, then timed (8 min budget) -> build/gpu_check/.
# DRY=1: the emu backend instead of the GPU -> build/gpu_check_dry/. ARCH=mi250x: every row for that arch spec
# (an AMD GPU picks its own from its gfx ISA; DRY=1 ARCH=mi250x: the emulator with 64-lane wavefronts).
gpu-check: $(if $(DRY),install)
	PYTHON=$(GPU_PY) scripts/gpu_check.sh $(if $(DRY),build/gpu_check_dry --dry-run,build/gpu_check --runs 20) $(if $(ARCH),--arch $(ARCH))

# The latency model's constants measured on a lent GPU (5 min budget, one process per constant) ->
# build/gpu_calibrate/<arch>.measured.json (copy it to src/tilec/analysis/hw/ to use it; ARCH=h100 default).
# DRY=1: the same path on the emulator -> build/gpu_calibrate_dry/<arch>.measured.dry.json.
gpu-calibrate: $(if $(DRY),install)
	PYTHON=$(GPU_PY) scripts/gpu_run.sh scripts/gpu_calibrate.py $(if $(DRY),build/gpu_calibrate_dry --dry-run,build/gpu_calibrate) --arch $(or $(ARCH),h100)

lint: install
	$(BIN)/python -m compileall -q src tests samples
	$(BIN)/python scripts/lint.py

demo: install
	rm -rf build/demo
	$(BIN)/tilec compile samples/transformer_layer.onnx -o build/demo/tl --dump-dir build/demo/dumps --check-ptx
	$(BIN)/python -c "import numpy as np; np.savez('build/demo/in.npz', x=np.random.default_rng(0).standard_normal((1, 32, 64)).astype('float32'))"
	$(BIN)/tilec run build/demo/tl --inputs build/demo/in.npz --outputs build/demo/emu.npz --backend emu --report build/demo/run.json
	$(BIN)/tilec run build/demo/tl --inputs build/demo/in.npz --outputs build/demo/ref.npz --backend numpy
	$(BIN)/python scripts/demo_summary.py build/demo

clean:
	rm -rf build .pytest_cache
