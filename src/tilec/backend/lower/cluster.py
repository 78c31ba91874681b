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

Rammer's persistent kernels and Grinder's device loops run a kernel's blocks one at a time on virtual block
indices, so a cluster kernel cannot join them as it is. :func:`declustered` gives its exact one-block twin:
rank 0, ``k_share_step = threads`` (each block loads the whole box), each copy phase with its two
cluster barriers one block barrier, and the bytes the lowering modelled for the tile without the cluster
(``bytes_unclustered``).
"""
from __future__ import annotations

import copy
import math

from ...ir.core import Operation, Region
from .builder import linearize, unflatten

# The block's rank, read where it is used: a special register, so re-reading it costs nothing, while a
# variable holding it stays live through the whole kernel (a conv chain went from 245 registers to 255
# and spilled).
RANK = "(int)tl_cluster_rank()"
STEP = "k_share_step"


def declare(kb, threads: int, csize: int) -> None:
    """The stride of the block's share loops."""
    kb.let(STEP, "i32", str(threads * csize))


def share_loop(threads: int) -> tuple:
    """``(start, step)`` of a loop over this block's share of a multicast box."""
    return f"{RANK} * {threads} + threadIdx.x", STEP


def share_barriers(kb, shared: list, threads: int, csize: int) -> None:
    """The barrier after a staging phase: with multicast boxes ``[(name, box dims, padded cols)]``
    (2-D ``name[rows][cols]`` arrays) or ``[(name, n, None)]`` (flat ``name[n]``), the copy of the peers'
    runs between two cluster barriers; a block barrier otherwise."""
    if not shared:
        kb.barrier()
        return
    kb.barrier("cluster")
    for name, dims, cols in shared:
        _gather(kb, name, dims, cols, threads, csize)
    kb.barrier("cluster")


def _gather(kb, name: str, dims, cols, threads: int, csize: int) -> None:
    """Copy the runs of ``name`` that other ranks staged (run ``r`` belongs to rank ``r % csize``)."""
    n = math.prod(dims) if cols is not None else dims
    with kb.loop("k_e", "threadIdx.x", n, step=threads):
        kb.let("k_q", "i32", f"(k_e / {threads}) % {csize}")
        with kb.cond(f"k_q != {RANK}"):
            if cols is None:
                kb.assign(f"{name}[k_e]", f"tl_cluster_map(&{name}[0], k_q)[k_e]")
            else:
                names = [f"k_d{i}" for i in range(len(dims))]
                unflatten(kb, "k_e", names, dims, "i32")
                rows = linearize(names[:-1], dims[:-1]) if len(dims) > 1 else "0"
                col = names[-1] if dims else "0"
                kb.assign(f"{name}[{rows}][{col}]",
                          f"tl_cluster_map(&{name}[0][0], k_q)[({rows}) * {cols} + {col}]")


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
        attrs = {k: v.replace(RANK, "0") if isinstance(v, str) else copy.deepcopy(v)
                 for k, v in op.attributes.items()}
        if op.name == "kernel.let" and attrs["name"] == STEP:
            attrs["value"] = str(threads)
        new = Operation(op.name, attributes=attrs, regions=[Region() for _ in op.regions], loc=op.loc)
        for r_old, r_new in zip(op.regions, new.regions):
            _copy_block(r_old.block, r_new.block, threads)
        dst.append(new)
        i += 1


__all__ = ["declare", "declustered", "share_barriers", "share_loop"]
