"""The back-to-back contraction rows of the tensor-core table (issue #17; scripts/tensorcore_table.py calls
:func:`rows`): attention (seq 512 and 4096, 12 heads, d 64 and 128, f16: one welder ``attention`` kernel, on
mma.sync for sm_80 (fusion/attention/mma.py) and on wgmma for sm_90 (fusion/attention/wgmma.py, issue #21),
whose rows also count the main loop's HGMMA by product: S = Q Kᵀ with both operands in shared memory, O += P V
with P from registers) and the BERT-base FFN (1024 tokens, 768 -> 3072 -> 768, f16, bf16 and f32 under --precision fp16: two engine GEMMs with
fused epilogues, GEMM + bias + GELU and GEMM + bias) and ResNet-50's 3x3 conv of its 14x14 stage (256 -> 256
channels, batch 32, f16, + bias + ReLU: an implicit GEMM on the engine, lower/mma_conv.py on sm_80 and
lower/wgmma_conv.py on sm_90), compiled for each arch with --check-ptx and read as `tilec inspect` reads them. No GPU needed.

    .venv/bin/python scripts/tensorcore_fused.py [--out docs/benchmarks/tensorcore-fused-DATE.md]   # rows alone
    .venv/bin/python scripts/tensorcore_fused.py --archs h200 --attention-only --out FILE   # the sm_90 attention
"""
from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tilec.backend.inspect_build import inspect_build
from tilec.driver import compile_model
from tilec.ir import read_ir

sys.path.insert(0, str(Path(__file__).parent))
from tensorcore_cells import (ARCHS, hgmma_by_operand, kernel_cells, mma_sync_shape, persistent, table,  # noqa: E402
                              wgmma_block)

ATTENTION = ((1, 12, 512, 64), (1, 12, 512, 128), (1, 12, 4096, 64), (1, 12, 4096, 128))   # (b, heads, seq, d)
FFN = (1024, 768, 3072)                             # (tokens, hidden, intermediate)
CONV = (32, 256, 14, 256, 3)                        # (batch, channels in, height = width, channels out, kernel)
# The FFN's rows: (dtype column, the model's type, compile options): an f16 and a bf16 model, and an f32 model
# under --precision fp16 (issue #17's "f32 under --precision fp16": weights cast at compile time).
FFN_VARIANTS = (("f16", "f16", {}), ("bf16", "bf16", {}), ("fp16 (f32 model)", "f32", {"precision": "fp16"}))


def attention_model(path: Path, b: int, h: int, s: int, d: int) -> None:
    """softmax(Q Kᵀ / sqrt(d)) V in f16, Kᵀ given as [b, h, d, s] (as exporters leave it after folding)."""
    t = TensorProto.FLOAT16
    ins = [helper.make_tensor_value_info("q", t, [b, h, s, d]), helper.make_tensor_value_info("kt", t, [b, h, d, s]),
           helper.make_tensor_value_info("v", t, [b, h, s, d])]
    nodes = [helper.make_node("MatMul", ["q", "kt"], ["s"]), helper.make_node("Div", ["s", "scale"], ["sd"]),
             helper.make_node("Softmax", ["sd"], ["p"], axis=-1), helper.make_node("MatMul", ["p", "v"], ["o"])]
    init = [numpy_helper.from_array(np.array([math.sqrt(d)], np.float16), "scale")]
    graph = helper.make_graph(nodes, "attention", ins, [helper.make_tensor_value_info("o", t, [b, h, s, d])], init)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _initializer(name: str, value: np.ndarray, dtype: str) -> onnx.TensorProto:
    """``value`` (f64) as an f16, bf16 (rounded to nearest even from f32) or f32 initializer."""
    if dtype == "bf16":
        bits = value.astype(np.float32).view(np.uint32)
        bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
        return helper.make_tensor(name, TensorProto.BFLOAT16, value.shape, bits.tobytes(), raw=True)
    return numpy_helper.from_array(value.astype(np.float16 if dtype == "f16" else np.float32), name)


def ffn_model(path: Path, tokens: int, hidden: int, inner: int, dtype: str = "f16") -> None:
    """BERT's FFN in ``dtype`` (f16, bf16 or f32): (x W1 + b1) -> GELU (erf form, as BERT exports) -> W2 + b2."""
    t = {"f16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16, "f32": TensorProto.FLOAT}[dtype]
    rng = np.random.default_rng(0)
    w = lambda *shape: rng.standard_normal(shape) / math.sqrt(shape[0])  # noqa: E731
    inits = [_initializer("w1", w(hidden, inner), dtype), _initializer("b1", w(inner) * 0, dtype),
             _initializer("w2", w(inner, hidden), dtype), _initializer("b2", w(hidden) * 0, dtype),
             *(_initializer(n, np.array(v), dtype) for n, v in (("sq2", math.sqrt(2.0)), ("one", 1.0), ("half", 0.5)))]
    mk = helper.make_node
    nodes = [mk("MatMul", ["x", "w1"], ["h0"]), mk("Add", ["h0", "b1"], ["h1"]), mk("Div", ["h1", "sq2"], ["g0"]),
             mk("Erf", ["g0"], ["g1"]), mk("Add", ["g1", "one"], ["g2"]), mk("Mul", ["h1", "g2"], ["g3"]),
             mk("Mul", ["g3", "half"], ["g4"]), mk("MatMul", ["g4", "w2"], ["y0"]), mk("Add", ["y0", "b2"], ["y"])]
    graph = helper.make_graph(nodes, "ffn", [helper.make_tensor_value_info("x", t, [tokens, hidden])],
                              [helper.make_tensor_value_info("y", t, [tokens, hidden])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def conv_model(path: Path, n: int, c: int, hw: int, f: int, k: int) -> None:
    """A 'same'-padded k x k convolution + bias + ReLU in f16, NCHW (as ResNet-50 exports)."""
    t, rng = TensorProto.FLOAT16, np.random.default_rng(0)
    inits = [numpy_helper.from_array((rng.standard_normal((f, c, k, k)) / math.sqrt(c * k * k)).astype(np.float16),
                                     "w"), numpy_helper.from_array(rng.standard_normal(f).astype(np.float16), "b")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["t"], kernel_shape=[k, k], pads=[k // 2] * 4),
             helper.make_node("Relu", ["t"], ["y"])]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("x", t, [n, c, hw, hw])],
                              [helper.make_tensor_value_info("y", t, [n, f, hw, hw])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _config(attrs: dict) -> str:
    cfg = attrs.get("config") or {}
    if attrs.get("kind") == "attention" and cfg.get("engine") == "mma_sync":
        w, _ = cfg["warps"]
        return f"attention: {w} warps x 16 rows, {cfg['bk']}-key chunks, {cfg['stages']} stages"
    if attrs.get("kind") == "attention" and cfg.get("engine") == "wgmma":
        feed = "a TMA producer warpgroup" if cfg.get("producer") else f"{cfg['pipeline']}"
        return (f"attention on wgmma: {cfg['warpgroups']} consumer warpgroup(s) x 64 rows, {cfg['bk']}-key "
                f"chunks, {cfg['stages']} stages fed by {feed}"
                + (f", K/V multicast to clusters of {cfg['cluster']} query tiles" if cfg.get("cluster") else ""))
    if cfg.get("engine") == "wgmma" and "implicit_gemm" in cfg:   # lower/wgmma_conv.py (sm_90)
        return (f"{attrs['kind']}: wgmma {wgmma_block(cfg)} + producer (weight by TMA, im2col by cp.async), "
                f"{cfg['stages']} stages"
                + (f", weight multicast to clusters of {cfg['cluster']['N']} pixel tiles" if cfg.get("cluster") else ""))
    if cfg.get("engine") == "wgmma":   # lower/wgmma_engine.py (sm_90)
        return f"{attrs['kind']}: wgmma {wgmma_block(cfg)} + TMA producer{persistent(cfg)}"
    if cfg.get("engine") == "mma_sync":
        m, n, bk, wm, wn = mma_sync_shape(cfg)
        return f"{attrs['kind']}: block {m}x{n}x{bk}, {wm}x{wn} warps, {cfg['stages']} stages"
    return f"{attrs.get('kind')} (CUDA cores)"


def hgmma_products(cubin: Path) -> str:
    """The main loop's HGMMA split by where A comes from: ``"S (SS): n x HGMMA..., P V (RS): m x HGMMA..."``."""
    ss, rs = hgmma_by_operand(cubin)
    return f"S (SS): {ss}; P V (RS): {rs}"


def _build_rows(model: Path, build: Path, arch: str, label: str, **options) -> list:
    compile_model(str(model), str(build), pipeline="welder", arch=arch, check_ptx=True, **options)
    funcs = {op.attributes["sym_name"].name: op.attributes
             for op in read_ir(str(build / "model.tir")).body.ops if op.name == "kernel.func"}
    out = []
    for k in inspect_build(build)["kernels"]:
        loop = k.get("main_loop")
        if not loop or not loop.get("tensor"):
            continue   # a kernel without a tensor-core main loop (a layout copy)
        attrs = funcs.get(k["name"], {})
        row = kernel_cells(k, f"{label}, {_config(attrs)}")
        if (attrs.get("config") or {}).get("engine") == "wgmma" and attrs.get("kind") == "attention":
            row["tensor"] = hgmma_products(build / "kernels" / f"{k['name']}.cubin")
        out.append(row)
    return out


def rows(tmp: Path, archs, ffn: bool = True) -> list:
    """Table rows (``tensorcore_cells.table``'s keys) for the attention (and, with ``ffn``, FFN and conv)
    kernels on each arch."""
    out = []
    for arch in archs:
        for b, h, s, d in ATTENTION:
            model = tmp / f"attention_{s}_{d}.onnx"
            attention_model(model, b, h, s, d)
            for r in _build_rows(model, tmp / f"attention_{s}_{d}_{arch}", arch, f"attention s{s} h{h} d{d}"):
                out.append({"arch": arch, "dtype": "f16", "shape": (h, s, s, d), "ref": None, **r})
        if not ffn:
            continue
        t, hid, inner = FFN
        gemms = (((t, inner, hid), "FFN GEMM1 + bias + GELU"), ((t, hid, inner), "FFN GEMM2 + bias"))
        for label, dtype, options in FFN_VARIANTS:
            model = tmp / f"ffn_{dtype}.onnx"
            ffn_model(model, *FFN, dtype=dtype)
            built = _build_rows(model, tmp / f"ffn_{dtype}_{arch}_{len(options)}", arch, "BERT", **options)
            assert len(built) == len(gemms), f"{label} FFN on {arch}: {len(built)} tensor-core kernels, not 2"
            for r, (shape, what) in zip(built, gemms):
                out.append({"arch": arch, "dtype": label, "shape": shape, "ref": None, **r,
                            "config": r["config"].replace("BERT", what, 1)})
        n, c, hw, f, k = CONV
        conv_model(tmp / "conv.onnx", *CONV)
        label = f"ResNet-50 conv {k}x{k} {c}->{f} {hw}x{hw} batch {n} + bias + ReLU (implicit GEMM)"
        for r in _build_rows(tmp / "conv.onnx", tmp / f"conv_{arch}", arch, label):
            out.append({"arch": arch, "dtype": "f16", "shape": (f, n * hw * hw, c * k * k), "ref": None, **r})
    return out


ATTENTION_NOTES = """## Back-to-back contractions (scripts/tensorcore_fused.py)

- *attention*: `softmax(Q Kᵀ / sqrt(d)) V`, f16, batch 1, 12 heads, seq 512 and 4096 (shape column: heads x
  seq x seq x d). On sm_80 one welder `attention` kernel (fusion/attention/mma.py): per chunk of 64 keys,
  S = Q Kᵀ and O += P V with mma.sync m16n8k16, K/V through a 2-stage cp.async pipeline into swizzled shared memory, ldmatrix
  (.trans for Kᵀ and V), online softmax in f32 on the accumulator fragments (exp2 with log2(e) folded into one
  FFMA), P packed to f16 in registers as the A operand of P V. The main loop is the key-chunk loop: its
  instructions include the softmax (FFMA, MUFU.EX2, FMNMX, shuffles, F2F packs), which a GEMM does not have,
  so its instructions per tensor-core FLOP sit above the GEMM rows'.
- *attention on sm_90* (h200 rows; fusion/attention/wgmma.py, issue #21): 2 warpgroups x 64 query rows per
  block, chunks of 128 keys; S = Q Kᵀ by `wgmma.m64n128k16` with Q and K in 128-byte-swizzled shared memory
  (d / 16 HGMMA per chunk, "SS"), the online softmax on the accumulator registers, P packed to f16 in
  registers and O += P V by `wgmma.m64n{d}k16` with A from registers (128 / 16 = 8 HGMMA per chunk, "RS");
  the tensor-core column splits the main loop's HGMMA by product. Warp-specialised: a producer warpgroup
  loads Q, K and V by TMA (one 64-column box per atom; *UTMALDG (kernel)*, outside the consumers' main
  loop) into two stages on full/empty mbarriers, `setmaxnreg` gives the two consumers 232 registers. The
  softmax does not yet overlap the next chunk's S wgmma (FlashAttention-3's intra-warpgroup pipelining). The a100 rows are the
  mma.sync kernel that h200 builds used before. The main loop's other instructions are the softmax's work
  on each of a thread's 64 scores per chunk (score op, max, FFMA + MUFU.EX2, sum, f16 pack); the wgmma
  kernel's 2^x is `ex2.approx.ftz` alone, where exp2f (the mma.sync kernel's) compiled without -ftz, as
  here, adds a range check and two scalings per score (NVRTC, which builds the kernels a GPU runs, passes
  -ftz=true and drops them).
"""
FFN_NOTES = """- *BERT FFN*: 1024 tokens, 768 -> 3072 -> 768, in three forms: an f16 model, a bf16 model and an f32 model
  compiled with `--precision fp16` (dtype column "fp16 (f32 model)": the weights cast to f16 at compile time,
  the input's cast to f16 a kernel of its own, without tensor cores, so not in the table). The chain splits into two engine GEMMs with fused
  epilogues (GEMM + bias + GELU, then GEMM + bias), not the `mlp` kind's back-to-back kernel: keeping a row
  tile of the 3072-wide hidden on chip needs BM x 3072 f16 in shared memory (BM = 64: 384 KB, over every
  arch's opt-in) or BM x 768 f32 output accumulators in registers (BM = 64: 192 KB, 3/4 of an SM's register
  file) and leaves 1024 / BM = 16 blocks: at most 15% (a100) / 12% (h200) of the SMs. The split pays
  2 x 6.3 MB of hidden traffic, 6.2 us (a100) / 2.6 us (h200) at the specs' DRAM bandwidth (less from L2),
  against 31 / 9.8 us of tensor-core time for 9.7 GFLOP. The `mlp` kind keeps f32 chains
  (fusion/mlp/__init__.py).
- *ResNet-50 conv*: the 3x3 convolution of ResNet-50's 14x14 stage, 256 -> 256 channels, batch 32, f16, with
  its bias and ReLU (shape column: the implicit GEMM's M x N x K = channels out x batch pixels x 9 channels in).
  The `conv-layout` pass gives it a channels-last input (one transpose kernel here, or the producer's
  epilogue in a network; not in the table: no tensor cores) and re-lays the weight out at compile time;
  lower/mma_conv.py runs it on the GEMM's engine, with B's 16-byte cp.async chunks gathered per pixel and
  tap (8 channels, zero-filled in the padding) and bias + ReLU on the accumulators. Its extra main-loop
  instructions over the GEMM rows are the per-k-tile split of k into (tap, channel) and, per chunk, a
  pointer add and a bit test of the pixel's tap mask (computed before the loop, as CUTLASS's optimized
  fprop iterator precomputes its masks). On sm_90 (h200 row; lower/wgmma_conv.py, issue #21) it runs on
  wgmma: the weight by TMA (*UTMALDG (kernel)*), the im2col operand gathered by a producer warpgroup with the
  same cp.async chunks (LDGSTS.128, in the producer's loop, not the main loop) into wgmma's 128-byte swizzle,
  each producer thread arriving on the stage's full mbarrier after its wait_group (TMA's im2col mode is not
  emulated); the consumers' main loop is the GEMM's, HGMMA and barriers only.
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="write the rows and notes as markdown here (else stdout)")
    ap.add_argument("--archs", help="comma-separated archs (default: the tensor-core table's, a100,h200)")
    ap.add_argument("--attention-only", action="store_true", help="no FFN rows")
    args = ap.parse_args()
    archs = args.archs.split(",") if args.archs else list(ARCHS)
    with tempfile.TemporaryDirectory(prefix="tilec-tc-fused-") as d:
        found = rows(Path(d), archs, ffn=not args.attention_only)
    cmd = ("scripts/tensorcore_fused.py" + (f" --archs {args.archs}" if args.archs else "")
           + (" --attention-only" if args.attention_only else "") + (f" --out {args.out}" if args.out else ""))
    what = "attention" if args.attention_only else "attention, the BERT FFN and a ResNet-50 conv"
    lines = [f"# Tensor cores: {what} in f16 on {', '.join(archs)} (static SASS, no GPU)", "",
             f"Generated by `.venv/bin/python {cmd}` (the same rows are in `make tensorcore`'s table).", "",
             *table(found), "", ATTENTION_NOTES if args.attention_only else ATTENTION_NOTES + FFN_NOTES]
    if args.out:
        Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
