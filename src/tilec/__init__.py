"""tilec: a tile-based deep-learning compiler (Roller, Welder, Rammer and Grinder on one textual tile IR).

The library API (``tilec/api.py``): ``tilec.compile(model, ...)`` -> :class:`CompiledModel`, ``tilec.load``.
"""

__version__ = "0.1.0"
__all__ = ["compile", "load", "CompiledModel", "CompileError"]


def __getattr__(name):
    # Lazily: `import tilec` (the CLI's first step) stays cheap.
    if name in ("compile", "load", "CompiledModel"):
        from . import api
        return getattr(api, name)
    if name == "CompileError":
        from .ir.diagnostics import CompileError
        return CompileError
    raise AttributeError(f"module 'tilec' has no attribute '{name}'")
