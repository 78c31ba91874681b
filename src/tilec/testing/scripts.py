"""Load a Python file that is not part of a package (``scripts/*.py``, ``samples/*/build*.py``) as a module,
so tests can call its functions."""
from __future__ import annotations

import importlib.util
from pathlib import Path


def load_file_module(path, name: str | None = None):
    """The module defined by the file at ``path`` (named ``name``, default its stem), executed once."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
