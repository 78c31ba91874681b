"""Compiling a dynamic-shape profile: one ordinary build per bucket combination, and ``profile.json``.

``tilec compile M.onnx -o BUILD --shape-profile input_ids=1..32x1..512 [--buckets seq=128,512]`` lands here.
Each dynamic dim of the model (named by its ONNX ``dim_param``, else ``INPUT:AXIS``) gets a range and a
list of buckets (powers of two within the range and its maximum, unless given); every combination is
compiled by ``driver.compile_model`` with ``input_shapes`` into ``BUILD/buckets/<key>/``. The weights are
stored once: each sub-build's ``weights.npz`` is a hard link into the cache's content-addressed store
(``backend/cache.place_weights``). While each bucket compiles, ``analysis/padding.py`` runs on its
imported graph IR; a dim is padding-safe when every bucket that could pad it proves it safe and the model
does not read its size as a value (``frontend/shape_uses.py``). The whole folder is written atomically
(``backend/build.atomic_build_dir``). ``runtime/profile.py`` reads the result back at run time.
"""
from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .ir.diagnostics import CompileError
from .runtime.profile import MAX_BUCKETS, PROFILE_FILE, bucket_key, default_buckets


@dataclass
class ProfileResult:
    """What :func:`compile_profile` built: the folder, the bucket keys, the ops over all buckets, and the
    dims that may not be padded (``{dim: why}``: only their bucket sizes run)."""

    build_dir: Path
    buckets: list
    ops: int
    seconds: float
    exact: dict = field(default_factory=dict)

    def summary(self) -> str:
        n = len(self.buckets)
        line = (f"compiled {n} bucket{'s' if n != 1 else ''} ({', '.join(self.buckets[:6])}"
                f"{', ...' if n > 6 else ''}; {self.ops} ops) in {self.seconds:.2f}s -> {self.build_dir}")
        for dim, why in self.exact.items():
            line += f"\nnote: dim '{dim}' is not padding-safe ({why}): only its bucket sizes run"
        return line


def model_inputs(model) -> list:
    """``(name, dtype, dims)`` of the ONNX model's graph inputs (weights excluded): a dim is its size, its
    ``dim_param`` string, or None (unknown, or an unknown rank: ``dims`` None)."""
    from .frontend.onnx_load import ir_dtype
    weights = {t.name for t in model.graph.initializer}
    out = []
    for vi in model.graph.input:
        if vi.name in weights:
            continue
        tt = vi.type.tensor_type
        dtype = ir_dtype(tt.elem_type, f"input '{vi.name}'", None)
        dims = None if not tt.HasField("shape") else [
            int(d.dim_value) if d.HasField("dim_value") else (d.dim_param or None) for d in tt.shape.dim]
        out.append((vi.name, dtype, dims))
    return out


def resolve_profile(inputs: list, profiles: dict, buckets: dict | None, file: str) -> tuple:
    """The profile.json ``inputs`` and ``dims`` for the model's ``inputs`` (:func:`model_inputs`), the
    ``profiles`` given (name -> sizes or ``(min, max)`` per axis) and explicit ``buckets`` (dim name or
    ``INPUT:AXIS`` -> sizes). Errors name what is wrong; a dynamic input without a profile is the importer's
    usual dynamic-dim error."""
    from .frontend.onnx_load import dynamic_inputs_error
    names = [n for n, _, _ in inputs]
    unknown = sorted(set(profiles) - set(names))
    if unknown:
        raise CompileError(f"--shape-profile names unknown input(s): {', '.join(unknown)} "
                           f"(inputs: {', '.join(names) or 'none'})", file)
    specs, dims, aliases, missing, pinned = [], {}, {}, [], {}
    for name, dtype, model_dims in inputs:
        given = profiles.get(name)
        if given is None:
            if model_dims is None or not all(isinstance(d, int) for d in model_dims):
                missing.append((name, model_dims or [None]))
            specs.append({"name": name, "dtype": dtype, "dims": list(model_dims or [])})
            continue
        model_dims = model_dims if model_dims is not None else [None] * len(given)
        if len(given) != len(model_dims):
            raise CompileError(f"--shape-profile gives input '{name}' rank {len(given)}, but the model says "
                               f"rank {len(model_dims)}", file)
        row = []
        for axis, (m, g) in enumerate(zip(model_dims, given)):
            if isinstance(m, int):
                if g != m:
                    raise CompileError(f"--shape-profile gives input '{name}' axis {axis} = "
                                       f"{_text(g)}, but the model fixes it to {m}", file)
                row.append(m)
            elif isinstance(g, int):
                if m is not None and pinned.setdefault(m, g) != g:
                    raise CompileError(f"--shape-profile gives dim '{m}' two sizes ({pinned[m]} and {g})", file)
                row.append(g)
            else:
                dim = m or f"{name}:{axis}"
                if dim in dims and (dims[dim]["min"], dims[dim]["max"]) != tuple(g):
                    raise CompileError(f"--shape-profile gives dim '{dim}' two ranges ({dims[dim]['min']}.."
                                       f"{dims[dim]['max']} and {_text(g)})", file)
                dims.setdefault(dim, {"min": g[0], "max": g[1]})
                aliases[f"{name}:{axis}"] = dim
                row.append(dim)
        specs.append({"name": name, "dtype": dtype, "dims": row})
    if missing:
        raise dynamic_inputs_error(missing, file)
    both = sorted(set(pinned) & set(dims))
    if both:
        raise CompileError(f"--shape-profile gives dim '{both[0]}' a size in one input and a range in another",
                           file)
    for key, sizes in (buckets or {}).items():
        dim = aliases.get(key, key)
        if dim not in dims:
            raise CompileError(f"--buckets names '{key}', which is not a dynamic dim of the profile "
                               f"(dims: {', '.join(dims) or 'none'})", file)
        lo, hi = dims[dim]["min"], dims[dim]["max"]
        outside = [s for s in sizes if not lo <= s <= hi]
        if outside:
            raise CompileError(f"--buckets gives dim '{dim}' size(s) {', '.join(map(str, outside))} outside "
                               f"its range {lo}..{hi}", file)
        dims[dim]["buckets"] = list(sizes)
    for info in dims.values():
        info.setdefault("buckets", default_buckets(info["min"], info["max"]))
    return specs, dims


def _text(g) -> str:
    return f"{g[0]}..{g[1]}" if isinstance(g, tuple) else str(g)


def compile_profile(model: str, build_dir: str, profiles: dict, buckets: dict | None = None,
                    dump_dir: str | None = None, progress=None, **options) -> ProfileResult:
    """Compile ``model`` once per bucket combination of ``profiles`` (see the module docstring) into
    ``build_dir``; ``options`` go to every ``driver.compile_model`` (pipeline, arch, checks, tune)."""
    from .analysis.padding import padding_facts
    from .backend.build import atomic_build_dir, write_json
    from .driver import compile_model
    from .frontend.onnx_load import load_model
    from .frontend.shape_uses import size_value_uses
    start = time.perf_counter()
    onnx_model, _, display = load_model(model)
    inputs = model_inputs(onnx_model)
    specs, dims = resolve_profile(inputs, profiles, buckets, display)
    combos = list(itertools.product(*(info["buckets"] for info in dims.values())))
    if len(combos) > MAX_BUCKETS:
        raise CompileError(f"the profile has {len(combos)} bucket combinations (at most {MAX_BUCKETS}): choose "
                           "fewer with --buckets DIM=V1,V2,...", display)
    size_uses = size_value_uses(onnx_model)
    entries, facts_of, ops = [], {}, 0
    labels = {s["name"]: tuple(d if isinstance(d, str) else None for d in s["dims"]) for s in specs}

    def fill(tmp: Path) -> None:
        nonlocal ops
        for i, values in enumerate(combos):
            sizes = dict(zip(dims, values))
            key = bucket_key(values)
            shapes = {s["name"]: tuple(sizes[d] if isinstance(d, str) else d for d in s["dims"]) for s in specs}

            def analyse(module, key=key) -> None:
                facts_of[key] = padding_facts(module, labels)

            def stage(index, total, name, key=key, i=i) -> None:
                if progress is not None:
                    progress(index, total, f"bucket {i + 1}/{len(combos)} ({key}): {name}")
            result = compile_model(model, str(tmp / "buckets" / key), input_shapes=shapes, on_import=analyse,
                                   dump_dir=None if dump_dir is None else os.path.join(dump_dir, key),
                                   progress=stage, **options)
            ops += result.ops
            entries.append({"key": key, "dims": sizes, "dir": f"buckets/{key}",
                            "outputs": facts_of[key].outputs})
        named = {d for _, _, ds in inputs for d in (ds or []) if isinstance(d, str)}
        for dim, info in dims.items():
            # a size inference cannot tie to an input's dim_param ('?', 'unk__0') may be this dim's
            uses = [where for where, reads in size_uses if dim in reads or reads - named]
            why = f"the model reads its size as a value ({', '.join(uses[:3])})" if uses else None
            for values in combos:
                facts = facts_of[bucket_key(values)]
                if why is None and dict(zip(dims, values))[dim] > info["min"] and not facts.safe(dim):
                    why = facts.unsafe[dim]
            info["padding_safe"], info["why"] = why is None, why
        outputs = [o.name for o in onnx_model.graph.output]
        write_json(tmp / PROFILE_FILE, {"version": 1, "inputs": specs, "outputs": outputs, "dims": dims,
                                        "buckets": entries})
        write_json(tmp / "report.json", _report(tmp, display, options, dims, entries, start))
    atomic_build_dir(Path(build_dir), fill)
    return ProfileResult(Path(build_dir), [e["key"] for e in entries], ops, time.perf_counter() - start,
                         {d: info["why"] for d, info in dims.items() if not info["padding_safe"]})


def _report(tmp: Path, model: str, options: dict, dims: dict, entries: list, start: float) -> dict:
    """The top report.json: the profile's dims and every bucket with its build's totals."""
    import json
    rows = []
    for e in entries:
        sub = json.loads((tmp / e["dir"] / "report.json").read_text())
        rows.append({"key": e["key"], "dims": e["dims"], "dir": e["dir"], "totals": sub["totals"],
                     "arch": sub["arch"]})
    return {"model": model, "pipeline": options.get("pipeline", "default"),
            "arch": rows[0]["arch"] if rows else None, "profile": dims, "buckets": rows,
            "totals": {"buckets": len(rows), "compile_seconds": round(time.perf_counter() - start, 6),
                       **_weights_on_disk(tmp, entries)}}


def _weights_on_disk(tmp: Path, entries: list) -> dict:
    """What the buckets' weights.npz files cost: ``weights_files`` distinct files (hard links to one store
    entry count once), ``weights_bytes`` their bytes, ``weights_bytes_linked`` what copies would cost."""
    files, linked = {}, 0
    for e in entries:
        path = tmp / e["dir"] / "weights.npz"
        if path.is_file():
            st = path.stat()
            files[(st.st_dev, st.st_ino)] = st.st_size
            linked += st.st_size
    return {"weights_files": len(files), "weights_bytes": sum(files.values()), "weights_bytes_linked": linked}
