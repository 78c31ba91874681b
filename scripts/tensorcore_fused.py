"""The back-to-back contraction rows of the tensor-core table (issue #17; scripts/tensorcore_table.py calls
:func:`rows`): attention (seq 512, 12 heads, d 64 and 128, f16: one welder ``attention`` kernel on mma.sync,
fusion/attention/mma.py) and the BERT-base FFN (1024 tokens, 768 -> 3072 -> 768, f16: two engine GEMMs with
fused epilogues, GEMM + bias + GELU and GEMM + bias), compiled for each arch with --check-ptx and read as
`tilec inspect` reads them. No GPU needed.

    .venv/bin/python scripts/tensorcore_fused.py [--out docs/benchmarks/tensorcore-fused-DATE.md]   # rows alone
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

ATTENTION = ((1, 12, 512, 64), (1, 12, 512, 128))   # (batch, heads, seq, head dim)
FFN = (1024, 768, 3072)                             # (tokens, hidden, intermediate)


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


def ffn_model(path: Path, tokens: int, hidden: int, inner: int) -> None:
    """BERT's FFN in f16: (x W1 + b1) -> GELU (erf form, as BERT exports) -> W2 + b2."""
    t, rng = TensorProto.FLOAT16, np.random.default_rng(0)
    w = lambda *shape: (rng.standard_normal(shape) / math.sqrt(shape[0])).astype(np.float16)  # noqa: E731
    inits = [numpy_helper.from_array(w(hidden, inner), "w1"), numpy_helper.from_array(w(inner) * 0, "b1"),
             numpy_helper.from_array(w(inner, hidden), "w2"), numpy_helper.from_array(w(hidden) * 0, "b2"),
             *(numpy_helper.from_array(np.array(v, np.float16), n) for n, v in
               (("sq2", math.sqrt(2.0)), ("one", 1.0), ("half", 0.5)))]
    mk = helper.make_node
    nodes = [mk("MatMul", ["x", "w1"], ["h0"]), mk("Add", ["h0", "b1"], ["h1"]), mk("Div", ["h1", "sq2"], ["g0"]),
             mk("Erf", ["g0"], ["g1"]), mk("Add", ["g1", "one"], ["g2"]), mk("Mul", ["h1", "g2"], ["g3"]),
             mk("Mul", ["g3", "half"], ["g4"]), mk("MatMul", ["g4", "w2"], ["y0"]), mk("Add", ["y0", "b2"], ["y"])]
    graph = helper.make_graph(nodes, "ffn", [helper.make_tensor_value_info("x", t, [tokens, hidden])],
                              [helper.make_tensor_value_info("y", t, [tokens, hidden])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _config(attrs: dict) -> str:
    cfg = attrs.get("config") or {}
    if attrs.get("kind") == "attention" and cfg.get("engine") == "mma_sync":
        w, _ = cfg["warps"]
        return f"attention: {w} warps x 16 rows, {cfg['bk']}-key chunks, {cfg['stages']} stages"
    if cfg.get("engine") == "mma_sync":
        *_, m, n = cfg["block"].values()
        (bk,) = cfg["step"].values()
        wm, wn = cfg["warps"]
        return f"{attrs['kind']}: block {m}x{n}x{bk}, {wm}x{wn} warps, {cfg['stages']} stages"
    return f"{attrs.get('kind')} (CUDA cores)"


def _build_rows(model: Path, build: Path, arch: str, label: str, cells) -> list:
    compile_model(str(model), str(build), pipeline="welder", arch=arch, check_ptx=True)
    funcs = {op.attributes["sym_name"].name: op.attributes
             for op in read_ir(str(build / "model.tir")).body.ops if op.name == "kernel.func"}
    out = []
    for k in inspect_build(build)["kernels"]:
        loop = k.get("main_loop")
        if not loop or not loop.get("tensor"):
            continue   # a kernel without a tensor-core main loop (a layout copy)
        out.append({"system": "tilec", "config": f"{label}, {_config(funcs.get(k['name'], {}))}",
                    "regs": k["ptxas"]["registers"], "spill": k["ptxas"]["spill_bytes"], **cells(loop)})
    return out


def rows(tmp: Path, archs, cells) -> list:
    """Table rows (``tensorcore_table.table``'s keys) for the attention and FFN kernels on each arch;
    ``cells(main_loop) -> dict`` is the table's own cell formatter."""
    out = []
    for arch in archs:
        for b, h, s, d in ATTENTION:
            model = tmp / f"attention_{s}_{d}.onnx"
            attention_model(model, b, h, s, d)
            for r in _build_rows(model, tmp / f"attention_{s}_{d}_{arch}", arch, f"attention s{s} h{h} d{d}", cells):
                out.append({"arch": arch, "dtype": "f16", "shape": (h, s, s, d), "ref": None, **r})
        model = tmp / "ffn.onnx"
        ffn_model(model, *FFN)
        t, hid, inner = FFN
        gemms = (((t, inner, hid), "FFN GEMM1 + bias + GELU"), ((t, hid, inner), "FFN GEMM2 + bias"))
        for r, (shape, what) in zip(_build_rows(model, tmp / f"ffn_{arch}", arch, "BERT", cells), gemms):
            out.append({"arch": arch, "dtype": "f16", "shape": shape, "ref": None, **r,
                        "config": r["config"].replace("BERT", what, 1)})
    return out


NOTES = """## Back-to-back contractions (scripts/tensorcore_fused.py)

- *attention*: `softmax(Q Kᵀ / sqrt(d)) V`, f16, batch 1, 12 heads, seq 512 (shape column: heads x seq x seq
  x d). One welder `attention` kernel (fusion/attention/mma.py): per chunk of 64 keys, S = Q Kᵀ and O += P V
  with mma.sync m16n8k16, K/V through a 2-stage cp.async pipeline into swizzled shared memory, ldmatrix
  (.trans for Kᵀ and V), online softmax in f32 on the accumulator fragments (exp2 with log2(e) folded into one
  FFMA), P packed to f16 in registers as the A operand of P V. The main loop is the key-chunk loop: its
  instructions include the softmax (FFMA, MUFU.EX2, FMNMX, shuffles, F2F packs), which a GEMM does not have,
  so its instructions per tensor-core FLOP sit above the GEMM rows'.
- *BERT FFN*: 1024 tokens, 768 -> 3072 -> 768, f16. The chain splits into two engine GEMMs with fused
  epilogues (GEMM + bias + GELU, then GEMM + bias), not the `mlp` kind's back-to-back kernel: keeping a row
  tile of the 3072-wide hidden on chip needs BM x 3072 f16 in shared memory (BM = 64: 384 KB, over every
  arch's opt-in) or BM x 768 f32 output accumulators in registers (BM = 64: 192 KB, 3/4 of an SM's register
  file) and leaves 1024 / BM = 16 blocks: at most 15% (a100) / 12% (h200) of the SMs. The split pays
  2 x 6.3 MB of hidden traffic, 6.2 us (a100) / 2.6 us (h200) at the specs' DRAM bandwidth (less from L2),
  against 31 / 9.8 us of tensor-core time for 9.7 GFLOP. The `mlp` kind keeps f32 chains
  (fusion/mlp/__init__.py).
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="write the rows and notes as markdown here (else stdout)")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    from tensorcore_table import ARCHS, loop_cells, table
    with tempfile.TemporaryDirectory(prefix="tilec-tc-fused-") as d:
        found = rows(Path(d), list(ARCHS), loop_cells)
    cmd = "scripts/tensorcore_fused.py" + (f" --out {args.out}" if args.out else "")
    lines = ["# Tensor cores: attention and the BERT FFN in f16 (static SASS, no GPU)", "",
             f"Generated by `.venv/bin/python {cmd}` (the same rows are in `make tensorcore`'s table).", "",
             *table(found), "", NOTES]
    if args.out:
        Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
