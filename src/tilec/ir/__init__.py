"""The core IR: data model, types, attributes, printer, parser, verifier and diagnostics."""
from .attributes import DenseAttr, SymbolRef
from .core import Block, Location, Operation, Region, Value, functions, lookup_symbol, new_module
from .diagnostics import CompileError, Diagnostic
from .io import read_ir, write_ir
from .parser import parse_module
from .printer import print_module
from .types import FunctionType, TensorType
from .verifier import verify

__all__ = ["Block", "CompileError", "DenseAttr", "Diagnostic", "FunctionType", "Location", "Operation",
           "Region", "SymbolRef", "TensorType", "Value", "functions", "lookup_symbol", "new_module",
           "parse_module", "print_module", "read_ir", "verify", "write_ir"]
