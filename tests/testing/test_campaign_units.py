"""The campaign runner without Ray (``tilec.testing.campaign``, issue #22): content hashes, files named by
their content, and the local executor's order."""
from __future__ import annotations

import argparse
import time

import numpy as np
import pytest

from tilec.testing.campaign import (FileInput, LocalExecutor, Unit, add_ray_argument, content_hash,
                                    executor_for)


def _square(x):
    time.sleep(0.05 * (3 - x))   # later units finish first on two threads
    return x * x


def _read(f):
    return open(f.local(), "rb").read()


def test_content_hash_follows_content_not_identity(tmp_path):
    a = content_hash(_square, (b"model", "ir", 3, {"k": [1.5, None]}, np.arange(4, dtype=np.int32)))
    assert a == content_hash(_square, (b"model", "ir", 3, {"k": [1.5, None]}, np.arange(4, dtype=np.int32)))
    assert a != content_hash(_square, (b"modem", "ir", 3, {"k": [1.5, None]}, np.arange(4, dtype=np.int32)))
    assert a != content_hash(_square, (b"model", "ir", 3, {"k": [1.5, None]}, np.arange(4, dtype=np.int64)))
    assert a != content_hash(_read, (b"model", "ir", 3, {"k": [1.5, None]}, np.arange(4, dtype=np.int32)))
    # a file counts by its bytes: two paths with the same bytes are one input, an edit is another
    (tmp_path / "a.onnx").write_bytes(b"\x08\x07")
    (tmp_path / "b.onnx").write_bytes(b"\x08\x07")
    fa, fb = FileInput.of(tmp_path / "a.onnx"), FileInput.of(tmp_path / "b.onnx")
    assert Unit.of(_read, fa).key == Unit.of(_read, fb).key
    (tmp_path / "b.onnx").write_bytes(b"\x08\x08")
    assert Unit.of(_read, fa).key != Unit.of(_read, FileInput.of(tmp_path / "b.onnx")).key
    with pytest.raises(TypeError, match="no content hash"):
        content_hash(_square, (object(),))


def test_shipped_file_is_checked_by_its_bytes_and_written_once_by_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path / "cache"))
    src = tmp_path / "m.onnx"
    src.write_bytes(b"weights")
    unit = Unit.of(_read, FileInput.of(src))
    shipped = FileInput.of(src).shipped()
    src.unlink()   # a worker on another machine: the path is not there
    assert content_hash(_read, (shipped,)) == unit.key
    assert _read(shipped) == b"weights" and str(tmp_path / "cache") in shipped.local()
    # bytes damaged on the way hash differently: the executor refuses such a result
    bad = FileInput(shipped.path, shipped.sha256, b"weightz")
    assert content_hash(_read, (bad,)) != unit.key


@pytest.mark.parametrize("jobs", [1, 2])
def test_local_executor_returns_unit_order(jobs):
    seen = []
    units = [Unit.of(_square, x) for x in range(4)]
    assert LocalExecutor(jobs).run(units, lambda i, r: seen.append((i, r))) == [0, 1, 4, 9]
    assert sorted(seen) == [(0, 0), (1, 1), (2, 4), (3, 9)]


def test_ray_argument():
    ap = argparse.ArgumentParser()
    add_ray_argument(ap)
    assert ap.parse_args([]).ray is None
    assert ap.parse_args(["--ray"]).ray == "local"
    assert ap.parse_args(["--ray", "auto"]).ray == "auto"
    assert isinstance(executor_for(None, 2), LocalExecutor)


def test_ray_missing_is_a_clean_error(monkeypatch):
    import sys

    from tilec.ir.diagnostics import CompileError
    monkeypatch.setitem(sys.modules, "ray", None)   # import ray -> ImportError, as without the extra
    with pytest.raises(CompileError, match=r'pip install -e "\.\[ray\]"'):
        executor_for("local")
