"""Welder's ``mlp`` kind on wgmma for f16/bf16 on sm_90 (issue #21, fusion/mlp/wgmma.py): an FFN whose hidden
never leaves the chip, H = e1(X·W1) by SS wgmma per 64-column hidden chunk, packed to A fragments in registers
for Y += H·W2 by RS wgmma, W1/W2 streamed by a TMA producer warpgroup. Run exactly under the emulator against
numpy (f32 math on the same half-precision inputs, the hidden rounded to the model type as the kernel packs
it) for rows not a multiple of the tile, bias + GELU and residual epilogues, K1, N1 and N2 not multiples of
the 64-column boxes, X with two atoms, N2 tiled across blocks, W1 and W2 multicast to a cluster of two row
tiles (and not); bytes equal the model's; the build is
deterministic; ptxas (sm_90a) gives 0 spills
and SASS with HGMMA for both products fed by UTMALDG. Welder keeps the kind where the latency model times it
faster than the two wgmma engine GEMMs and rejects it, by that time alone, where it is slower. sm_80 keeps
the split (tests/welder/test_mlp_half_split.py)."""
from __future__ import annotations

import json
import math
import re
import shutil
import subprocess

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper, save

from tilec.driver import compile_model, run_target
from tilec.ir import print_module, read_ir

ONNX_T = {"f16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16}
TOL = {"f16": 1e-2, "bf16": 5e-2}   # relative to the output's scale: the hidden and Y rounded once each
ERF = np.vectorize(math.erf)


def _round(x, dtype: str) -> np.ndarray:
    """``x`` rounded to f16 / bf16 (nearest even), as f32."""
    if dtype == "f16":
        return np.asarray(x, np.float32).astype(np.float16).astype(np.float32)
    u = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16 << 16).astype(np.uint32).view(np.float32)


def _tensor(name: str, x, dtype: str):
    if dtype == "f16":
        return numpy_helper.from_array(x.astype(np.float16), name)
    bits = (_round(x, dtype).view(np.uint32) >> 16).astype(np.uint16)
    return helper.make_tensor(name, TensorProto.BFLOAT16, x.shape, bits.tobytes(), raw=True)


def _feed(x, dtype: str):
    """``x`` (already rounded) as the model's input type: f16, or bf16 as raw 2-byte records."""
    if dtype == "f16":
        return x.astype(np.float16)
    import ml_dtypes
    return x.astype(ml_dtypes.bfloat16)


ACT = {"Gelu": lambda h: 0.5 * h * (1.0 + ERF(h / math.sqrt(2.0))), "Relu": lambda h: np.maximum(h, 0.0)}


def ffn(path, dtype: str, x_shape: tuple, n1: int, n2: int, act: str, bias2: bool, residual: bool, seed: int = 1):
    """``y = act(x·W1 + b1)·W2 (+ b2) (+ x)`` saved at ``path``; returns (input, numpy reference in f32)."""
    rng = np.random.default_rng(seed)
    k1 = x_shape[-1]
    w1, b1 = _round(rng.standard_normal((k1, n1)) / math.sqrt(k1), dtype), _round(rng.standard_normal(n1), dtype)
    w2, b2 = _round(rng.standard_normal((n1, n2)) / math.sqrt(n1), dtype), _round(rng.standard_normal(n2), dtype)
    x = _round(rng.standard_normal(x_shape), dtype)
    mk = helper.make_node
    nodes = [mk("MatMul", ["x", "w1"], ["h0"]), mk("Add", ["h0", "b1"], ["h1"]), mk(act, ["h1"], ["h"]),
             mk("MatMul", ["h", "w2"], ["y0"])]
    inits = [_tensor("w1", w1, dtype), _tensor("b1", b1, dtype), _tensor("w2", w2, dtype)]
    if bias2:
        nodes.append(mk("Add", [nodes[-1].output[0], "b2"], ["y1"]))
        inits.append(_tensor("b2", b2, dtype))
    if residual:
        nodes.append(mk("Add", [nodes[-1].output[0], "x"], ["y2"]))
    nodes[-1].output[0] = "y"
    t = ONNX_T[dtype]
    graph = helper.make_graph(nodes, "ffn", [helper.make_tensor_value_info("x", t, list(x_shape))],
                              [helper.make_tensor_value_info("y", t, [*x_shape[:-1], n2])], inits)
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]), str(path))
    h = _round(ACT[act](x @ w1 + b1), dtype)   # the kernel packs the hidden to the operand type
    return x, h @ w2 + (b2 if bias2 else 0) + (x if residual else 0)


# (dtype, x shape, N1, N2, activation, bias 2, residual)
CASES = {
    "f16_gelu_rows150": ("f16", (150, 64), 256, 64, "Gelu", True, False),      # 3 row tiles in 2 clusters of 2
    "bf16_relu_residual": ("bf16", (1, 80, 128), 200, 128, "Relu", True, True),  # 2 atoms of X, hidden 200
    "f16_gelu_n2_tiled": ("f16", (64, 64), 512, 128, "Gelu", True, False),     # N2 over column tiles (below)
    "f16_relu_ragged": ("f16", (100, 72), 136, 40, "Relu", True, False),    # K1, N1, N2 past the boxes' ends
}
# Choices narrowed for a case. Column tiles: Welder takes them only where the hidden's round trip outweighs
# re-reading both weights per cluster and recomputing H per tile, which no case small enough to emulate does;
# this case takes them with the kernel's column choices narrowed to 64 (2 tiles of N2 = 128). The ragged case
# runs its 2 row tiles without a cluster (the others with 2 or 3 row tiles multicast W1 and W2 to clusters of 2,
# the 150-row case's last cluster with a padded tile).
PATCH = {"f16_gelu_n2_tiled": {"BNS": (64,)}, "f16_relu_ragged": {"CLUSTERS": (1,)}}
CLUSTERED = ("f16_gelu_rows150", "bf16_relu_residual")


def _mlp_func(build):
    funcs = [op for op in read_ir(str(build / "model.tir")).body.ops if op.name == "kernel.func"]
    assert len(funcs) == 1, [f.attributes.get("kind") for f in funcs]
    return funcs[0]


@pytest.fixture(scope="module", params=sorted(CASES))
def built(request, tmp_path_factory):
    d = tmp_path_factory.mktemp(request.param)
    dtype, x_shape, n1, n2, act, bias2, residual = CASES[request.param]
    x, ref = ffn(d / "m.onnx", dtype, x_shape, n1, n2, act, bias2, residual)
    np.savez(d / "in.npz", x=_feed(x, dtype))
    _compile(d, request.param, d / "b", check_ptx=shutil.which("nvcc") is not None)
    return d, dtype, ref


def _compile(d, case: str, build, **options) -> None:
    from tilec.fusion.mlp import wgmma
    with pytest.MonkeyPatch.context() as mp:
        for name, value in PATCH.get(case, {}).items():
            mp.setattr(wgmma, name, value)
        compile_model(str(d / "m.onnx"), str(build), pipeline="welder", arch="h200", **options)


@pytest.mark.parametrize("order", ["normal", "reverse"])
def test_wgmma_mlp_matches_numpy_with_bytes_as_modelled(built, order):
    d, dtype, ref = built
    if order == "reverse" and not d.name.startswith("bf16"):
        pytest.skip("reverse thread order: one case (CI time)")
    run_target(str(d / "b"), str(d / "in.npz"), str(d / f"o-{order}.npz"), backend="emu",
               report_path=str(d / f"r-{order}.json"), emu_order=order)
    got = np.load(d / f"o-{order}.npz")["y"]
    if got.dtype.kind == "V":   # bf16 comes back as raw 2-byte records: the high half of an f32
        got = (got.view(np.uint16).astype(np.uint32) << 16).view(np.float32)
    np.testing.assert_allclose(got.astype(np.float32), ref, atol=TOL[dtype] * float(np.abs(ref).max()), rtol=0)
    (k,) = json.load(open(d / f"r-{order}.json"))["kernels"]
    assert k["bytes_loaded"] + k["bytes_stored"] == k["bytes_modelled"], k


def test_one_kernel_with_both_products_on_wgmma(built):
    d, dtype, _ = built
    func = _mlp_func(d / "b")
    cfg, src = func.attributes["config"], func.attributes["source"]
    assert func.attributes["kind"] == "mlp" and cfg["engine"] == "wgmma", cfg
    fn = "tl_wgmma_bf16" if dtype == "bf16" else "tl_wgmma_f16"
    assert f"{fn}<64, 0, 1>(k_h" in src and src.count(f"{fn}_rs<{cfg['bn']}, 1>(k_y") == 4
    assert len(func.attributes["tensor_maps"]) == 3 and "tl_cp_async" not in src and "tl_mma_m16n8k16" not in src
    rows, tiles = cfg["tiles"]
    assert func.attributes["grid"][0] == rows * tiles and func.attributes["block"][0] == 128 * (cfg["warpgroups"] + 1)
    if d.name.startswith("f16_gelu_n2_tiled"):
        assert tiles > 1
    clustered = d.name.startswith(CLUSTERED)
    assert cfg["cluster"] == (2 if clustered else 1) and func.attributes.get("cluster", 1) == cfg["cluster"], cfg
    assert ("tl_tma_load_multicast_2d(" in src) == clustered and ("tl_cluster_sync();" in src) == clustered
    if d.name.startswith("f16_relu_ragged"):
        assert rows == 2


def test_ptxas_sm90a_no_spills_hgmma_from_tma(built):
    d, _, _ = built
    if shutil.which("nvcc") is None:
        pytest.skip("nvcc not installed")
    func = _mlp_func(d / "b")
    report = json.load(open(d / "b" / "report.json"))
    assert report["ptxas_checked"]
    (row,) = report["kernels"]
    assert row["ptxas"]["spill_bytes"] == 0 and row["ptxas"]["stack"] == 0, row
    from tilec.backend.inspect_build import find_disassembler
    from tilec.ir.diagnostics import CompileError
    try:
        tool = find_disassembler()
    except CompileError:
        pytest.skip("no cuobjdump/nvdisasm")
    cubin = d / "b" / "kernels" / f"{row['name']}.cubin"
    sass = subprocess.run([tool[1], "-sass" if tool[0] == "cuobjdump" else "-c", str(cubin)],
                          capture_output=True, text=True, check=True).stdout
    assert re.search(r"UTMALDG\.2D", sass) and "LDGSTS" not in sass
    ss = re.findall(r"HGMMA\.64x(\d+)x16\.F32(?:\.BF16)? R\d+, gdesc", sass)
    rs = re.findall(r"HGMMA\.64x(\d+)x16\.F32(?:\.BF16)? R\d+, R\d+, gdesc", sass)
    assert ss == ["64"] * 4 and rs == [str(func.attributes["config"]["bn"])] * 4, (ss, rs)


def test_the_kernel_is_deterministic(built, tmp_path):
    d, _, _ = built
    if not d.name.startswith("f16_relu_ragged"):
        pytest.skip("one case")
    _compile(d, "f16_relu_ragged", tmp_path / "b")
    for name in ("model.tir", "plan.json"):
        assert (tmp_path / "b" / name).read_bytes() == (d / "b" / name).read_bytes(), name


def test_an_expect_tx_mistake_deadlocks_under_the_emulator(built, tmp_path):
    d, _, _ = built
    if not d.name.startswith("f16_gelu_rows150"):
        pytest.skip("one case")
    build = tmp_path / "b"
    shutil.copytree(d / "b", build)
    cu = next((build / "kernels").glob("*.cu"))
    text, n = re.subn(r"(tl_mbarrier_arrive_expect_tx\(&k_full1\[k_s\], )(\d+)", lambda m: f"{m[1]}{int(m[2]) + 1024}",
                      cu.read_text(), count=1)
    assert n == 1
    cu.write_text(text)
    for cubin in (build / "kernels").glob("*.cubin"):
        cubin.unlink()
    with pytest.raises(Exception, match="deadlock"):
        run_target(str(build), str(d / "in.npz"), str(tmp_path / "o.npz"), backend="emu")


def _kinds(tir: str) -> list:
    return re.findall(r'kind = "([a-z_]+)"', tir)


@pytest.mark.parametrize("x_shape,n1,n2,fused", [
    ((4096, 64), 512, 64, True),      # many rows, narrow weights: 5.0 us against 4.3 + 5.1 for the split
    ((128, 512), 4096, 64, False),    # 128 rows: 2 blocks for all the FLOPs; the split's first GEMM fills the SMs
                                      # (modelled 70.0 us against 4.5 + 24.9)
])
def test_welder_keeps_the_kind_only_where_it_models_faster(tmp_path, x_shape, n1, n2, fused):
    """The search's byte score takes the mlp group for both shapes; the welder pass' latency check times it
    against the two wgmma engine GEMMs with their epilogues and keeps it only where it is faster."""
    ffn(tmp_path / "m.onnx", "f16", x_shape, n1, n2, "Relu", True, False)
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), pipeline="welder", arch="h200",
                  dump_dir=str(tmp_path / "dumps"))
    timed = (tmp_path / "dumps" / "08_welder.tir").read_text()
    assert _kinds(timed) == (["mlp"] if fused else ["epilogue", "epilogue"])
    from tilec.passes.welder import Welder   # the same pass without the latency check: the search alone
    module = read_ir(str(tmp_path / "dumps" / "07_roller.tir"))
    Welder(timed=False).apply(module)
    assert _kinds(print_module(module)) == ["mlp"]
