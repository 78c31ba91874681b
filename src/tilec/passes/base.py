"""The pass abstraction (xDSL style): a pass is a small dataclass whose fields are its options.

``name`` is its command-line name; ``-p "roller{arch=h200 topk=8}"`` sets fields ``arch`` and ``topk``
(option names may use '-' for '_'). ``apply(module)`` rewrites the module in place.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar

from ..ir.core import Operation
from ..ir.diagnostics import CompileError


@dataclasses.dataclass
class ModulePass:
    """Base class of every pass; subclasses are dataclasses and set ``name``."""

    name: ClassVar[str] = ""

    def apply(self, module: Operation) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def from_options(cls, options: dict) -> "ModulePass":
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for key, raw in options.items():
            fname = key.replace("-", "_")
            if fname not in fields:
                known = ", ".join(sorted(f.replace("_", "-") for f in fields)) or "none"
                raise CompileError(f"pass '{cls.name}' has no option '{key}' (options: {known})")
            kwargs[fname] = _convert(cls.name, key, raw, fields[fname])
        return cls(**kwargs)

    def spec(self) -> str:
        """The pass as pipeline text, with the options that differ from their defaults."""
        opts = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.default is not dataclasses.MISSING and value == f.default:
                continue
            if isinstance(value, bool):
                value = "true" if value else "false"
            opts.append(f"{f.name.replace('_', '-')}={value}")
        return self.name + ("{" + " ".join(opts) + "}" if opts else "")


def _convert(pass_name: str, key: str, raw: str, field: dataclasses.Field):
    default = field.default
    try:
        if isinstance(default, bool):
            if raw not in ("true", "false", "1", "0"):
                raise ValueError(raw)
            return raw in ("true", "1")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    except ValueError:
        raise CompileError(f"pass '{pass_name}' option '{key}': bad value '{raw}'") from None
    return raw
