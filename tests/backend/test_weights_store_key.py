"""The weight store's key (``backend/cache.weights_digest``): a digest of the arrays, so a build whose weights are
stored already links them without serialising the .npz again. Same arrays, same key and the same file as
``np.savez`` writes; any change of a name, dtype, shape or byte, another key."""
from __future__ import annotations

import io

import ml_dtypes
import numpy as np
import pytest

from tilec.backend import cache


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    monkeypatch.setenv("TILEC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _arrays():
    rng = np.random.default_rng(3)
    return {"a": rng.standard_normal((4, 3)).astype(np.float32), "b": np.arange(5, dtype=np.int64),
            "c": np.float16(2.5) * np.ones((), np.float16), "d": np.array([True, False]),
            "e": np.ones((2, 2), ml_dtypes.bfloat16)}


def test_the_file_is_what_np_savez_writes(tmp_path, cache_root):
    arrays = _arrays()
    assert cache.place_weights(arrays, tmp_path / "weights.npz")
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    assert (tmp_path / "weights.npz").read_bytes() == buf.getvalue()
    (entry,) = (cache_root / "weights").iterdir()
    assert entry.name == f"{cache.weights_digest(arrays)}.npz"


def test_every_part_of_an_array_is_in_the_key():
    base = cache.weights_digest(_arrays())
    assert cache.weights_digest(_arrays()) == base
    changed = []
    a = _arrays()
    a["a"] = a["a"].copy()
    a["a"][2, 1] = np.nextafter(a["a"][2, 1], np.float32(9))   # one bit
    changed.append(a)
    a = _arrays()
    a["b"] = a["b"].astype(np.float64).view(np.int64)   # other bytes, same dtype
    changed.append(a)
    a = _arrays()
    a["b"] = a["b"].view(np.float64)   # same bytes, another dtype
    changed.append(a)
    a = _arrays()
    a["a"] = a["a"].reshape(3, 4)   # same bytes, another shape
    changed.append(a)
    a = _arrays()
    a["z"] = a.pop("e")   # same arrays, another name
    changed.append(a)
    a = _arrays()
    a["e"] = a["e"].view(np.float16)   # bfloat16 and float16: same bytes and size
    changed.append(a)
    keys = [cache.weights_digest(x) for x in changed]
    assert base not in keys and len(set(keys)) == len(keys)


def test_a_stored_entry_is_linked_without_writing_again(tmp_path, cache_root, monkeypatch):
    arrays = _arrays()
    assert cache.place_weights(arrays, tmp_path / "one.npz")

    def no_write(*args):
        raise AssertionError("the entry exists: nothing to serialise")
    monkeypatch.setattr(cache, "save_npz", no_write)
    assert cache.place_weights(_arrays(), tmp_path / "two.npz")
    assert (tmp_path / "one.npz").stat().st_ino == (tmp_path / "two.npz").stat().st_ino
