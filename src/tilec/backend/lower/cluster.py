"""Thread-block clusters (sm_90) in generated kernels: the multicast staging protocol, and its inverse.

A kernel whose ``kernel.func`` has ``cluster = C`` runs its grid in clusters of ``C`` consecutive blocks
(``__cluster_dims__(C, 1, 1)``). A shared-memory tile that is the same in every block of a cluster (a
*multicast* box: the activation rows of a GEMM tiled along N, the weights of a conv chain tiled along its
rows, the K/V chunks of one attention head) is staged like this:

1. every block loads only its share from global memory: runs ``rank, rank + C, ...`` of ``threads``
   elements (:func:`share_loop`: the loop starts at ``rank * threads + threadIdx.x`` and steps by
   ``k_share_step`` = ``threads * C``);
2. a cluster barrier;
3. every block copies the other runs out of their owners' shared memory (``tl_cluster_map``);
4. a second cluster barrier, so no block overwrites its runs with the next step's before every peer has
   copied them.

The global bytes of the box are then counted once per cluster instead of once per block.

A box that slides along the cluster axis but overlaps its neighbours' (a convolution's input rows with
their halo) is *halo-shared* (:class:`Halo`): each block loads the rows of its core (and the outer halo at
the cluster's ends), and copies the halo rows from the neighbours whose cores hold them, in the same two
barriers. Its rows are then read once per cluster instead of once per block and halo.

Rammer's persistent kernels and Grinder's device loops run a kernel's blocks one at a time on virtual block
indices, so a cluster kernel cannot join them as it is. :func:`declustered` gives its exact one-block twin:
rank 0, ``k_share_step = threads`` and ``k_share_all = 1`` (each block loads the whole box), each copy
phase with its two cluster barriers one block barrier, and the bytes the lowering modelled for the tile
without the cluster (``bytes_unclustered``).
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

from ...ir.core import Operation, Region
from ...ir.kexpr import Binary, Call, Cast, Const, Group, Index, Select, ThreadIdx, Unary, Var, render
from ...ir.kexpr.attrs import expressions
from .builder import linear_index, unflatten

# The block's rank, read where it is used: a special register, so re-reading it costs nothing, while a
# variable holding it stays live through the whole kernel (a conv chain went from 245 registers to 255
# and spilled).
TWIN_SUFFIX = "_nc"   # a twin's name when it joins a module: <cluster kernel>_nc
RANK_EXPR = Cast("int", Call("tl_cluster_rank"))
RANK = render(RANK_EXPR)
STEP = "k_share_step"
ALL = "k_share_all"   # 0 in a cluster kernel; its twin loads every element of a halo-shared box itself


def declare(kb, threads: int, csize: int) -> None:
    """The stride of the block's share loops, and the flag its twin sets to load whole halo boxes."""
    kb.let(STEP, "i32", str(threads * csize))
    kb.let(ALL, "i32", "0")


@dataclass(frozen=True)
class Halo:
    """A box that slides by ``shift`` elements along its dim ``dim`` from one block of the cluster to the
    next (a convolution's input rows: the box is the block's rows plus a halo on each side, ``extent`` in
    all). Block ``r`` owns the ``shift`` elements from ``low`` (its core; the cores of a cluster tile the
    line), plus the halo below the first core (rank 0) and above the last (rank ``csize - 1``); every other
    element of its box is in a neighbour's core, at its coordinate less ``shift`` (the next block) or plus
    ``shift`` (the previous one), and is copied from there."""

    dim: int
    shift: int
    extent: int
    csize: int

    @property
    def low(self) -> int:
        return (self.extent - self.shift) // 2

    def valid(self) -> bool:
        """Only the direct neighbours hold an element of the box, and the boxes overlap."""
        return 0 < self.shift < self.extent and self.low <= self.shift and self.extent - self.low - self.shift <= self.shift

    def owned(self, i: str):
        """The condition (a tree) that this block loads box coordinate ``i`` along ``dim`` itself."""
        lo, hi, last, v = Const(self.low), Const(self.low + self.shift), Const(self.csize - 1), Var(i)
        core = Group(Binary("&&", Binary(">=", v, lo), Binary("<", v, hi)))
        below = Group(Binary("&&", Binary("==", RANK_EXPR, Const(0)), Binary("<", v, lo)))
        above = Group(Binary("&&", Binary("==", RANK_EXPR, last), Binary(">=", v, hi)))
        return Binary("||", Binary("||", Binary("||", Var(ALL), core), below), above)

    def owned_range(self, rank):
        """``(first, count)`` of the owned coordinates along ``dim`` for ``rank`` (numbers or numpy arrays)."""
        first = (rank != 0) * self.low
        end = self.low + self.shift + (rank == self.csize - 1) * (self.extent - self.low - self.shift)
        return first, end - first


def share_loop(threads: int) -> tuple:
    """``(start, step)`` of a loop over this block's share of a multicast box."""
    return Binary("+", Binary("*", RANK_EXPR, Const(threads)), ThreadIdx()), STEP


def share_barriers(kb, shared: list, threads: int, csize: int) -> None:
    """The barrier after a staging phase: with multicast boxes ``[(name, box dims, padded cols)]``
    (2-D ``name[rows][cols]`` arrays) or ``[(name, n, None)]`` (flat ``name[n]``), the copy of the peers'
    runs between two cluster barriers; a block barrier otherwise."""
    if not shared:
        kb.barrier()
        return
    kb.barrier("cluster")
    for name, dims, cols, *halo in shared:
        if halo:
            _gather_halo(kb, name, dims, cols, threads, halo[0])
        else:
            _gather(kb, name, dims, cols, threads, csize)
    kb.barrier("cluster")


def _gather(kb, name: str, dims, cols, threads: int, csize: int) -> None:
    """Copy the runs of ``name`` that other ranks staged (run ``r`` belongs to rank ``r % csize``)."""
    n = math.prod(dims) if cols is not None else dims
    e, q = Var("k_e"), Var("k_q")
    with kb.loop(e.name, ThreadIdx(), n, step=threads):
        kb.let(q.name, "i32", Binary("%", Group(Binary("/", e, Const(threads))), Const(csize)))
        with kb.cond(Binary("!=", q, RANK_EXPR)):
            if cols is None:
                kb.assign(Index(Var(name), e), Index(_peer(name, q, 1), e))
            else:
                names = [f"k_d{i}" for i in range(len(dims))]
                unflatten(kb, e, names, dims, "i32")
                rows = _rows(names, dims)
                col = Var(names[-1]) if dims else Const(0)
                kb.assign(Index(Index(Var(name), rows), col), Index(_peer(name, q, 2), _flat(rows, cols, col)))


def _gather_halo(kb, name: str, dims, cols, threads: int, halo: Halo) -> None:
    """Copy the elements of halo-shared ``name[rows][cols]`` this block does not own from the neighbour
    whose core holds them."""
    d = halo.dim
    hs = Var("k_hs")
    with kb.loop("k_e", ThreadIdx(), math.prod(dims), step=threads):
        names = [f"k_d{i}" for i in range(len(dims))]
        unflatten(kb, "k_e", names, dims, "i32")
        with kb.cond(Unary("!", Group(halo.owned(names[d])))):
            kb.let(hs.name, "i32", Select(Binary("<", Var(names[d]), Const(halo.low)), Const(-1), Const(1)))
            peer = [Var(n) for n in names]
            peer[d] = Group(Binary("-", peer[d], Binary("*", hs, Const(halo.shift))))
            kb.assign(Index(Index(Var(name), _rows(names, dims)), Var(names[-1])),
                      Index(_peer(name, Binary("+", RANK_EXPR, hs), 2), _flat(_rows(peer, dims), cols, peer[-1])))


def _rows(names, dims):
    """The row index of box coordinates ``names`` (all but the last, row-major over ``dims``)."""
    return linear_index(names[:-1], dims[:-1]) if len(dims) > 1 else Const(0)


def _flat(rows, cols: int, col):
    """``(rows) * cols + col``: a 2-D array element's flat offset."""
    return Binary("+", Binary("*", Group(rows), Const(cols)), col)


def _peer(name: str, rank, rank_dims: int):
    """``tl_cluster_map(&name[0]..., rank)``: ``name`` in the shared memory of cluster block ``rank``."""
    first = Var(name)
    for _ in range(rank_dims):
        first = Index(first, Const(0))
    return Call("tl_cluster_map", (Unary("&", first), rank))


def declustered(kernel: Operation) -> Operation | None:
    """The one-block twin of a cluster kernel (same name, same results), or None for a kernel without a
    cluster or one that does not record its bytes without the cluster."""
    a = kernel.attributes
    if a.get("cluster", 1) < 2 or "bytes_unclustered" not in a:
        return None
    threads = math.prod(a["block"])
    attrs = {k: copy.deepcopy(v) for k, v in a.items() if k not in ("cluster", "bytes_unclustered")}
    attrs["bytes_modelled"] = a["bytes_unclustered"]
    twin = Operation(kernel.name, attributes=attrs, regions=[Region()], loc=kernel.loc)
    _copy_block(kernel.regions[0].block, twin.regions[0].block, threads)
    return twin


def _copy_block(src, dst, threads: int) -> None:
    ops = list(src.ops)
    i = 0
    while i < len(ops):
        op = ops[i]
        if op.name == "kernel.barrier" and op.attributes.get("scope") == "cluster":
            # A copy phase: everything up to the next cluster barrier goes, one block barrier stays.
            j = next(k for k in range(i + 1, len(ops))
                     if ops[k].name == "kernel.barrier" and ops[k].attributes.get("scope") == "cluster")
            dst.append(Operation("kernel.barrier"))
            i = j + 1
            continue
        # The twin is its cluster's only block: its rank is 0 wherever an expression reads it.
        trees = dict(expressions(op))
        attrs = {k: render(trees[k], {RANK_EXPR: Const(0)}) if k in trees and isinstance(v, str) else copy.deepcopy(v)
                 for k, v in op.attributes.items()}
        if op.name == "kernel.let" and attrs["name"] == STEP:
            attrs["value"] = str(threads)
        elif op.name == "kernel.let" and attrs["name"] == ALL:
            attrs["value"] = "1"
        new = Operation(op.name, attributes=attrs, regions=[Region() for _ in op.regions], loc=op.loc)
        for r_old, r_new in zip(op.regions, new.regions):
            _copy_block(r_old.block, r_new.block, threads)
        dst.append(new)
        i += 1


__all__ = ["TWIN_SUFFIX", "Halo", "declare", "declustered", "share_barriers", "share_loop"]
