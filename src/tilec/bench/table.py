"""Markdown for ``make bench`` rows (see ``tilec.bench.measure`` for what a row holds)."""
from __future__ import annotations

# A --precision row's error against onnxruntime's f32 outputs may reach this share of the output scale (the
# rounding of the contractions' inputs to the format: tests/precision/checks.py, docs/precision.md).
PRECISION_TOL = {"tf32": 5e-3, "fp16": 1e-2, "bf16": 5e-2}


def _pipeline(r) -> str:
    """The pipeline, and the precision mode of a --precision row (``rammer fp16``)."""
    p = r.get("precision", "fp32")
    return r["pipeline"] if p == "fp32" else f"{r['pipeline']} {p}"


def _mb(n) -> str:
    return "-" if n is None else f"{n / 1e6:.3f}"


def _ratio(a, b) -> str:
    return "-" if a is None or not b else f"{a / b:.2f}"


def _us(x) -> str:
    return "-" if x is None else f"{x:.3g}"


def _err(x) -> str:
    return "-" if x is None else f"{x:.1e}"


def _compile(r) -> str:
    """Total compile seconds, then import / passes / build (ptxas within build) and the slowest pass."""
    if r.get("compile_seconds") is None:
        return "-"
    slow = r.get("slowest_pass")
    tail = f"; {slow[0]} {slow[1]:.2f}" if slow else ""
    ph = r.get("phase_seconds")
    if not ph:  # rows from before phase_seconds existed
        return f"{r['compile_seconds']:.2f} ({r['passes_seconds']:.2f}{tail})"
    return (f"{r['compile_seconds']:.2f} ({ph['import']:.2f} / {r['passes_seconds']:.2f} / {ph['build']:.2f} "
            f"[{ph['ptxas']:.2f}]{tail})")


def _ptx(r) -> tuple:
    p = r.get("ptxas") or {}
    if not p.get("checked"):
        return ("-", "-", "-")
    spill = f"{p['spill_bytes']} B in {p['kernels_spilling']}" if p["spill_bytes"] else "0"
    return (str(p["max_registers"]), str(p["max_smem"]), spill)


def _not_ok(r) -> str:
    """The status cell of a row that did not run through: its status in bold and why (no '|' in a cell)."""
    return f"**{r['status']}**: {r.get('error') or ''}".replace("|", "/")


def _baseline(rows: list, r: dict, key: str):
    """The same model and size under the ``none`` pipeline (one kernel per op): the unfused reference."""
    for b in rows:
        if ((b["model"], b["size"], b["pipeline"], b.get("precision", "fp32")) == (r["model"], r["size"], "none", "fp32")
                and b.get(key)):
            return b[key]
    return None


def _time(r) -> tuple:
    """modelled us, SOL us, x SOL (modelled over the speed of light), DRAM MB (the latency model's bytes)."""
    return (_us(r.get("modelled_us")), _us(r.get("speed_of_light_us")),
            _ratio(r.get("modelled_us"), r.get("speed_of_light_us")), _mb(r.get("dram_bytes")))


def small_table(rows: list, tol: float) -> str:
    head = ("| model | pipeline | status | ops | kernels | launches | compile s (import / passes / build [ptxas]; "
            "slowest pass) | emu MB | lower bound MB | x LB | x none | modelled us | SOL us | x SOL | DRAM MB | "
            "max regs | max smem B | spills | err emu-ort | err numpy-ort |\n" + "|" + " --- |" * 3 + " ---: |" * 17)
    out = [head]
    for r in rows:
        if r.get("status") != "ok":
            status = _not_ok(r)
        else:
            scale = max(1.0, r.get("ref_max_abs") or 0.0)
            limit = max(tol, PRECISION_TOL.get(r.get("precision"), 0.0)) * scale
            bad = [k for k in ("emu_vs_ort", "numpy_vs_ort") if r.get(k) is not None and not r[k] <= limit]
            status = "ok" if not bad else "**wrong**: " + ", ".join(bad)
        b = r.get("measured_bytes")
        out.append("| " + " | ".join([
            r["model"], _pipeline(r), status, str(r.get("ops", "-")), str(r.get("kernels", "-")),
            str(r.get("emu_launches", r.get("launches", "-"))), _compile(r), _mb(b), _mb(r.get("lower_bound_bytes")),
            _ratio(b, r.get("lower_bound_bytes")), _ratio(b, _baseline(rows, r, "measured_bytes")),
            *_time(r), *_ptx(r),
            _err(r.get("emu_vs_ort")), "n/a" if r.get("numpy_error") else _err(r.get("numpy_vs_ort"))]) + " |")
    return "\n".join(out) + "\n"


def full_table(rows: list) -> str:
    head = ("| model | pipeline | status | ops | kernels | launches | compile s (import / passes / build [ptxas]; "
            "slowest pass) | modelled MB | lower bound MB | x LB | x none | modelled us | SOL us | x SOL | DRAM MB | "
            "max regs | max smem B | spills |\n" + "|" + " --- |" * 3 + " ---: |" * 15)
    out = [head]
    for r in rows:
        status = "ok" if r.get("status") == "ok" else _not_ok(r)
        b = r.get("modelled_bytes")
        out.append("| " + " | ".join([
            r["model"], _pipeline(r), status, str(r.get("ops", "-")), str(r.get("kernels", "-")),
            str(r.get("launches", "-")), _compile(r), _mb(b), _mb(r.get("lower_bound_bytes")),
            _ratio(b, r.get("lower_bound_bytes")), _ratio(b, _baseline(rows, r, "modelled_bytes")),
            *_time(r), *_ptx(r)]) + " |")
    return "\n".join(out) + "\n"
