"""``tilec inspect``: SASS parsing and the main-loop finder on a fixed cuobjdump/nvdisasm capture
(sass_fixtures/: an mma.sync + cp.async loop, an FFMA loop, a wgmma loop), the issue-bound estimate's
arithmetic, and the command end to end on real builds (samples/mlp.onnx; an f16 GEMM on the sm_80 tensor-core engine)."""
import json
import math
import shutil
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

from tilec.analysis.hardware import get_arch
from tilec.backend import inspect_build, sass
from tilec.cli.main import cli
from tilec.driver import compile_model

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).with_name("sass_fixtures")
needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (CUDA toolkit) is not installed")


def _has_disassembler() -> bool:
    try:
        inspect_build.find_disassembler()
        return True
    except Exception:  # noqa: BLE001 - not installed: those tests skip
        return False


needs_tools = pytest.mark.skipif(not _has_disassembler(), reason="cuobjdump/nvdisasm wheels not installed")


@pytest.fixture(scope="module")
def functions():
    return sass.parse_sass((FIXTURES / "cuobjdump.sass").read_text())


def test_parse_reads_every_function_in_address_order(functions):
    assert set(functions) == {"mma_loop", "ffma_loop", "wgmma_loop"}
    for instrs in functions.values():
        addrs = [i.addr for i in instrs]
        assert addrs == sorted(addrs) and len(set(addrs)) == len(addrs) and addrs[0] == 0
        assert all(a % 16 == 0 for a in addrs)
    ffma = functions["ffma_loop"]
    assert [i.mnemonic for i in ffma if i.opcode == "LDG"] == ["LDG.E.128.CONSTANT"]
    assert sum(i.opcode == "FFMA" for i in ffma) == 4 and sum(i.opcode == "MUFU" for i in ffma) == 1


def test_nvdisasm_labels_give_the_same_instructions_and_targets(functions):
    other = sass.parse_sass((FIXTURES / "nvdisasm.sass").read_text())
    assert set(other) == set(functions)
    for name, instrs in functions.items():
        def key(seq):
            return [(i.addr, i.predicate, i.mnemonic, i.target) for i in seq]
        assert key(other[name]) == key(instrs)
        assert any(i.target is not None for i in instrs)


def test_classes_and_widths(functions):
    by_mnemonic = {i.mnemonic: i for instrs in functions.values() for i in instrs}
    cp = by_mnemonic["LDGSTS.E.BYPASS.128"]
    assert sass.classify(cp) == "cp_async" and sass.width_bits(cp) == 128
    assert sass.width_bits(by_mnemonic["LDSM.16.M88.4"]) == 128
    assert sass.width_bits(by_mnemonic["STG.E"]) == 32
    assert sass.classify(by_mnemonic["DEPBAR.LE"]) == "barrier"
    assert sass.classify(by_mnemonic["MUFU.EX2"]) == "sfu"
    move = next(i for i in functions["ffma_loop"] if i.opcode == "HFMA2")   # HFMA2.MMA R0, -RZ, RZ, 0, 0
    assert sass.classify(move) == "other" and sass.flops(move) == (None, 0)
    pad = next(i for i in functions["mma_loop"] if i.predicate == "@!PT")   # never executes
    assert sass.classify(pad) == "other" and sass.width_bits(pad) == 32


def _one(line: str) -> sass.Instruction:
    (instrs,) = sass.parse_sass(f"Function : f\n        /*0000*/  {line} ;\n").values()
    return instrs[0]


@pytest.mark.parametrize("line,unit,flops", [
    ("HMMA.16816.F32 R12, R152, R156, R12", "f16_tensor", 4096),
    ("HMMA.16816.F32.BF16 R12, R152, R156, R12", "bf16_tensor", 4096),
    ("HMMA.1688.F32.TF32 R12, R152, R156, R12", "tf32_tensor", 2048),
    ("HGMMA.64x256x16.F32 R24, gdesc[UR4], R24, gsb0", "f16_tensor", 131072),   # 64*256*16*2 / 4 warps
    ("FFMA R9, R4, R5, R9", "fp32", 64),
    ("FADD R9, R4, R5", "fp32", 32),
    ("IADD3 R1, R2, R3, RZ", None, 0),
])
def test_flops_per_warp_instruction(line, unit, flops):
    assert sass.flops(_one(line)) == (unit, flops)


def test_main_loop_of_the_mma_kernel(functions):
    instrs = functions["mma_loop"]
    loops = sass.loops(instrs)   # ptxas unrolled the k loop 4 times, then a remainder loop
    loop, m = sass.main_loop(instrs)
    assert len(loops) == 2 and loop == loops[0]
    assert m.tensor == {"HMMA.16816.F32": 16} and m.flops == {"f16_tensor": 16 * 4096}
    assert m.memory["LDGSTS.128"] == 8 and m.memory["LDSM.128"] == 16
    assert m.classes["barrier"] >= 2 and "STG.32" not in m.memory   # the stores are after the loop
    assert m.instructions == (loop.end - loop.start) // 16 + 1
    remainder = sass.mix(i for i in instrs if loops[1].contains(i))
    assert remainder.tensor == {"HMMA.16816.F32": 4} and remainder.memory["LDGSTS.128"] == 2


def test_main_loop_picks_the_unrolled_wgmma_body_over_the_remainder(functions):
    instrs = functions["wgmma_loop"]
    loops = sass.loops(instrs)
    loop, m = sass.main_loop(instrs)
    assert len(loops) == 2 and loop == loops[0]
    assert m.tensor == {"HGMMA.64x64x16.F32": 4} and m.tensor_flops == 4 * 64 * 64 * 16 * 2 // 4
    remainder = sass.mix(i for i in instrs if loops[1].contains(i))
    assert remainder.tensor == {"HGMMA.64x64x16.F32": 1}


def test_main_loop_of_the_ffma_kernel_and_a_kernel_without_one(functions):
    loop, m = sass.main_loop(functions["ffma_loop"])
    assert m.classes["fp32"] == 4 and m.flops == {"fp32": 256} and m.memory == {"LDG.128": 1}
    assert m.classes["sfu"] == 0     # __expf is after the loop
    straight = [i for i in functions["ffma_loop"] if i.opcode != "BRA"]
    assert sass.main_loop(straight) == (None, None)
    # Arithmetic outside the only loop (a staging loop): no main loop; without any arithmetic: that loop.
    text = """Function : f
        /*0000*/  LDG.E R2, desc[UR4][R4.64] ;
        /*0010*/  STS [R3], R2 ;
        /*0020*/  @P1 BRA 0x0 ;
        /*0030*/  FFMA R6, R7, R8, R6 ;
"""
    staged = sass.parse_sass(text)["f"]
    assert sass.main_loop(staged) == (None, None)
    loop, m = sass.main_loop(staged[:3])
    assert loop == sass.Loop(0, 0x20) and m.memory == {"LDG.32": 1, "STS.32": 1}


def test_main_loop_of_a_persistent_kernel_is_its_k_loop_despite_the_epilogue_arithmetic():
    # A persistent tile loop [0x0, 0x90] around a k loop [0x10, 0x40] with all the HGMMA; the tile loop also
    # runs a fused epilogue's FFMA (bias, GELU) once per tile, so it does more FLOPs than the k loop.
    text = """Function : f
        /*0000*/  MOV R1, R2 ;
        /*0010*/  SYNCS.PHASECHK.TRANS64.TRYWAIT P0, [UR4], R3 ;
        /*0020*/  HGMMA.64x128x16.F32 R24, gdesc[UR12], R24, gsb0 ;
        /*0030*/  HGMMA.64x128x16.F32 R24, gdesc[UR16], R24, gsb0 ;
        /*0040*/  @P1 BRA 0x10 ;
        /*0050*/  FFMA R6, R7, R8, R6 ;
        /*0060*/  FFMA R9, R7, R8, R9 ;
        /*0070*/  STG.E [R4.64], R6 ;
        /*0080*/  IADD3 R5, R5, 0x84, RZ ;
        /*0090*/  @P2 BRA 0x0 ;
"""
    instrs = sass.parse_sass(text)["f"]
    loop, m = sass.main_loop(instrs)
    assert loop == sass.Loop(0x10, 0x40)
    assert m.tensor == {"HGMMA.64x128x16.F32": 2} and m.classes["fp32"] == 0 and m.instructions == 4


def test_estimate_is_the_issue_bound(functions):
    spec = get_arch("h200")
    _, m = sass.main_loop(functions["mma_loop"])
    est = inspect_build.estimate(m, spec)
    bound = spec.sm_partitions * m.tensor_flops / m.instructions * spec.num_sms * spec.clock_ghz * 1e9
    assert est["unit"] == "f16_tensor" and est["peak_flops"] == spec.fp16_tensor_flops
    assert math.isclose(est["issue_bound_flops"], bound, rel_tol=1e-9)
    assert math.isclose(est["fraction_of_peak"], min(1.0, bound / spec.fp16_tensor_flops), abs_tol=1e-4)
    _, f = sass.main_loop(functions["ffma_loop"])
    est = inspect_build.estimate(f, spec)
    assert est["unit"] == "fp32" and est["fraction_of_peak"] == pytest.approx(4 / 9, rel=2e-3)
    # A loop of nothing but FFMA issues one per partition per cycle: the fp32 peak (4 x 32 lanes x 2).
    text = "Function : f\n" + "".join(f"  /*{16 * i:04x}*/  FFMA R1, R2, R3, R1 ;\n" for i in range(31))
    text += "  /*01f0*/  @P0 BRA 0x0 ;\n"
    _, pure = sass.main_loop(sass.parse_sass(text)["f"])
    assert inspect_build.estimate(pure, spec)["fraction_of_peak"] == pytest.approx(31 / 32, rel=2e-3)
    assert inspect_build.estimate(None, spec) is None


def _f16_gemm(path: Path, m: int = 128, k: int = 256, n: int = 128) -> None:
    """C = A·B in f16: Roller aligns it to the mma shape, so lower-cuda picks the tensor-core (tiled_mma) kernel."""
    f = TensorProto.FLOAT16
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm",
                              [helper.make_tensor_value_info("a", f, [m, k]),
                               helper.make_tensor_value_info("b", f, [k, n])],
                              [helper.make_tensor_value_info("c", f, [m, n])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    root = tmp_path_factory.mktemp("inspect")
    _f16_gemm(root / "gemm.onnx")
    compile_model(str(ROOT / "samples" / "mlp.onnx"), str(root / "mlp"))
    # a100: the mma.sync engine (HMMA); sm_90's wgmma kernel is inspected in test_wgmma_engine.py
    compile_model(str(root / "gemm.onnx"), str(root / "gemm"), pipeline="roller", arch="a100",
                  check_ptx=shutil.which("nvcc") is not None)   # without nvcc, only the tests needing none run
    return root


def _inspect(*args) -> tuple:
    r = CliRunner().invoke(cli, ["inspect", *map(str, args)])
    return r.exit_code, r.output


@needs_nvcc
@needs_tools
def test_inspect_mlp_finds_ffma_main_loops(builds):
    code, out = _inspect(builds / "mlp", "--json")
    assert code == 0, out
    result = json.loads(out)
    assert result["arch"] == "h200" and result["sm_arch"] == "sm_90"
    names = {p.stem for p in (builds / "mlp" / "kernels").glob("*.cu")}
    assert {k["name"] for k in result["kernels"]} == names
    for k in result["kernels"]:
        loop = k["main_loop"]
        assert k["ptxas"]["registers"] > 0 and k["ptxas"]["spill_bytes"] == 0
        assert loop["classes"]["fp32"] > 0 and "tensor" not in loop["classes"], k["name"]
        assert loop["estimate"]["unit"] == "fp32" and 0 < loop["estimate"]["fraction_of_peak"] <= 1
    assert not list((builds / "mlp" / "kernels").glob("*.cubin"))    # inspect leaves the build as it was
    code, again = _inspect(builds / "mlp", "--json")
    assert code == 0 and again == out                                # deterministic


@needs_nvcc
@needs_tools
def test_inspect_gemm_finds_hmma_in_the_main_loop_without_nvcc(builds, monkeypatch):
    # --check-ptx left K.cubin and ptxas' numbers in the build: inspect needs no nvcc for it.
    monkeypatch.setattr("tilec.backend.ptxas.find_nvcc", lambda: None)
    code, out = _inspect(builds / "gemm", "--json", "--kernel", "k0_matmul")
    assert code == 0, out
    (k,) = json.loads(out)["kernels"]
    report = json.loads((builds / "gemm" / "report.json").read_text())
    assert k["kind"] == "tiled_mma" and k["ptxas"] == report["kernels"][0]["ptxas"]
    loop = k["main_loop"]
    assert any(m.startswith("HMMA.16816") for m in loop["tensor"]) and loop["flops"]["f16_tensor"] > 0
    assert loop["instructions_per_tensor_flop"] == pytest.approx(loop["instructions"] / loop["flops"]["f16_tensor"],
                                                                 rel=1e-3)
    assert loop["estimate"]["unit"] == "f16_tensor" and loop["inner_loops"] < k["loops"]
    code, table = _inspect(builds / "gemm")
    assert code == 0 and "k0_matmul" in table and "HMMA.16816.F32" in table and "f16_tensor" in table


@needs_tools
def test_build_without_cubins_and_without_nvcc_is_a_clean_error(builds, monkeypatch):
    monkeypatch.setattr("tilec.backend.ptxas.find_nvcc", lambda: None)
    code, out = _inspect(builds / "mlp")
    assert code == 1 and "needs nvcc" in out and "Traceback" not in out


def test_missing_disassembler_says_what_to_install(builds, monkeypatch, tmp_path):
    monkeypatch.setattr(inspect_build, "TOOLS", (("no-such-cuobjdump", "no-such-wheel", ("-sass",)),))
    monkeypatch.setenv("PATH", str(tmp_path))
    code, out = _inspect(builds / "mlp")
    assert code == 1 and "pip install nvidia-cuda-cuobjdump" in out and "Traceback" not in out


def test_bad_build_folder_and_unknown_kernel(builds, tmp_path):
    code, out = _inspect(tmp_path)
    assert code == 1 and "not a tilec build folder" in out
    code, out = _inspect(builds / "mlp", "--kernel", "nope")
    assert code == 1 and "no kernel 'nope'" in out


def test_inner_loops_of_the_main_loop_are_counted_once_and_reported():
    # k loop [0x00, 0x60] holding a staging loop [0x10, 0x30]; the FFMAs are in the k loop's body.
    text = """Function : f
        /*0000*/  IADD3 R1, R1, 0x1, RZ ;
        /*0010*/  LDG.E.U16 R2, desc[UR4][R4.64] ;
        /*0020*/  STS.U16 [R3], R2 ;
        /*0030*/  @P1 BRA 0x10 ;
        /*0040*/  FFMA R6, R7, R8, R6 ;
        /*0050*/  FFMA R6, R7, R9, R6 ;
        /*0060*/  @P0 BRA 0x0 ;
        /*0070*/  EXIT ;
        /*0080*/  BRA 0x80;
"""
    instrs = sass.parse_sass(text)["f"]
    assert sass.loops(instrs) == [sass.Loop(0x0, 0x60), sass.Loop(0x10, 0x30)]
    k = inspect_build.inspect_kernel("f", instrs, {}, {}, get_arch("a100"))
    loop = k["main_loop"]
    assert (loop["start"], loop["end"], loop["inner_loops"], loop["instructions"]) == (0x0, 0x60, 1, 7)
    assert loop["memory"] == {"LDG.16": 1, "STS.16": 1} and loop["flops_per_iteration"] == 128
    assert loop["instructions_per_tensor_flop"] is None and loop["estimate"]["unit"] == "fp32"
