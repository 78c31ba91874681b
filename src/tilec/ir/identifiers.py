"""Which names may appear as C identifiers in generated code, and how a model-derived name becomes one.

The IR owns the rule: the ``kernel`` dialect's verifier checks ``kernel.func`` names by it and the CUDA
renderer (``backend/cstyle.py``) applies it, so no model string reaches a kernel's source unsanitised.
"""
from __future__ import annotations

import re

# C and CUDA keywords, common macros and builtins that a model name must never shadow.
RESERVED = frozenset("""
auto break case char const continue default do double else enum extern float for goto if inline int long
register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while
bool true false class delete new namespace operator private protected public template this throw try catch
typename using virtual friend mutable explicit export asm alignas alignof constexpr decltype noexcept nullptr
static_assert thread_local char16_t char32_t wchar_t and or not xor bitand bitor compl and_eq or_eq xor_eq
not_eq dynamic_cast static_cast const_cast reinterpret_cast typeid concept requires co_await co_return
co_yield half float2 float4 int2 int4 dim3 threadIdx blockIdx blockDim gridDim warpSize main NULL
INFINITY NAN min max abs exp log sqrt
""".split())

# Prefixes the lowering keeps for its own names (k_*: internals, ax_*: axes; tl_/TL_: the prelude).
RESERVED_PREFIXES = ("k_", "ax_", "tl_", "TL_", "__")

_BAD = re.compile(r"[^A-Za-z0-9_]")


def sanitize_identifier(name: str, taken: set | None = None, fallback: str = "v") -> str:
    """A C identifier for a model-derived ``name``: ``[A-Za-z_][A-Za-z0-9_]*``, no keyword, no reserved
    prefix, and (when ``taken`` is given) not in ``taken``; the result is added to ``taken``."""
    ident = _BAD.sub("_", name)[:48] or fallback
    if ident[0].isdigit() or ident in RESERVED or ident.startswith(RESERVED_PREFIXES) or ident[0] == "_":
        ident = f"{fallback}_{ident.lstrip('_')}" if ident.lstrip("_") else fallback
    if taken is not None:
        base, n = ident, 1
        while ident in taken:
            ident = f"{base}_{n}"
            n += 1
        taken.add(ident)
    return ident
