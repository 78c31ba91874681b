"""Kernel expressions: trees for the kernel IR's index, guard and value expressions (``nodes``), their one C
spelling (``render``), the parser that reads that spelling back (``parse``), affine analysis and
simplification (``affine``), and which kernel-statement attributes are expressions (``attrs``). Nothing here
imports the backend: the IR owns the expression language."""
from .affine import affine, affine_expr, simplify
from .nodes import (SPECIAL_KINDS, Binary, BlockDim, BlockIdx, Call, Cast, Const, GridDim, Group, Index, KExpr,
                    Member, Select, Special, ThreadIdx, Unary, Var, as_kexpr, children, walk)
from .parse import KExprSyntaxError, parse
from .render import render

__all__ = ["SPECIAL_KINDS", "Binary", "BlockDim", "BlockIdx", "Call", "Cast", "Const", "GridDim", "Group",
           "Index", "KExpr", "KExprSyntaxError", "Member", "Select", "Special", "ThreadIdx", "Unary", "Var",
           "affine", "affine_expr", "as_kexpr", "children", "parse", "render", "simplify", "walk"]
