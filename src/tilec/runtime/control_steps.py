"""Host-driven control flow in the executor: ``loop`` and ``if`` plan steps (DESIGN §6, before grinder).

The host reads the trip count and the loop condition (or the branch predicate) back from the device: each
read is a device→host sync, counted in RUN.json. A count or condition the plan knows to be constant costs
nothing. Carried values move between the body's yields and its arguments by device-to-device copies.
"""
from __future__ import annotations

import numpy as np


def _read(ex, name: str) -> np.ndarray:
    m = ex._mem[name]
    ex.stats.host_syncs += 1
    return ex.device.read(m.raw, m.offset, m.dtype, m.shape)


def _write(ex, name: str, array, offset: int = 0) -> None:
    m = ex._mem[name]
    ex.device.write(m.raw, m.offset + offset, np.asarray(array).astype(np.dtype(_np(m.dtype)), copy=False))


def _np(dtype: str):
    from ..ir.types import np_dtype
    return np_dtype(dtype)


def _copy(ex, src: str, dst: str, offset: int = 0) -> None:
    """Device-to-device copy of buffer ``src`` into ``dst`` at byte ``offset``."""
    s = ex._mem[src]
    copy = getattr(ex.device, "copy", None)
    if copy is not None:
        copy(s.raw, s.offset, ex._mem[dst].raw, ex._mem[dst].offset + offset, s.nbytes)
    else:
        _write(ex, dst, ex.device.read(s.raw, s.offset, s.dtype, s.shape), offset)
    ex.stats.device_copies += 1


def run_control(ex, s: dict, run_body) -> None:
    """Run one ``loop`` / ``if`` step of executor ``ex``; ``run_body(steps)`` runs a list of steps."""
    if s["kind"] == "if":
        taken = bool(_read(ex, s["cond"]).reshape(-1)[0])
        branch = "then" if taken else "else"
        run_body(s[branch])
        for y, r in zip(s[f"{branch}_yield"], s["outputs"]):
            _copy(ex, y, r)
        return
    trip = s["trip_static"] if s["trip_static"] is not None else int(_read(ex, s["max_trip"]))
    cond = s["cond_init"] if s.get("cond_init") is not None else bool(_read(ex, s["cond"]))
    for src, dst in zip(s["init"], s["args"]):
        _copy(ex, src, dst)
    i = 0
    while i < trip and cond:
        _write(ex, s["iter_arg"], np.asarray(i, np.int64))
        _write(ex, s["cond_arg"], np.asarray(cond))
        run_body(s["body"])
        for y, r in zip(s["scan_yield"], s["scan_results"]):
            _copy(ex, y, r, offset=i * ex._mem[y].nbytes)
        if not s["cond_static"]:
            cond = bool(_read(ex, s["cond_yield"]))  # the per-iteration round trip grinder removes
        _carry(ex, s["yield"], s["args"])
        i += 1
    for a, r in zip(s["args"], s["results"]):
        _copy(ex, a, r)


def _carry(ex, yields: list, args: list) -> None:
    """Yields become the next iteration's arguments. A yield that is itself an argument (a swap) is read
    before any argument is overwritten."""
    if any(y in args and y != a for y, a in zip(yields, args)):
        saved = [ex.device.read(ex._mem[y].raw, ex._mem[y].offset, ex._mem[y].dtype, ex._mem[y].shape).copy()
                 for y in yields]
        for arr, a in zip(saved, args):
            _write(ex, a, arr)
        ex.stats.device_copies += len(args)
        return
    for y, a in zip(yields, args):
        if y != a:
            _copy(ex, y, a)
