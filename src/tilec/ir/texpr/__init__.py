"""The tensor-expression language of ``tile.compute`` (DESIGN §2): parser, AST, typing, numpy evaluator.

    >>> e = parse_texpr("C[m, n] += A[m, k] * B[k, n]")
    >>> e.inputs, e.out_axes, e.reduce_axes, e.combiner
    (('A', 'B'), ('m', 'n'), ('k',), 'sum')
"""
from .affine import Affine, index_bounds, to_affine
from .errors import TexprError
from .evaluate import evaluate
from .expr import COMBINERS, TensorExpr
from .functions import DTYPES, FLOAT_DTYPES, FUNCTIONS
from .nodes import (NODE_TYPES, Access, AxisRef, Binary, Call, Node, Num, Unary, axes_in, children, rewrite,
                    to_text, walk)
from .parser import parse_texpr

__all__ = ["Access", "Affine", "AxisRef", "Binary", "COMBINERS", "Call", "DTYPES", "FLOAT_DTYPES", "FUNCTIONS",
           "NODE_TYPES", "Node", "Num", "TensorExpr", "TexprError", "Unary", "axes_in", "children", "evaluate",
           "index_bounds", "parse_texpr", "rewrite", "to_affine", "to_text", "walk"]
