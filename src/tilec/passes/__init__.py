"""Passes: one file per pass, named after it. The registry maps command-line names to lazy loaders."""
from __future__ import annotations

import importlib

from ..ir.diagnostics import CompileError

# name -> "module:Class"; modules are imported only when a pass is used (xDSL's registry).
PASSES: dict = {
    "canonicalize": "canonicalize:Canonicalize",
    "infer-shapes": "infer_shapes:InferShapes",
    "fold-constants": "fold_constants:FoldConstants",
    "decompose": "decompose:Decompose",
    "precision": "precision:Precision",
    "conv-layout": "conv_layout:ConvLayout",
    "cse": "cse:CSE",
    "dce": "dce:DCE",
    "roller": "roller:Roller",
    "welder": "welder:Welder",
    "lower-cuda": "lower_cuda:LowerCuda",
    "rammer": "rammer:Rammer",
    "grinder": "grinder:Grinder",
}


def get_pass_class(name: str):
    target = PASSES.get(name)
    if target is None:
        raise CompileError(f"unknown pass '{name}' (see tilec opt --list-passes)")
    module, cls = target.split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def get_pass(name: str, **options):
    """An instance of pass ``name`` with ``options`` (strings, as on the command line)."""
    return get_pass_class(name).from_options({k: str(v) for k, v in options.items()})
