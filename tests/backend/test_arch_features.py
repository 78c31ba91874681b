"""Arch-specific kernels (backend/arch_features.py): a kernel marked as using wgmma compiles for sm_90a on an
sm_90 target through every compile path (ptxas' batches, NVRTC, the CuPy loader's cubin), unmarked kernels
keep the target's arch, and NVRTC's supported-arch check takes sm_90a as sm_90."""
from __future__ import annotations

import shutil

import pytest

from tilec.backend import arch_features as af
from tilec.backend.cstyle import prelude_text
from tilec.ir import CompileError

# One wgmma.fence: ptxas refuses it for plain sm_90 ("not supported on .target 'sm_90'").
WGMMA_BODY = """extern "C" __global__ void __launch_bounds__(128) {name}(float* D) {{
  {mark}
  tl_wgmma_fence();
  TL_ST(D, threadIdx.x, 1.0f);
}}
"""


def _source(name: str, marked: bool) -> str:
    return prelude_text() + WGMMA_BODY.format(name=name, mark=af.MARK if marked else "")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path / "cache"))


def test_kernel_arch_follows_the_mark():
    assert af.MARK not in prelude_text()   # the mark must be the kernel's own, not every kernel's
    assert af.kernel_arch("sm_90", _source("k", True)) == "sm_90a"
    assert af.kernel_arch("sm_90a", _source("k", True)) == "sm_90a"
    assert af.kernel_arch("sm_90", _source("k", False)) == "sm_90"
    assert af.kernel_arch("sm_80", _source("k", False)) == "sm_80"
    with pytest.raises(CompileError, match="needs sm_90a; the target is sm_80"):
        af.kernel_arch("sm_80", _source("k", True))
    assert [af.base_arch(a) for a in ("sm_90a", "sm_90", "sm_100f", "gfx90a")] == ["sm_90", "sm_90", "sm_100",
                                                                                   "gfx90a"]
    groups = af.group_by_arch("sm_90", {"a": _source("a", False), "w": _source("w", True),
                                        "b": _source("b", False)})
    assert groups == {"sm_90": ["a", "b"], "sm_90a": ["w"]}


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc")
def test_ptxas_check_compiles_marked_kernels_for_sm_90a(tmp_path):
    from tilec.backend.ptxas import check_kernels, nvcc_compiles_for
    assert nvcc_compiles_for("sm_90a")
    sources = {"plain": _source("plain", False).replace("tl_wgmma_fence();", ""), "wg": _source("wg", True)}
    infos = check_kernels(sources, cubin_dir=tmp_path, sm_arch="sm_90")
    assert set(infos) == {"plain", "wg"} and (tmp_path / "wg.cubin").is_file()
    # The two archs went to different batches: the plain kernel's cubin is not the wgmma one's.
    assert (tmp_path / "plain.cubin").read_bytes() != (tmp_path / "wg.cubin").read_bytes()
    with pytest.raises(CompileError, match="tl_wgmma_fence"):   # unmarked: sm_90 has no wgmma (undefined there)
        check_kernels({"bad": _source("bad", False)}, sm_arch="sm_90")


def test_nvrtc_compiles_marked_kernels_for_sm_90a():
    from tilec.backend.nvrtc import NvrtcRejected, check_kernels, compile_cubin
    from tilec.backend.nvrtc_lib import find_toolchain, library_for
    library_for(find_toolchain(), "sm_90a")   # listed as 90: no "cannot compile for sm_90a"
    assert compile_cubin("wg", _source("wg", True), "sm_90").startswith(b"\x7fELF")   # the CuPy loader's path
    with pytest.raises(NvrtcRejected):
        compile_cubin("bad", _source("bad", False), "sm_90")
    report = check_kernels({"wg": _source("wg", True)}, arch="h100")
    assert report["sm_arch"] == "sm_90" and report["kernels"]["wg"] == {"ok": True, "sm_arch": "sm_90a"}


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="needs nvcc")
def test_ptxas_check_refuses_a_wgmma_pipeline_ptxas_had_to_repair():
    """Accumulators stored before their wgmma's wait: ptxas injects the wait (C7517) and --check-ptx says so."""
    from tilec.backend.ptxas import check_kernels
    # (The engine's kernels, which wait first, pass this check: test_wgmma_engine.py.)
    body = """extern "C" __global__ void __launch_bounds__(128) early(float* D) {{
  {mark}
  TL_SHARED(unsigned char, raw, [2048]);
  float d[4] = {{0.0f, 0.0f, 0.0f, 0.0f}};
  tl_wgmma_fence();
  tl_wgmma_f16<8>(d, tl_wgmma_desc(raw, 16, 128, 0), tl_wgmma_desc(raw + 1024, 16, 128, 0), 1);
  tl_wgmma_commit();
  {store_then_wait}
}}
"""
    bad = body.format(mark=af.MARK, store_then_wait="TL_ST(D, threadIdx.x, d[0]);\n  tl_wgmma_wait<0>();")
    with pytest.raises(CompileError, match=r"repaired the wgmma pipeline of .*C7517"):
        check_kernels({"early": prelude_text() + bad}, sm_arch="sm_90", use_cache=False)
