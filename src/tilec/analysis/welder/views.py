"""Fold view ops (reshape, unsqueeze, squeeze, flatten) into the index maps of the elementwise computes that
read them, so that the tile-graph sees the real producer/consumer edge behind a view (DESIGN §4).

A view only renames the coordinates of contiguous row-major data. When every dim of the view's *source*
is a run of consecutive view dims (a split such as ``128x768 -> 128x12x64``, or size-1 dims added or
dropped), a read ``V[i, j, k]`` of the view is the affine read ``S[i, j*64 + k]`` of the source. A merge
(``12x64 -> 768``) needs ``/`` and ``%`` and is left alone, as is any index that may fall outside the view
(its out-of-bounds ``pad`` semantics would change). The fold moves no data and adds no kernel: it only
lets, e.g., a transpose behind a reshape join the epilogue of the matmul that produced the reshaped value.
"""
from __future__ import annotations

from ...ir.texpr import parse_texpr
from ...ir.texpr.affine import to_affine
from ...ir.texpr.nodes import Access, Binary, Num, rewrite


def _runs(view_shape: tuple, src_shape: tuple) -> list | None:
    """For each source dim, the view dims (positions, size-1 dims skipped) whose product it is, or None."""
    dims = [i for i, d in enumerate(view_shape) if d != 1]
    runs, at = [], 0
    for size in src_shape:
        run, prod = [], 1
        if size != 1:
            while at < len(dims) and prod < size:
                run.append(dims[at])
                prod *= view_shape[dims[at]]
                at += 1
            if prod != size:
                return None   # a merge of source dims (or no match): not affine
        runs.append(run)
    return runs if at == len(dims) else None


def _fold_index(indices: tuple, view_shape: tuple, runs: list) -> tuple:
    out = []
    for run in runs:
        node, stride = None, 1
        for pos in reversed(run):
            term = indices[pos] if stride == 1 else Binary("*", indices[pos], Num(stride))
            node = term if node is None else Binary("+", term, node)
            stride *= view_shape[pos]
        out.append(node if node is not None else Num(0))
    return tuple(out)


def _in_bounds(indices: tuple, shape: tuple, extents: dict) -> bool:
    for ix, dim in zip(indices, shape):
        aff = to_affine(ix)
        if aff is None:
            return False
        lo, hi = aff.bounds({a: (0, extents[a]) for a, _ in aff.coeffs})
        if lo < 0 or hi >= dim:
            return False
    return True


def fold_views(block) -> int:
    """Rewrite every elementwise ``tile.compute`` in ``block`` that reads a view to read the view's source
    where the composed index is affine and in bounds; drop views left unused. Returns the folds made."""
    from ...ir.opspec import is_view
    folds = 0
    for op in list(block.ops):
        if op.name != "tile.compute":
            continue
        expr = parse_texpr(op.attributes["expr"])
        if expr.combiner is not None:
            continue   # contractions keep their tiled loads as Roller planned them
        shapes = [tuple(v.type.shape) for v in op.operands]
        extents = dict(expr.axis_extents(shapes, tuple(op.result.type.shape), op.attributes.get("axes")))
        changed = False
        for pos, (name, value) in enumerate(zip(expr.inputs, op.operands)):
            view = value.defining_op
            if view is None or not is_view(view) or view.parent is not block:
                continue
            vshape, src = tuple(value.type.shape), view.operands[0]
            runs = _runs(vshape, tuple(src.type.shape))
            accs = [a for a in expr.accesses if a.tensor == name]
            if runs is None or not all(_in_bounds(a.indices, vshape, extents) for a in accs):
                continue
            body = rewrite(expr.body, lambda n: Access(n.tensor, _fold_index(n.indices, vshape, runs))
                           if isinstance(n, Access) and n.tensor == name else None)
            expr = parse_texpr(str(type(expr)(expr.output, expr.out_axes, expr.combiner, body)))
            op.set_operand(pos, src)
            changed = True
            folds += 1
            if not value.uses:
                view.erase()
        if changed:
            op.attributes["expr"] = str(expr)
    return folds
