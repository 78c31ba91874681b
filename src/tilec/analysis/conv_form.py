"""A 2-D convolution ``tile.compute`` read as the tensor-core implicit GEMM reads it (issue #17): which access is
the input and which the weight, the window's strides, dilations and paddings, and whether both are
channels-last. The ``conv-layout`` pass (``passes/conv_layout.py``) rewrites NCHW convolutions into the
channels-last form; the engine's lowering (``backend/lower/mma_conv.py``) runs that form.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir.texpr import Access
from ..ir.texpr.affine import to_affine
from ..ir.texpr.evaluate import product_factors
from ..ir.texpr.nodes import AxisRef


@dataclass(frozen=True)
class ConvForm:
    """A 2-D convolution ``Y[n, f, o0, o1] += X[..] * W[..]``: the input (X) and weight (W) accesses and, per
    spatial dim, (stride, dilation, padding)."""
    x: Access
    w: Access
    window: tuple        # ((s0, d0, p0), (s1, d1, p1))
    nhwc: bool           # X[n, h, w, c] and W[f, r, s, c] (else X[n, c, h, w] and W[f, c, r, s])


def conv_form(expr) -> ConvForm | None:
    """The :class:`ConvForm` of a parsed ``Y[n, f, o0, o1] += X[..] * W[..]`` in either layout, else None."""
    if expr.combiner != "sum" or len(expr.out_axes) != 4 or len(expr.reduce_axes) != 3:
        return None
    pf = product_factors(expr.body)
    if pf is None or pf[1] != 1 or len(pf[0]) != 2 or not all(isinstance(f, Access) for f in pf[0]):
        return None
    n, f, o0, o1 = expr.out_axes
    x, w = pf[0]
    if len(x.indices) != 4 or len(w.indices) != 4 or x.tensor == w.tensor:
        return None
    names = lambda acc, pos: [acc.indices[i].name if isinstance(acc.indices[i], AxisRef) else None   # noqa: E731
                              for i in pos]
    for nhwc, (xn, xc, xs), (wf, wc, ws) in ((False, (0, 1, (2, 3)), (0, 1, (2, 3))),
                                             (True, (0, 3, (1, 2)), (0, 3, (1, 2)))):
        c, k = names(x, (xc,))[0], _window_axes(expr, x, xs)
        if names(x, (xn,)) != [n] or names(w, (wf, wc) + ws) != [f, c, *k]:
            continue
        if c is None or None in k or sorted([c, *k]) != sorted(expr.reduce_axes):
            continue
        window = []
        for i, o, kk in zip(xs, (o0, o1), k):
            aff = to_affine(x.indices[i])
            if aff is None or set(aff.terms) - {o, kk}:
                break
            window.append((aff.coeff(o), aff.coeff(kk), -aff.const))
        if len(window) == 2 and all(s > 0 and d > 0 for s, d, _ in window):
            return ConvForm(x, w, tuple(window), nhwc)
    return None


def _window_axes(expr, x: Access, spatial: tuple) -> list:
    """The window axes of the input's two spatial indices (the one reduce axis in each), None where not one."""
    out = []
    for i in spatial:
        aff = to_affine(x.indices[i])
        ks = [a for a in (aff.terms if aff else {}) if a in expr.reduce_axes]
        out.append(ks[0] if len(ks) == 1 else None)
    return out
