"""Dialects: one module per dialect (or op family). Importing this package registers every verifier hook
and result-type rule. Op declarations themselves are data in ``ir_specs/ops/<dialect>*.json``.
"""
import importlib
import pkgutil

for _info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name):
    importlib.import_module(f"{__name__}.{_info.name}")
