"""emit-cuda: one ``kernel.func`` → the complete ``.cu`` text (prelude + one ``extern "C" __global__`` kernel);
for an AMD target the ``.hip`` text, from the same renderer in the HIP language (``hip.py``, docs/amd.md).

The text is a pure function of the op, so the same module always gives byte-identical sources. The prelude
(``cuda_prelude.h``, ``cstyle.prelude_text``) comes first: it defines ``TL_LD``/``TL_ST`` and friends, the
only way a kernel touches global memory, which is how the emulator counts bytes. Persistent rPrograms and
device loops have emitters of their own (``lower/persistent.py``, ``lower/device_loop.py``).
"""
from __future__ import annotations

import math

from ..ir.diagnostics import CompileError
from .cstyle import (CUDA, PRELUDE_PATH, CStyleLanguage, kernel_name, prelude_text,  # noqa: F401
                     render_body, safe_comment, sanitize_identifier)
from ..analysis.hardware import target_spec
from .hip import language_for
from .kernel_facts import source_body
from .lower.device_loop import emit_device_loop
from .lower.persistent import emit_persistent


# The second ``__launch_bounds__`` argument of a standalone kernel. With the block size alone, ptxas 13 picks a
# register budget by its own occupancy heuristic and spills (resnext29-small, welder: k19_fused_epilogue, a
# 16-accumulator conv+BN tile, 40 registers and 24 B of spills). Asking for 1 block per SM lets it use what the
# code needs (up to 65536 / threads, at most 255) while still guaranteeing that the block size can launch.
# Roller's planned blocks/SM is no better a bound: its register estimate is low for the real kernels, so
# passing it spills 23 of the 98 roller-suite kernels (1752 B); and welder's kernels carry no plan at all.
# The extra registers cost occupancy only where a grid needs more than one wave: no kernel of the measured
# small zoo builds, one of the 98 suite kernels (resnet50_maxpool, 1 -> 2 waves). Figures and commands:
# docs/benchmarks/roller-2026-11-29.md. Persistent and device-loop kernels pass their own blocks/SM
# (lower/persistent.py, lower/device_loop.py): every block there must be resident at once.
MIN_BLOCKS_PER_SM = 1


def kernel_signature(op, lang: CStyleLanguage = CUDA) -> str:
    """``extern "C" __global__ void __launch_bounds__(N, 1) name(const float* __restrict__ A, ...)``."""
    threads = math.prod(op.attributes["block"])
    params = []
    for p in op.attributes["params"]:
        const = "const " if p["role"] == "in" else ""
        params.append(f"{const}{lang.ctype(p['dtype'])}*{lang.restrict} {p['name']}")
    # TMA tensor maps (the wgmma engine, lower/wgmma_engine.py): by value after the buffers, built by the runtime
    maps = op.attributes.get("tensor_maps", ())
    params += [f"const __grid_constant__ TlTensorMap k_tma{i}" for i in range(len(maps))]
    bounds = lang.bounds(threads, MIN_BLOCKS_PER_SM)
    cluster = op.attributes.get("cluster", 1)
    if cluster > 1:   # compile-time cluster dims: a plain launch runs the grid in clusters (sm_90)
        bounds += lang.cluster_dims.format(x=cluster)
    return f"{lang.kernel_prefix} {bounds}{kernel_name(op)}({', '.join(params)})"


def emit_kernel(op, lang: CStyleLanguage | None = None) -> str:
    """The complete source of one ``kernel.func`` op (a persistent rProgram: ``lower/persistent.py``), in
    ``lang``, by default the language of the module's target (CUDA, or HIP for an AMD GPU: ``hip.language_for``)."""
    if lang is None:
        lang = language_for(target_spec(op))
    if op.attributes.get("kind") == "persistent":
        return emit_persistent(op, lang)
    if op.attributes.get("kind") in ("device_loop", "device_if"):
        return emit_device_loop(op, lang)
    for p in op.attributes["params"]:
        if sanitize_identifier(p["name"]) != p["name"]:
            raise CompileError.at(f"kernel parameter '{safe_comment(p['name'])}' is not a sanitised identifier",
                                  op.loc)
    lines = [prelude_text(lang.prelude).rstrip("\n"), ""]
    a = op.attributes
    lines.append(f"// tilec kernel {kernel_name(op)}: kind {safe_comment(a.get('kind', '?'))}, "
                 f"grid {list(a['grid'])}, block {list(a['block'])}")
    if "origin" in a:
        lines.append(f"// origin: {safe_comment(a['origin'])}")
    if "expr" in a:
        lines.append(f"// expr: {safe_comment(a['expr'])}")
    lines.append(kernel_signature(op, lang) + " {")
    if "source" in a:
        lines.extend("  " + ln if ln else "" for ln in source_body(op))
    else:
        lines.extend(render_body(op, lang))
    lines.append("}")
    return "\n".join(lines) + "\n"


def emit_module(module, lang: CStyleLanguage | None = None) -> dict:
    """``{kernel name: source}`` for every ``kernel.func`` in ``module``, in module order."""
    return {op.sym_name: emit_kernel(op, lang) for op in module.body.ops if op.name == "kernel.func"}
