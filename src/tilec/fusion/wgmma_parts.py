"""Pieces the fused kernels on Hopper's warpgroup MMA share (issue #21): attention (``attention/wgmma.py``,
S = Q·Kᵀ then O += P·V with P from registers) and the back-to-back GEMMs (``mlp/wgmma.py``, Y += e1(X·W1)·W2
with the hidden chunk from registers). Both keep their b16 tiles in wgmma's canonical 128-byte-swizzled
layout (64-column atoms, docs/hopper.md) and feed the second product from the first one's accumulators."""
from __future__ import annotations

ATOM = 64             # b16 columns of one 128-byte swizzle atom
SLACK = 1024          # dynamic shared memory is rounded up to a 1024-byte boundary (the swizzle's period)


def k_major_step(rows: int, k: int) -> int:
    """Descriptor increment (16-byte units) to k step ``k`` (a multiple of 16) of a K-major tile whose rows
    run along M/N: ``k``'s atom, then 2 bytes a column inside its 128-byte row."""
    return (k // ATOM * rows * 2 * ATOM + k % ATOM * 2) >> 4


def mn_major_step(k: int) -> int:
    """Descriptor increment (16-byte units) to k step ``k`` of an MN-major tile: 128-byte rows along K."""
    return k * 2 * ATOM >> 4


def pack_a_fragments(acc: str, dst: str, cols: int, conv) -> list:
    """Lines declaring ``unsigned dst[cols / 16][4]`` and filling it from the f32 accumulators ``acc`` of a
    64 x ``cols`` wgmma D fragment, each value converted by ``conv`` (C text -> C text of the b16 type): the
    accumulators of column groups 2j and 2j + 1 are k16 A fragment j of an ``_rs`` wgmma (the register
    layouts of D and of A from registers line up, as FlashAttention-3 uses them)."""
    lines = [f"unsigned {dst}[{cols // 16}][4];", "#pragma unroll", f"for (int j = 0; j < {cols // 16}; ++j) {{"]
    for q in range(4):
        lines.append(f"  {dst}[j][{q}] = tl_pack_b16x2({conv(f'{acc}[8 * j + {2 * q}]' if q else f'{acc}[8 * j]')}, "
                     f"{conv(f'{acc}[8 * j + {2 * q + 1}]')});")
    return lines + ["}"]
