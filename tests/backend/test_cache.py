"""The cache (``backend/cache.py``): builds of one model share their weights through the content-addressed
store (issue #19: "two builds of the same model use the weights' disk space once"), the emulator's folder is
bounded, and ``tilec cache --info/--clear`` show and empty it."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tilec.backend import cache
from tilec.cli.main import cli
from tilec.driver import compile_model

ROOT = Path(__file__).resolve().parents[2]
MLP = str(ROOT / "samples" / "mlp.onnx")


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _disk_bytes(paths) -> int:
    """Bytes on disk of ``paths``, each inode counted once (what du reports)."""
    seen = {}
    for p in paths:
        st = os.stat(p)
        seen[(st.st_dev, st.st_ino)] = st.st_size
    return sum(seen.values())


def test_two_builds_store_the_weights_once(tmp_path, cache_root):
    compile_model(MLP, str(tmp_path / "a"))
    compile_model(MLP, str(tmp_path / "b"))
    a, b = tmp_path / "a" / "weights.npz", tmp_path / "b" / "weights.npz"
    assert a.read_bytes() == b.read_bytes()
    assert _disk_bytes([a, b]) == a.stat().st_size   # one copy on disk for both builds
    (entry,) = (cache_root / "weights").iterdir()
    assert entry.stat().st_ino == a.stat().st_ino and entry.stat().st_nlink == 3
    # The build still runs from its own folder, and removing the other build or the store changes nothing.
    import shutil
    shutil.rmtree(tmp_path / "b")
    cache.clear(["weights"])
    with np.load(a) as w:
        assert w.files
    r = CliRunner().invoke(cli, ["run", str(tmp_path / "a"), "--inputs", str(_inputs(tmp_path)), "--outputs",
                                 str(tmp_path / "o.npz"), "--backend", "emu"])
    assert r.exit_code == 0, r.output


def _inputs(tmp_path) -> Path:
    path = tmp_path / "x.npz"
    np.savez(path, x=np.ones((1, 256), np.float32))
    return path


def test_without_a_usable_store_the_build_gets_a_copy(tmp_path, cache_root):
    cache_root.mkdir()
    (cache_root / "weights").write_text("not a folder")   # the store cannot be made
    compile_model(MLP, str(tmp_path / "a"))
    w = tmp_path / "a" / "weights.npz"
    assert w.stat().st_nlink == 1 and w.stat().st_size > 0


def test_prune_keeps_the_newest_and_what_builds_still_link(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    for i in range(5):
        p = folder / f"{i}.bin"
        p.write_bytes(b"x" * 100)
        os.utime(p, (1000 + i, 1000 + i))
    os.link(folder / "0.bin", tmp_path / "held")   # the oldest, but a build links it
    freed = cache.prune(folder, limit=250, keep=cache._linked)
    assert freed == 300 and sorted(p.name for p in folder.iterdir()) == ["0.bin", "4.bin"]   # 200 <= 250


def test_emulator_cache_is_bounded(tmp_path, cache_root, monkeypatch):
    from tilec.backend.emu.module import EmuModule
    kernel = 'extern "C" __global__ void k%d(float* y) { y[threadIdx.x] = %d.0f; }\n'
    EmuModule(kernel % (1, 1))
    units = sorted((cache_root / "emu").glob("*.so"))
    monkeypatch.setenv("TILEC_CACHE_MAX_BYTES", "1")   # every older unit must go
    m = EmuModule(kernel % (2, 2))
    y = np.zeros(4, np.float32)
    m.launch("k2", 1, 4, [y])
    assert np.all(y == 2)
    left = sorted((cache_root / "emu").glob("*.so"))
    assert [p.name for p in left if not p.name.startswith("rt-")] == [m.path.name]
    assert any(p.name.startswith("rt-") for p in left) and len(units) == 2


def test_cache_command(tmp_path, cache_root):
    compile_model(MLP, str(tmp_path / "a"))
    r = CliRunner().invoke(cli, ["cache"])
    assert r.exit_code == 0 and str(cache_root) in r.output and "weights        1 files" in r.output, r.output
    assert CliRunner().invoke(cli, ["cache", "--info"]).output == r.output   # --info is the default
    r = CliRunner().invoke(cli, ["cache", "--clear", "all"])
    assert r.exit_code == 0 and "cleared emu, hipcc, nvrtc, ptxas, weights" in r.output, r.output
    assert not (cache_root / "weights").exists() and (tmp_path / "a" / "weights.npz").is_file()
    assert CliRunner().invoke(cli, ["cache", "--clear", "bogus"]).exit_code == 2


def test_a_folder_vanishing_mid_walk_is_skipped(tmp_path, monkeypatch):
    # Another process renames or removes its temporary folder while this one lists the cache (prune, info).
    (tmp_path / "kept.bin").write_bytes(b"x" * 8)
    (tmp_path / ".tmp123").mkdir()
    (tmp_path / ".tmp123" / "half.o").write_bytes(b"y")
    real = os.scandir

    def vanishing(path="."):
        if str(path).endswith(".tmp123"):
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real(path)
    monkeypatch.setattr(os, "scandir", vanishing)
    assert [p.name for p in cache._files(tmp_path)] == ["kept.bin"]
