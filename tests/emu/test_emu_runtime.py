"""The shared runtime library: built once per cache, reused by every kernel module, with per-module and
per-launch state kept apart; the precompiled header and its fallback; batches of sources in one unit."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
import pytest

from tilec.backend.emu import Batch, EmuBuildError, EmuModule, build
from tilec.backend.emu.batch import batchable, shared_bytes
from tilec.backend.emu.module import MAX_SMEM


def _mapped(suffix: str) -> set:
    """Paths of the shared objects mapped into this process whose names end with ``suffix``."""
    lines = Path("/proc/self/maps").read_text().splitlines()
    return {ln.split()[-1] for ln in lines if ln.split()[-1].endswith(suffix)}


def test_runtime_is_built_once_and_shared(tmp_path, source):
    first = EmuModule(source("vadd"), cache_dir=str(tmp_path))
    runtimes = sorted(tmp_path.glob("rt-*.so"))
    assert len(runtimes) == 1
    before = runtimes[0].stat()
    second = EmuModule(source("reduce"), cache_dir=str(tmp_path))
    assert first.path != second.path and not second.from_cache
    after = runtimes[0].stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)   # not rebuilt
    assert sorted(tmp_path.glob("rt-*.so")) == runtimes
    # Both modules run on one loaded copy of it (the loader matches its soname, so a copy from another
    # cache folder with the same key, hence the same bytes, may be the one in use).
    assert len(_mapped(runtimes[0].name)) == 1
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]   # no temporaries left behind


def test_modules_keep_byte_counts_per_launch(load):
    # Two modules on one runtime, launched at once from two Python threads (ctypes drops the GIL): every
    # launch reports exactly its own bytes.
    vadd, red = load("vadd"), load("reduce")
    n = 1000
    a = np.ones(n, np.float32)
    x = np.arange(1024, dtype=np.float32)
    errors: list = []

    def run_vadd():
        for _ in range(20):
            y = np.zeros(n, np.float32)
            st = vadd.launch("vadd", 8, 128, [y, a, a, np.int32(n)])
            if (st.global_load_bytes, st.global_store_bytes) != (8 * n, 4 * n) or not (y == 2).all():
                errors.append(("vadd", st))

    def run_copy():
        for _ in range(20):
            y = np.zeros_like(x)
            st = vadd.launch("copy4", 4, 64, [y, x, np.int32(1024)])
            if (st.global_load_bytes, st.global_store_bytes) != (4096, 4096):
                errors.append(("copy4", st))

    xs = np.ones(16 * 256, np.float32)
    sums, maxes = np.zeros(16, np.float32), np.zeros(16, np.float32)
    threads = [threading.Thread(target=f) for f in (run_vadd, run_copy)]
    for t in threads:
        t.start()
    for _ in range(10):
        st = red.launch("block_reduce", 16, 128, [sums, maxes, xs, 256])
        if (st.global_load_bytes, st.global_store_bytes) != (16 * 256 * 4, 2 * 16 * 4) or not (sums == 256).all():
            errors.append(("reduce", st))
    for t in threads:
        t.join()
    assert not errors


_ARENA = """
extern "C" __global__ void fill(float* Y) {
  TL_SHARED(float, buf, [%d]);
  for (int i = threadIdx.x; i < %d; i += blockDim.x) buf[i] = float(i);
  __syncthreads();
  if (threadIdx.x == 0) TL_ST(Y, blockIdx.x, buf[%d - 1]);
}
"""


def test_tl_shared_totals_are_per_module(tmp_path, source):
    # 48 KiB of TL_SHARED per module (the most a block may declare statically): five modules on one runtime
    # would overflow 227 KiB if they shared one arena total.
    for k in range(5):
        n = 12288 - 4 * k
        m = EmuModule(source("vadd") + _ARENA % (n, n, n), cache_dir=str(tmp_path))
        y = np.zeros(2, np.float32)
        m.launch("fill", 2, 64, [y])
        np.testing.assert_array_equal(y, n - 1)


def test_header_is_precompiled(tmp_path, source):
    EmuModule(source("vadd"), cache_dir=str(tmp_path))
    (inc,) = tmp_path.glob("inc-*")
    assert (inc / "tilec_emu.h").is_file() and (inc / "tilec_emu.h.gch").is_file()


def test_failed_precompile_falls_back_to_the_header(tmp_path, source, monkeypatch):
    cxx = tmp_path / "cxx"
    cxx.write_text('#!/bin/sh\ncase "$*" in *c++-header*) exit 1;; esac\nexec g++ "$@"\n')
    cxx.chmod(0o755)
    monkeypatch.setenv("TILEC_CXX", str(cxx))
    cache = tmp_path / "cache"
    m = EmuModule(source("vadd"), cache_dir=str(cache))
    (inc,) = cache.glob("inc-*")
    assert (inc / "tilec_emu.h").is_file() and not (inc / "tilec_emu.h.gch").exists()
    y = np.zeros(4, np.float32)
    m.launch("vadd", 1, 4, [y, np.ones(4, np.float32), np.ones(4, np.float32), 4])
    np.testing.assert_array_equal(y, 2.0)
    assert build.toolchain_key(str(cxx)) != build.toolchain_key("g++")   # its own runtime, not g++'s


def test_cache_dir_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path))
    assert build.cache_dir() == tmp_path / "emu"
    assert build.cache_dir("/x") == Path("/x")
    monkeypatch.delenv("TILEC_CACHE_DIR")
    assert build.cache_dir() == Path(os.path.expanduser("~")) / ".cache" / "tilec" / "emu"


def test_batch_compiles_sources_together(tmp_path, source):
    batch = Batch(str(tmp_path))
    vadd, red = batch.add(source("vadd"), "vadd.cu"), batch.add(source("reduce"), "reduce.cu")
    assert vadd.kernels == ["vadd", "copy4"] and "block_reduce" in red.kernels   # known before compiling
    y = np.zeros(4, np.float32)
    vadd.launch("vadd", 1, 4, [y, np.ones(4, np.float32), np.ones(4, np.float32), 4])
    np.testing.assert_array_equal(y, 2.0)
    assert red.module() is vadd.module()   # one unit, one g++ call
    assert len([p for p in tmp_path.glob("*.so") if not p.name.startswith("rt-")]) == 1
    sums, maxes = np.zeros(2, np.float32), np.zeros(2, np.float32)
    red.launch("block_reduce", 2, 64, [sums, maxes, np.ones(2 * 64, np.float32), 64])
    np.testing.assert_array_equal(sums, 64.0)


def test_batch_falls_back_so_errors_name_their_kernel(tmp_path, source):
    batch = Batch(str(tmp_path))
    good = batch.add(source("vadd"), "vadd.cu")
    bad = batch.add(source("reduce") + '\nextern "C" __global__ void broken(float* Y) { Y[0] = nope_x; }\n',
                    "broken.cu")
    macro = batch.add("#define N 4\n" + source("half"), "half.cu")   # a macro would leak: compiled alone
    assert not batchable(macro.source) and batchable(good.source)
    with pytest.raises(EmuBuildError, match=r"(?s)g\+\+ failed.*nope_x"):
        bad.launch("broken", 1, 1, [np.zeros(1, np.float32)])
    y = np.zeros(4, np.float32)
    good.launch("vadd", 1, 4, [y, np.ones(4, np.float32), np.ones(4, np.float32), 4])
    np.testing.assert_array_equal(y, 2.0)
    assert good.module() is not macro.module()


def test_batch_splits_so_shared_arrays_fit_one_arena(tmp_path):
    # Every TL_SHARED site of a unit has its own offset in one 227 KiB arena: six kernels of 40 KiB each
    # (static arrays are at most 48 KiB a block) are fine alone, so the batch puts them in two units instead
    # of failing the sixth.
    def kernel(i):
        return (f'extern "C" __global__ void big{i}(float* Y) {{\n  TL_SHARED(float, s, [10240]);\n'
                f'  s[threadIdx.x] = {i}.0f;\n  __syncthreads();\n  Y[threadIdx.x] = s[threadIdx.x];\n}}\n')
    assert shared_bytes(kernel(0)) == 40960 and shared_bytes("TL_SHARED(float, s, [N]);") == MAX_SMEM
    batch = Batch(str(tmp_path))
    lazy = [batch.add(kernel(i), f"big{i}.cu") for i in range(6)]
    for i, k in enumerate(lazy):
        y = np.zeros(4, np.float32)
        k.launch(f"big{i}", 1, 4, [y])
        np.testing.assert_array_equal(y, float(i))
    assert all(k.module() is lazy[0].module() for k in lazy[:5]) and lazy[5].module() is not lazy[0].module()
