"""Print the operand tables of the prelude's wgmma section (src/tilec/backend/cuda_prelude.h, between the
``gen_wgmma_operands`` markers): for every accumulator count R = N / 2 of wgmma's shapes m64nNk*, the
inline-asm placeholders of R accumulator registers and the operand list binding them.

Inline PTX numbers operands in order, outputs first, and wgmma lists up to 128 accumulators, so each shape
needs its own placeholder string; writing them by hand invites an off-by-one that ptxas would not catch (it
would bind a descriptor to an accumulator). The SS forms put the descriptors and scale-d first (%0-%2,
accumulators from %3, then the transpose immediates); the RS forms put A's 4 registers, B's descriptor and
scale-d first (%0-%5, accumulators from %6, then B's transpose immediate). tests/emu/test_emu_hopper.py checks
that the prelude holds exactly this text.

Usage: python scripts/gen_wgmma_operands.py
"""
from __future__ import annotations

SHAPES = tuple(range(8, 257, 8))   # N of m64nNk16 (f16/bf16) and m64nNk8 (tf32)
BEGIN = "// ---- begin gen_wgmma_operands (scripts/gen_wgmma_operands.py; do not edit by hand)"
END = "// ---- end gen_wgmma_operands"


def placeholders(first: int, lo: int, hi: int) -> str:
    return ", ".join(f"%{first + i}" for i in range(lo, hi))


def table() -> str:
    """The text between (and including) the markers."""
    lines = [BEGIN, "#define TL_WG_SHAPES(X) " + " ".join(f"X({n}, {n // 2})" for n in SHAPES)]
    prev = None
    for n in SHAPES:
        r = n // 2
        lo = prev or 0
        for name, first in (("SS", 3), ("RS", 6)):
            head = f"TL_WG_{name}_P{prev} \", " if prev else '"'
            lines.append(f"#define TL_WG_{name}_P{r} {head}{placeholders(first, lo, r)}\"")
        lines.append(f'#define TL_WG_SS_T{r} "%{r + 3}, %{r + 4}"')
        lines.append(f'#define TL_WG_RS_T{r} "%{r + 6}"')
        regs = ", ".join(f'"+f"(d[{i}])' for i in range(lo, r))
        lines.append(f"#define TL_WG_O{r}(d) " + (f"TL_WG_O{prev}(d), " if prev else "") + regs)
        prev = r
    lines.append(END)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(table(), end="")
