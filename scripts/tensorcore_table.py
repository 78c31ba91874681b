"""The tensor-core table (issue #17): f16, bf16 and tf32 (an f32 model under ``--precision tf32``) GEMMs
compiled by tilec for sm_80 (a100) and sm_90 (h200),
ptxas' resources and the static SASS of each main loop (tilec inspect), side by side with Triton's tutorial
matmul compiled ahead of time for the same shapes and arch when a Python with triton is given
(--triton-python or $TRITON_PYTHON; scripts/triton_matmul_aot.py). No GPU needed.

    .venv/bin/python scripts/tensorcore_table.py --out docs/benchmarks/tensorcore-DATE.md [--triton-python PY]
    .venv/bin/python scripts/tensorcore_table.py --archs h200 --title "..." --out FILE   # one arch (the sm_90 doc)
"""
from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from tilec.backend import sass
from tilec.backend.inspect_build import disassemble, find_disassembler, inspect_build
from tilec.driver import compile_model
from tilec.ir import read_ir

sys.path.insert(0, str(Path(__file__).parent))
import tensorcore_fused  # noqa: E402  (scripts/: the back-to-back contraction rows, issue #17)
from tensorcore_cells import (ARCHS, kernel_cells, loop_cells, mma_sync_shape, persistent, table,  # noqa: E402
                              wgmma_block)

SHAPES = ((4096, 4096, 4096), (1024, 768, 3072))   # (M, N, K)
# dtype -> (the ONNX model's element type, Triton's pointer type); tf32 is an f32 model under --precision tf32
# (Triton: f32 pointers, tl.dot's default tf32 input precision).
DTYPES = {"f16": (TensorProto.FLOAT16, "fp16"), "bf16": (TensorProto.BFLOAT16, "bf16"),
          "tf32": (TensorProto.FLOAT, "fp32")}
TITLE = "the f16/bf16/tf32 GEMM main loop, tilec vs Triton"


def gemm_model(m: int, n: int, k: int, dtype: str, path: Path) -> None:
    t = DTYPES[dtype][0]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm",
                              [helper.make_tensor_value_info("a", t, [m, k]), helper.make_tensor_value_info("b", t, [k, n])],
                              [helper.make_tensor_value_info("c", t, [m, n])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def tilec_row(m, n, k, dtype, arch, tmp: Path) -> dict:
    model = tmp / f"gemm_{dtype}_{m}x{n}x{k}.onnx"
    gemm_model(m, n, k, dtype, model)
    build = tmp / f"build_{dtype}_{m}x{n}x{k}_{arch}"
    precision = {"precision": "tf32"} if dtype == "tf32" else {}
    compile_model(str(model), str(build), arch=arch, check_ptx=True, **precision)
    (kern,) = inspect_build(build)["kernels"]
    (func,) = [op for op in read_ir(str(build / "model.tir")).body.ops if op.name == "kernel.func"]
    return kernel_cells(kern, kernel_config(func.attributes))


def kernel_config(attrs: dict) -> str:
    """The engine kernel's shape from its kernel.func attributes (the wmma kernel: its kind)."""
    cfg = attrs["config"]
    if cfg.get("engine") == "wgmma":
        return (f"wgmma: {wgmma_block(cfg)} of 64x{cfg['tile'][1]} + 1 TMA producer, {cfg['stages']} stages"
                f"{persistent(cfg)}")
    if cfg.get("engine") != "mma_sync":
        return f"{attrs['kind']} (wmma)"
    m, n, bk, wm, wn = mma_sync_shape(cfg)
    return f"block {m}x{n}x{bk}, {wm}x{wn} warps of {m // wm}x{n // wn}, {cfg['stages']} stages"


def triton_rows(python: str, tmp: Path) -> tuple:
    """``({(arch, dtype, shape): row}, triton version)`` from Triton's AOT cubins."""
    out = tmp / "triton"
    out.mkdir()
    script = Path(__file__).with_name("triton_matmul_aot.py")
    r = subprocess.run([python, str(script), str(out), *(f"{m},{n},{k}" for m, n, k in SHAPES)],
                       capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise SystemExit(f"triton_matmul_aot.py failed:\n{r.stderr[-3000:]}")
    tool = find_disassembler()
    from tilec.analysis.hardware import get_arch
    from tilec.backend.inspect_build import estimate
    rows = {}
    for arch, cc in ARCHS.items():
        for dtype, (_, tname) in DTYPES.items():
            for m, n, k in SHAPES:
                (instrs,) = disassemble(out / f"sm{cc}_{tname}_{m}x{n}x{k}.cubin", tool).values()
                _, mix = sass.main_loop(instrs)
                bound = (estimate(mix, get_arch(arch)) or {}).get("fraction_of_peak")
                loop = {"instructions": mix.instructions, "memory": dict(mix.memory), "tensor": dict(mix.tensor),
                        "flops": dict(mix.flops), "instructions_per_tensor_flop": mix.instructions / mix.tensor_flops}
                bk = 32 if dtype == "tf32" else 64   # scripts/triton_matmul_aot.py: 3 f32 stages of 64 do not fit
                rows[arch, dtype, (m, n, k)] = {"system": f"Triton {r.stdout.strip()}",
                                                "config": f"128x256x{bk}, 8 warps, 3 stages", "regs": "", "spill": "",
                                                **loop_cells(loop), "bound": bound,
                                                "tma": sass.mix(instrs).memory.get("UTMALDG", 0)}
    return rows, r.stdout.strip()


NOTES = """## How it is counted

- tilec: `tilec compile MODEL --arch a100|h200 --check-ptx` on a one-MatMul ONNX model, then `tilec inspect`
  (ptxas of CUDA 13's nvcc; cuobjdump's SASS; backend/sass.py's main loop: the backward-branch range holding
  the most tensor-core FLOPs; HMMA.16816 = 4096 FLOPs per warp, HGMMA.64x256x16 = 131,072). Counts are static,
  per warp and per iteration of the main loop; *ins / TC FLOP* = its instructions / its tensor-core FLOPs.
- Triton: the tutorial matmul (scripts/triton_matmul_aot.py) with its 128x256x64, 8-warp, 3-stage config for
  every shape (128x256x32 for tf32: three f32 stages of 64 do not fit; not autotuned), compiled ahead of time
  for `GPUTarget("cuda", 80|90, 32)` with shapes and strides as constants and 16-byte-aligned pointers, as
  tilec's kernels are; the same SASS counting.
- *vs Triton sm_80*: the row's instructions per tensor-core FLOP over Triton's sm_80 kernel for the same dtype
  and shape (issue #17's target: at most 1.25x, i.e. <= 6.7e-4 on the f16 4096^3 GEMM).

## Reading it

- The 4096^3 GEMMs: Roller's 256x128 block tile gives 64x64 warp tiles, 128 HMMA per 64-deep k tile, with
  32 LDSM and 12 LDGSTS (16-byte cp.async) per iteration, as Triton's sm_80 kernel.
- 1024x768x3072: Roller shrinks the block tile so the grid fills the GPU (128x64 on A100: 96 blocks; 64x64 on
  H200: 192), where Triton's fixed 128x256 tile runs 24 blocks. On A100 the smaller 64x32 warp tiles need
  more ldmatrix and copies per mma, hence more instructions per FLOP than Triton's big tile; fewer
  instructions per FLOP would idle most SMs (on H200 the wgmma kernel stays under Triton's even at 64x64).
  Only a GPU can say which is faster (`--tune` on a lent GPU).
- sm_90 (issue #21): tilec's f16/bf16 rows are the wgmma engine (lower/wgmma_engine.py): a TMA producer
  warpgroup fills 128-byte-swizzled stages (mbarrier expect_tx), one or two consumer warpgroups issue 4
  `wgmma.m64nNk16` per 64-deep k tile from shared-memory descriptors. Roller chooses the tile among the
  engine's (analysis/wgmma_shape.py: 128x256 for 4096^3, 64x64 with one consumer for 1024x768x3072), and
  where the tiles are more than one wave and K whole rounds of the stages the launch is persistent (132
  blocks looping over the tiles; the kernel column says so). The main loop is the consumer's k loop (inside
  a persistent kernel's tile loop): no loads at all (UTMALDG is in the producer's loop: *UTMALDG
  (kernel)*), so its instructions are the barrier wait, descriptors, 4 HGMMA per k tile, commit/wait and the
  stage release. Triton's sm_90 kernel also uses wgmma, fed by cp.async (LDGSTS) from every thread. tf32 on
  sm_90: wgmma m64nNk8 where both operands are K-major (A [m][k], B [n][k]); a constant [k][n] weight is
  stored [n][k] at compile time for it (passes/tf32_layout.py), but these rows' B is a graph input, which
  keeps mma.sync m16n8k8 (wgmma has no transposed tf32).
- *issue bound*: `tilec inspect`'s static estimate (4 schedulers x the loop's tensor-core FLOPs per warp over
  its instructions, capped at the spec's peak) as a fraction of peak; *vs Triton same arch*: the row's
  instructions per tensor-core FLOP over Triton's for the same arch, dtype and shape.

- tf32: mma.sync m16n8k8 (HMMA.1688, 2048 FLOPs per warp) on f32 stages; B [k][n] (a MatMul's weight) has
  no 32-bit transposing ldmatrix, so its fragments are 32-bit shared loads (LDS), as CUTLASS's congruous tf32
  iterators; every fragment register is rounded to tf32 as cvt.rna.tf32.f32 rounds, by one integer add of
  0x1000 before the tensor core drops the low 13 bits (cvt.rna itself is two instructions: half the main
  loop). Roller ranks tf32 tiles at the tf32 tensor-core peak (it used the f32 CUDA-core peak, hence the
  64x32 block tiles of the table before) with the engine's warps, stages and shared memory
  (analysis/engine_shape.py), and tf32 takes 64x64 warp tiles (with cvt.rna they spilled: 64x32 before).
  Triton's tl.dot rounds nothing (the tensor core truncates), hence its fewer instructions.
- Stages: Roller's estimate of a tensor-core rTile is the engine kernel it gets (analysis/engine_shape.py):
  its 2-4 cp.async stages of shared memory (occupancy, the opt-in limit), its warps and registers, one
  barrier per k tile and ldmatrix traffic by warp tile; the stage count is in the rTile and the estimate.

## Not done (issue #17)

- Convolution tiles are the implicit GEMM's own (lower/mma_conv.choose_tile; on sm_90 wgmma_engine.plan's,
  lower/wgmma_conv.py), not Roller's.
- The epilogue stores straight from the accumulators (4-byte column pairs), not staged through shared
  memory for 128-bit stores (outside the main loop).
- No GPU timings: these are static instruction counts.
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--triton-python", default=os.environ.get("TRITON_PYTHON", ""))
    ap.add_argument("--archs", help="comma-separated archs (default: a100,h200)")
    ap.add_argument("--title", default=TITLE)
    args = ap.parse_args()
    archs = args.archs.split(",") if args.archs else list(ARCHS)
    with tempfile.TemporaryDirectory(prefix="tilec-tc-") as d:
        tmp = Path(d)
        tri, version = triton_rows(args.triton_python, tmp) if args.triton_python else ({}, None)
        rows = []
        for arch in archs:
            for dtype in DTYPES:
                for shape in SHAPES:
                    ref = tri.get(("a100", dtype, shape), {}).get("ipf")
                    same = tri.get((arch, dtype, shape), {}).get("ipf")
                    rows.append({"arch": arch, "dtype": dtype, "shape": shape, "ref": ref, "same": same,
                                 **tilec_row(*shape, dtype, arch, tmp)})
                    if (arch, dtype, shape) in tri:
                        rows.append({"arch": arch, "dtype": dtype, "shape": shape, "ref": ref, "same": same,
                                     **tri[arch, dtype, shape]})
        rows += tensorcore_fused.rows(tmp, archs)   # attention, the BERT FFN and a ResNet-50 conv
    if args.archs or args.title != TITLE:   # this very command line, the Python with triton as PY
        argv = ["PY" if a == args.triton_python else a for a in sys.argv[1:]]
        cmd = " ".join(["scripts/tensorcore_table.py", *(shlex.quote(a) for a in argv)])
    else:
        cmd = "make tensorcore" + (" TRITON_PYTHON=PY" if args.triton_python else "")
    lines = [f"# Tensor cores: {args.title} (static SASS, no GPU)", "",
             f"Generated by `{cmd}` (scripts/tensorcore_table.py; PY: a Python with triton {version})."
             if version else f"Generated by `{cmd}` (scripts/tensorcore_table.py; no Triton given).", "",
             *table(rows), "", NOTES, tensorcore_fused.ATTENTION_NOTES + tensorcore_fused.FFN_NOTES]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
