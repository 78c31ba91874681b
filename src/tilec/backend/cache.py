"""tilec's on-disk cache (``$TILEC_CACHE_DIR`` or ``~/.cache/tilec``): what is there, how big it may grow,
and the content-addressed weight store that lets builds of one model share their ``weights.npz``.

Folders (each named by what fills it):

- ``ptxas/``, ``nvrtc/``, ``hipcc/``: ``--check-ptx`` / ``--check-nvrtc`` / ``--check-hip`` results per kernel
  source (``backend/ptxas.py``, ``backend/nvrtc.py``, ``backend/hipcc.py``);
- ``emu/``: the emulator's compiled translation units (``backend/emu/build.py``);
- ``weights/``: one read-only ``<sha256>.npz`` per distinct set of weight arrays (the digest of their names,
  dtypes, shapes and bytes, :func:`weights_digest`); a build folder's ``weights.npz`` is a hard link to it, so
  ten builds of BERT store its 420 MB once. Where a link cannot be made (another file system, a read-only
  cache) the build gets its own copy, as before.

Each folder is bounded by ``$TILEC_CACHE_MAX_BYTES`` (default 8 GiB): past it, the least recently written
entries go first; a weights entry still linked from a build (link count > 1) is never removed, since
removing it would free nothing. ``tilec cache --info`` / ``--clear`` show and empty it.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np

KINDS = ("emu", "hipcc", "nvrtc", "ptxas", "weights")
DEFAULT_MAX_BYTES = 8 << 30


def root() -> Path:
    """``$TILEC_CACHE_DIR`` or ``~/.cache/tilec``."""
    return Path(os.environ.get("TILEC_CACHE_DIR") or Path.home() / ".cache" / "tilec")


def max_bytes() -> int:
    """The per-folder bound: ``$TILEC_CACHE_MAX_BYTES`` (bytes), else 8 GiB."""
    try:
        return max(0, int(os.environ.get("TILEC_CACHE_MAX_BYTES", DEFAULT_MAX_BYTES)))
    except ValueError:
        return DEFAULT_MAX_BYTES


def _files(folder: Path) -> list:
    """The regular files under ``folder``. Other processes write and prune the cache at the same time: a
    folder that vanishes mid-walk (another build's temporary one, renamed or removed) is skipped, not an
    error (``Path.rglob`` raised FileNotFoundError there: seen as a crash of a fuzz run beside the tests)."""
    out = []
    for top, _, names in os.walk(folder):   # os.walk ignores folders it can no longer list
        for name in names:
            p = Path(top) / name
            if p.is_file() and not p.is_symlink():
                out.append(p)
    return out


def info() -> dict:
    """``{kind: {"files": n, "bytes": b}}`` for every cache folder, and the root."""
    out = {}
    for kind in KINDS:
        files = _files(root() / kind)
        out[kind] = {"files": len(files), "bytes": sum(_size(p) for p in files)}
    return out


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


def clear(kinds=KINDS) -> int:
    """Remove the named cache folders; returns the bytes freed (a weights file a build still links frees
    nothing: the build keeps it)."""
    freed = 0
    for kind in kinds:
        folder = root() / kind
        freed += sum(_size(p) for p in _files(folder) if not _linked(p))
        shutil.rmtree(folder, ignore_errors=True)
    return freed


def prune(folder: Path, limit: int | None = None, keep=lambda p: False) -> int:
    """Delete the oldest files of ``folder`` (by modification time) until it holds at most ``limit`` bytes;
    ``keep(path)`` protects a file. Returns the bytes freed. A file another process removed first is fine."""
    limit = max_bytes() if limit is None else limit
    files = []
    for p in _files(folder):
        try:
            st = p.stat()
        except OSError:
            continue
        files.append((st.st_mtime, str(p), st.st_size, p))
    total = sum(f[2] for f in files)
    freed = 0
    for _, _, size, p in sorted(files):
        if total - freed <= limit:
            break
        if keep(p):
            continue
        try:
            p.unlink()
            freed += size
        except OSError:
            pass
    return freed


def _linked(p: Path) -> bool:
    try:
        return p.stat().st_nlink > 1
    except OSError:
        return False


def weights_digest(arrays: dict) -> str:
    """The store's key of the weights.npz that ``np.savez`` writes of ``arrays`` (C-contiguous, in order):
    sha256 over numpy's version and each array's name, dtype, shape and bytes, which fix the file's bytes.
    Hashing the arrays, not the file, lets a build whose weights are stored already skip writing the .npz
    (GPT-2: 500 MB serialised, copied and hashed again, about 0.7 s)."""
    h = hashlib.sha256(f"numpy {np.__version__}\n".encode())
    for name, a in arrays.items():
        h.update(repr((name, a.dtype.str, a.dtype.name, a.shape)).encode())
        h.update(a.reshape(-1).view(np.uint8))   # no copy: every array is C-contiguous here
    return h.hexdigest()[:40]


def save_npz(path: Path, arrays: dict) -> None:
    """``np.savez`` of ``arrays`` at ``path`` through a temporary file in its folder and a rename, so readers
    never see half a file."""
    from ..ir.weights import atomic_write
    atomic_write(path, lambda f: np.savez(f, **arrays))


def place_weights(arrays: dict, target: Path) -> bool:
    """Put the weights.npz of ``arrays`` (C-contiguous, in the order to store them) at ``target`` as a hard
    link to the store's copy, written only when the store has none; True when linked, False when it was
    written as a plain file instead (no store, another file system)."""
    store = root() / "weights"
    entry = store / f"{weights_digest(arrays)}.npz"
    try:
        if not entry.is_file():   # entries appear by rename only: one that exists is whole
            save_npz(entry, arrays)
            os.chmod(entry, 0o444)   # shared by every build that links it: nobody may edit it in place
            prune(store, keep=_linked)
        tmp = target.with_name(f".{target.name}.link")
        if tmp.exists():
            tmp.unlink()
        os.link(entry, tmp)
        os.replace(tmp, target)
        os.utime(entry)   # recently used: pruned last
        return True
    except OSError:
        save_npz(target, arrays)
        return False
