"""What the tensor-core tables share (issue #17): the GEMM table (scripts/tensorcore_table.py) and its
back-to-back contraction rows (scripts/tensorcore_fused.py) read a kernel the same way: the engine's shape
from its ``kernel.func`` config, ptxas' resources and the static main loop from ``tilec inspect``, and one
Markdown table. A module of its own because the table imports the fused rows: the fused script importing the
table back made a cycle.
"""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from tilec.backend import sass
from tilec.backend.inspect_build import disassemble, find_disassembler

ARCHS = {"a100": 80, "h200": 90}   # the tables' default archs: name -> compute capability


def mma_sync_shape(cfg: dict) -> tuple:
    """``(m, n, bk, warps_m, warps_n)`` of an mma.sync engine kernel's config (block over batch.., m, n)."""
    *_, m, n = cfg["block"].values()   # the output axes in order: batch.., m, n
    (bk,) = cfg["step"].values()
    wm, wn = cfg["warps"]
    return m, n, bk, wm, wn


def wgmma_block(cfg: dict) -> str:
    """``"block BMxBNx64, W consumer warpgroup(s)"`` of a wgmma engine kernel's config (GEMM or conv)."""
    bm, bn = cfg["tile"]
    return f"block {bm}x{bn}x64, {cfg['warpgroups'][0]} consumer warpgroup(s)"


def persistent(cfg: dict) -> str:
    """``", persistent: B blocks over T tiles"`` for a persistent wgmma launch (config.persistent), then
    ``", A multicast to clusters of C along N"`` (B: along M) for a multicast one (config.cluster and
    config.multicast); "" for neither."""
    p, c, shared = cfg.get("persistent"), cfg.get("cluster"), cfg.get("multicast", "A")
    text = f", persistent: {p['blocks']} blocks over {p['tiles']} tiles" if p else ""
    along = "N" if shared == "A" else "M"
    return text + (f", {shared} multicast to clusters of {max(c.values())} along {along}" if c else "")


# An HGMMA whose A operand is a register (``HGMMA.64xNx16.F32[.BF16] Rd, Ra, gdesc[..]``): a product whose A
# is the previous product's result kept in registers (attention's P V, the mlp kind's H W2).
_HGMMA_RS = re.compile(r"^R\d+, R\d+, gdesc")


def hgmma_by_operand(cubin: Path) -> tuple:
    """The main loop's HGMMA of a one-kernel ``cubin`` as ``(SS, RS)`` texts (``"8 HGMMA.64x128x16.F32"``, or
    "none"): A from shared memory, A from registers."""
    (instrs,) = disassemble(cubin, find_disassembler()).values()
    lp, _ = sass.main_loop(instrs)
    hg = [i for i in instrs if lp is not None and lp.contains(i) and i.opcode == "HGMMA"]
    rs = [i for i in hg if _HGMMA_RS.match(i.operands)]
    return _count_text([i for i in hg if i not in rs]), _count_text(rs)


def _count_text(instrs) -> str:
    return ", ".join(f"{n} {m}" for m, n in sorted(Counter(i.mnemonic for i in instrs).items())) or "none"


def loop_cells(loop: dict) -> dict:
    """The table's cells of one main loop (``tilec inspect``'s ``main_loop``, or Triton's read the same way)."""
    mem = loop["memory"]
    return {"loop": loop["instructions"], "tensor": ", ".join(f"{v} {t}" for t, v in loop["tensor"].items()),
            "ldgsts": mem.get("LDGSTS.128", 0), "ldsm": mem.get("LDSM.128", 0),
            "other_loads": ", ".join(f"{v} {t}" for t, v in mem.items() if t not in ("LDGSTS.128", "LDSM.128")) or "-",
            "ipf": loop["instructions_per_tensor_flop"] or loop["instructions"] / max(1, sum(
                v for u, v in loop["flops"].items() if u.endswith("_tensor")))}


def kernel_cells(kern: dict, config: str) -> dict:
    """A tilec kernel's row (but arch, dtype and shape) from its ``tilec inspect`` record and its config text."""
    loop = kern["main_loop"]
    return {"system": "tilec", "config": config, "regs": kern["ptxas"]["registers"],
            "spill": kern["ptxas"]["spill_bytes"], **loop_cells(loop),
            "tma": kern["kernel_mix"]["memory"].get("UTMALDG", 0),   # the whole kernel's TMA boxes
            "bound": (loop.get("estimate") or {}).get("fraction_of_peak")}


def table(rows: list) -> list:
    """The Markdown lines of ``rows`` (``ref``/``same``: Triton's instructions per tensor-core FLOP, or None)."""
    head = ["arch", "dtype", "M x N x K", "system", "kernel", "regs", "spill B", "main loop", "tensor-core",
            "LDGSTS.128", "LDSM.128", "other loads", "UTMALDG (kernel)", "ins / TC FLOP", "issue bound",
            "vs Triton sm_80", "vs Triton same arch"]
    out = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        bound = r.get("bound")
        cells = [r["arch"], r["dtype"], "x".join(map(str, r["shape"])), r["system"], r["config"], r["regs"],
                 r["spill"], r["loop"], r["tensor"], r["ldgsts"], r["ldsm"], r["other_loads"], r.get("tma", "-"),
                 f"{r['ipf']:.3g}", f"{bound:.0%}" if bound is not None else "-",
                 f"{r['ipf'] / r['ref']:.2f}x" if r.get("ref") else "-",
                 f"{r['ipf'] / r['same']:.2f}x" if r.get("same") else "-"]
        out.append("| " + " | ".join(str(c) for c in cells) + " |")
    return out
