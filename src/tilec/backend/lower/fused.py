"""The context a welder ``tile.kernel`` is lowered through (:class:`FusedContext`, used by every fusion
pattern's kernel in ``tilec.fusion``): the anchor op (the first member of a ``tile.kernel``) is lowered by its
own kernel kind (elementwise, reduce or tiled), and every other member, an elementwise op of the anchor's
shape, is evaluated in the anchor's store epilogue at the same output coordinates. Internal values live in registers (``k_f<i>`` locals); only the kernel's outputs are stored.
Behind a tiled anchor, an outside operand the block reads far fewer elements of than it has outputs (a
per-channel bias or BN scale broadcast over the tile) is staged in shared memory once per block, before the
epilogue, instead of being loaded again for every output element.

Kernel params are ``in<i>`` for the ``tile.kernel`` operands and ``out<j>`` for its results."""
from __future__ import annotations

import math

import numpy as np

from ...analysis.index_map import grid_sum
from ...ir.types import itemsize
from ..cstyle import compute_dtype
from .context import ComputeContext


def kernel_parts(kernel) -> tuple:
    """``(member computes, block args, yielded values)`` of a ``tile.kernel``."""
    body = kernel.regions[0].block
    members = [op for op in body.ops if op.name == "tile.compute"]
    return members, list(body.args), list(body.terminator.operands)


def kernel_params(kernel) -> list:
    _, args, outs = kernel_parts(kernel)
    params = [{"name": f"in{i}", "dtype": a.type.dtype, "role": "in", "shape": list(a.type.shape)}
              for i, a in enumerate(args)]
    params += [{"name": f"out{j}", "dtype": v.type.dtype, "role": "out", "shape": list(v.type.shape)}
               for j, v in enumerate(outs)]
    return params


def bind_names(ctx: ComputeContext, op, args: list) -> None:
    """Point ``ctx``'s texpr inputs that read kernel operands at their ``in<i>`` params."""
    for t, v in zip(ctx.expr.inputs, op.operands):
        for i, a in enumerate(args):
            if v is a:
                ctx.names[t] = f"in{i}"


class SharedStager:
    """A kernel builder whose ``store`` of a result lands in a shared-memory slot (``target``) instead: a
    fused kernel keeps the value on chip (a pooling tail's ``k_red`` tile, the mlp kernel's hidden ``k_h``)."""

    def __init__(self, kb, target):
        self._kb, self._target = kb, target

    def __getattr__(self, name):
        return getattr(self._kb, name)

    def store(self, buffer, index, value, pred=None, vec=1):
        self._kb.assign(self._target, value)


class FusedContext(ComputeContext):
    """The anchor's context, with the kernel's params and an epilogue that evaluates the other members."""

    fused = True

    def __init__(self, kernel):
        self.members, self.args, self.outs = kernel_parts(kernel)
        super().__init__(self.members[0])
        self.kernel = kernel
        bind_names(self, self.members[0], self.args)
        self.tails = []
        for m in self.members[1:]:
            mctx = ComputeContext(m)
            bind_names(mctx, m, self.args)
            self.tails.append(mctx)
        self.out_name = "out_unused"
        # Layout members (transposes ending the chain) store the anchor-coordinate element elsewhere.
        from ...analysis.welder.graph import TileGraph, permuting_layout
        graph = TileGraph(kernel.regions[0].block)
        self.layouts = {i: permuting_layout(graph.nodes[i]) for i in range(1, len(self.members))
                        if 0 in graph.nodes[i].producers and permuting_layout(graph.nodes[i]) is not None}
        self.staged: dict = {}     # (member, access key) -> (smem name, box, origins) once staged
        self.cfg = None

    def params(self) -> list:
        return kernel_params(self.kernel)

    def store_result(self, kb, index: str, value: str, pred: str | None = None) -> None:
        with kb.cond(pred or ""):
            kb.let("k_f0", self.acc_dtype, value)
            vals = {id(self.members[0].result): "k_f0"}
            index_of = {}
            for i, (m, mctx) in enumerate(zip(self.members[1:], self.tails), start=1):
                if i in self.layouts:
                    vals[id(m.result)] = vals[id(m.operands[0])]
                    index_of[id(m.result)] = self._layout_index(m, self.layouts[i])
                    continue
                axis = self._axis_names(mctx)
                names = {}
                for j, acc in enumerate(mctx.distinct_accesses()):
                    v = m.operands[mctx.input_of(acc)]
                    if id(v) in vals:
                        names[mctx.access_key(acc)] = vals[id(v)]
                    elif (i, mctx.access_key(acc)) in self.staged:
                        names[mctx.access_key(acc)] = f"k_f{i}_{j}"
                        kb.let(f"k_f{i}_{j}", mctx.load_dtype(acc), self._staged_ref(i, mctx, acc, axis))
                    else:
                        names[mctx.access_key(acc)] = f"k_f{i}_{j}"
                        mctx.load_access(kb, acc, f"k_f{i}_{j}", axis)
                body = mctx.renderer(lambda a, n=names, c=mctx: n[c.access_key(a)], axis)(mctx.expr.body)
                kb.let(f"k_f{i}", compute_dtype(m.result.type.dtype), body)
                vals[id(m.result)] = f"k_f{i}"
            for j, v in enumerate(self.outs):
                kb.store(f"out{j}", index_of.get(id(v), index), vals[id(v)])

    def _layout_index(self, member, where: list) -> str:
        """The linear address in a layout member's output of the element at the anchor's coordinates: each
        output axis is ``(input coordinate / coefficient) % extent`` (:func:`~tilec.analysis.welder.graph.
        layout_map`), the input coordinates being the anchor's own."""
        from .builder import linearize
        coords = []
        for dim, coef, ext in where:
            c = self.axis_var(self.out_axes[dim])
            c = c if coef == 1 else f"({c}) / {coef}"
            coords.append("0" if ext == 1 else c if coef * ext == self.out_shape[dim] else f"({c}) % {ext}")
        return linearize(coords, list(member.result.type.shape))

    def _axis_names(self, mctx: ComputeContext):
        """A member's axes are the anchor's output axes, position by position."""
        table = {a: self.axis_var(b) for a, b in zip(mctx.out_axes, self.out_axes)}
        return lambda a: table[a]

    def staging_plan(self, cfg: dict) -> list:
        """``[(member i, member ctx, access, box, smem bytes)]`` of the outside epilogue operands worth
        staging per block under tile ``cfg``: affine accesses whose box over the block tile holds at most
        half the block's outputs, while the static shared memory left by the anchor allows.

        ``cfg`` may give only the block tile (a caller that sizes the epilogue before the anchor's tiled
        config exists, e.g. a GEMM side of another fused kernel): the anchor's reduce steps it lacks are
        taken as :func:`~.tiled.resolve_config` takes them (the extent clipped to 16). The anchor's staged
        boxes span its reduce axes, so their shared memory cannot be counted without a step for each."""
        from .cexpr import affine
        from .tiled import staged_box, staged_bytes, staged_dims
        steps = dict(cfg.get("step") or {})
        steps.update({r: min(16, self.extents[r]) for r in self.reduce_axes if r not in steps})
        budget = self.smem_limit - staged_bytes(self, dict(cfg, step=steps))
        points = math.prod(cfg["block"][a] for a in self.out_axes)
        plan = []
        for i, (m, mctx) in enumerate(zip(self.members[1:], self.tails), start=1):
            sizes = {a: cfg["block"][b] for a, b in zip(mctx.out_axes, self.out_axes)}
            for acc in mctx.distinct_accesses():
                v = m.operands[mctx.input_of(acc)]
                if not any(v is a for a in self.args) or any(affine(ix) is None for ix in acc.indices):
                    continue
                box = staged_box(mctx, acc, sizes)
                if math.prod(b[2] for b in box) * 2 > points:
                    continue   # no reuse inside the block: plain loads are as good
                rows, cols = staged_dims(box)
                nbytes = rows * cols * itemsize(mctx.load_dtype(acc))
                if nbytes <= budget:
                    budget -= nbytes
                    plan.append((i, mctx, acc, box, nbytes))
        return plan

    def stage_epilogue(self, kb, cfg: dict, origin: dict, threads: int, prefix: str = "") -> None:
        """Called by the tiled kernel after its reduction: copy the planned boxes into shared memory
        (``prefix`` keeps the arrays of several epilogues in one kernel apart)."""
        from .tiled import staged_dims, stage_box
        self.cfg = cfg
        for i, mctx, acc, box, _ in self.staging_plan(cfg):
            name = f"{prefix}e{i}_{len(self.staged)}"
            kb.shared(f"k_s{name}", mctx.load_dtype(acc), staged_dims(box))
            morigin = {a: origin[b] for a, b in zip(mctx.out_axes, self.out_axes)}
            stage_box(mctx, kb, name, acc, box, morigin, threads)
            self.staged[(i, mctx.access_key(acc))] = (f"k_s{name}", box, morigin)
        if self.staged:
            kb.barrier()

    def _staged_ref(self, i: int, mctx, acc, axis) -> str:
        """The shared-memory element of a staged access at the current output coordinates."""
        from .builder import linearize
        from .cexpr import affine_text
        name, box, morigin = self.staged[(i, mctx.access_key(acc))]
        loc = [f"({affine_text(coefs, const, axis)}) - ({affine_text(coefs, const + offset, lambda a: morigin[a])})"
               for coefs, const, _, offset in box]
        dims = [b[2] for b in box]
        rows = linearize(loc[:-1], dims[:-1]) if len(dims) > 1 else "0"
        return f"{name}[{rows}][{loc[-1] if loc else '0'}]"

    def _staged_bytes(self, cfg: dict, mctx, acc, box) -> int:
        """In-bounds elements of ``box`` summed over the grid of blocks (what the staging loads)."""
        grid_axes = list(self.out_axes)
        amap = dict(zip(mctx.out_axes, self.out_axes))
        origins = {a: np.arange(0, self.extents[a], cfg["block"][a], dtype=np.int64) for a in grid_axes}
        shape = mctx.shapes[mctx.input_of(acc)]
        count = np.ones([1] * len(grid_axes), dtype=np.int64)
        for (coefs, const, extent, offset), dim in zip(box, shape):
            lo = np.full([1] * len(grid_axes), const + offset, dtype=np.int64)
            for a, c in coefs.items():
                k = grid_axes.index(amap[a])
                lo = lo + c * origins[amap[a]].reshape([-1 if q == k else 1 for q in range(len(grid_axes))])
            count = count * np.maximum(np.minimum(lo + extent, dim) - np.maximum(lo, 0), 0)   # np.clip is slower
        grid = [len(origins[a]) for a in grid_axes]
        return grid_sum(count, grid) * itemsize(mctx.dtypes[mctx.input_of(acc)])

    def epilogue_bytes(self, cfg: dict | None = None) -> int:
        """Global bytes the epilogue adds: each member's outside loads once per element (or, staged under a
        tiled anchor's ``cfg``, once per block's box), plus the stores; the anchor's own output store is
        replaced by them."""
        cfg = cfg if cfg is not None else self.cfg
        staged = {(i, mctx.access_key(acc)): self._staged_bytes(cfg, mctx, acc, box)
                  for i, mctx, acc, box, _ in (self.staging_plan(cfg) if cfg is not None else [])}
        points = math.prod(self.out_shape)
        total = -self.out_bytes()
        for i, (m, mctx) in enumerate(zip(self.members[1:], self.tails), start=1):
            for acc in mctx.distinct_accesses():
                v = m.operands[mctx.input_of(acc)]
                if (i, mctx.access_key(acc)) in staged:
                    total += staged[(i, mctx.access_key(acc))]
                elif any(v is a for a in self.args):
                    total += points * itemsize(v.type.dtype)
        for v in self.outs:
            total += math.prod(v.type.shape) * itemsize(v.type.dtype)
        return total
