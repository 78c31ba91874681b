"""Dynamic-shape profiles at run time: which bucket of a profile build serves a shape, and how to get there.

A profile build (``driver_profile.compile_profile``) holds one ordinary build per bucket combination under
``BUILD/buckets/<key>/`` and ``BUILD/profile.json``:

    {"version": 1,
     "inputs":  [{"name": "input_ids", "dtype": "i64", "dims": ["batch", "seq"]}, ...],  # a dim or a size
     "outputs": ["last_hidden_state", ...],
     "dims":    {"batch": {"min": 1, "max": 32, "buckets": [1, 2, ...], "padding_safe": true,
                           "why": null}, ...},                       # why: the analysis' reason when unsafe
     "buckets": [{"key": "4x128", "dims": {"batch": 4, "seq": 128}, "dir": "buckets/4x128",
                  "outputs": {"last_hidden_state": {"batch": 0, "seq": 1}, ...}}, ...]}

A run takes, per dim, the smallest bucket that holds the given size on a padding-safe dim and the equal
bucket on any other (TensorRT's optimization profiles pick a kernel set by min/opt/max the same way; here
the buckets are whole builds). Inputs grow along padded dims by repeating their last slice (edge padding:
every padded element is a copy of a real one, so an index, a divisor or a log stays as valid as in the
real rows, which zeros would not guarantee), and outputs are sliced back along the axes the analysis
recorded for that bucket.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..ir.diagnostics import CompileError

PROFILE_FILE = "profile.json"
MAX_BUCKETS = 256   # bucket combinations one profile may compile (each is a whole build)


def parse_profile_spec(text: str) -> tuple:
    """``NAME=MIN..MAXxDIM...`` -> ``(NAME, [size or (min, max), ...])``; a ValueError says what is wrong."""
    name, sep, dims = text.rpartition("=")
    if not sep or not name or not dims:
        raise ValueError(f"'{text}' is not NAME=DIMS (e.g. input_ids=1..32x1..512)")
    out = []
    for part in dims.split("x"):
        lo, dots, hi = part.partition("..")
        try:
            dim = (int(lo), int(hi)) if dots else int(part)
        except ValueError:
            raise ValueError(f"'{part}' in '{text}' is neither a size nor MIN..MAX") from None
        if (dots and not 1 <= dim[0] <= dim[1]) or (not dots and dim < 0):
            raise ValueError(f"'{part}' in '{text}' is not a range 1 <= MIN <= MAX" if dots
                             else f"'{part}' in '{text}' is a negative size")
        out.append(dim)
    return name, out


def parse_buckets_spec(text: str) -> tuple:
    """``DIM=V1,V2,...`` (DIM a dim name such as ``seq``, or ``INPUT:AXIS``) -> ``(DIM, [V1, V2, ...])``."""
    dim, sep, values = text.rpartition("=")
    if not sep or not dim:
        raise ValueError(f"'{text}' is not DIM=V1,V2,... (e.g. seq=128,256,512 or input_ids:1=128,256)")
    try:
        sizes = sorted({int(v) for v in values.split(",")})
    except ValueError:
        raise ValueError(f"'{values}' is not a list of sizes like 128,256,512") from None
    if not sizes or sizes[0] < 1:
        raise ValueError(f"'{values}' must list sizes >= 1")
    return dim, sizes


def default_buckets(lo: int, hi: int) -> list:
    """The powers of two within ``[lo, hi]``, and ``hi``."""
    out, p = [], 1
    while p <= hi:
        if p >= lo:
            out.append(p)
        p *= 2
    return sorted(set(out) | {hi})


def bucket_key(values) -> str:
    """A bucket's folder name: its sizes in the profile's dim order, ``4x128`` (``static`` without any)."""
    return "x".join(str(v) for v in values) or "static"


@dataclass
class Choice:
    """The bucket one run takes: its entry of profile.json and the padding per dim (``{dim: (given, bucket)}``
    for the dims it pads)."""

    bucket: dict
    padded: dict

    def describe(self) -> str:
        pads = ", ".join(f"{d} {a}->{b}" for d, (a, b) in self.padded.items())
        return f"bucket {self.bucket['key']}" + (f" (padded {pads})" if pads else "")


class Profile:
    """A profile build's profile.json, with bucket selection, padding and slicing."""

    def __init__(self, build_dir: str, data: dict):
        self.build_dir, self.data = Path(build_dir), data
        self.inputs = data["inputs"]
        self.input_names = [i["name"] for i in self.inputs]
        self.output_names = list(data["outputs"])
        self.dims = data["dims"]
        # by their sizes: profile.json's keys are sorted, so the dims' order there is not the keys' order
        self._buckets = {_sizes_key(b["dims"]): b for b in data["buckets"]}

    def declared(self) -> list:
        """``(name, dtype, None)`` per input, for ``array_files.conform_inputs`` (shapes are checked here)."""
        return [(i["name"], i["dtype"], None) for i in self.inputs]

    def describe(self) -> str:
        """``input_ids=1..32x1..512; buckets: batch 1,2,4 (padded), seq 128,512 (exact)``."""
        shapes = " ".join(f"{i['name']}=" + "x".join(
            str(d) if isinstance(d, int) else f"{self.dims[d]['min']}..{self.dims[d]['max']}" for d in i["dims"])
            for i in self.inputs)
        buckets = "; ".join(f"{d} {','.join(map(str, v['buckets']))} "
                            f"({'padded' if v['padding_safe'] else 'exact'})" for d, v in self.dims.items())
        return f"shape profile {shapes}; buckets: {buckets}"

    def choose(self, shapes: dict) -> Choice:
        """The bucket for input shapes ``{name: shape}``, or a CompileError listing the profile."""
        sizes: dict = {}
        shapes = {n: tuple(s) for n, s in shapes.items()}
        for spec in self.inputs:
            shape = tuple(shapes[spec["name"]])
            if len(shape) != len(spec["dims"]):
                raise self._refuse(f"input '{spec['name']}' has rank {len(shape)}, the profile {len(spec['dims'])}")
            for axis, (dim, n) in enumerate(zip(spec["dims"], shape)):
                if isinstance(dim, int):
                    if n != dim:
                        raise self._refuse(f"input '{spec['name']}' has size {n} on axis {axis}, fixed to {dim}")
                elif sizes.setdefault(dim, n) != n:
                    raise self._refuse(f"inputs disagree on dim '{dim}' ({sizes[dim]} and {n})")
        values, padded = {}, {}
        given = " ".join(f"{n}=" + "x".join(map(str, shapes[n])) for n in self.input_names)
        for dim, info in self.dims.items():
            n = sizes[dim]
            fits = [b for b in info["buckets"] if (b >= n if info["padding_safe"] else b == n)]
            if not info["min"] <= n <= info["max"]:
                raise self._refuse(f"{given}: dim '{dim}' = {n} is outside its range {info['min']}..{info['max']}")
            if not fits:
                raise self._refuse(f"{given}: dim '{dim}' = {n} is " + (
                    "above its largest bucket" if info["padding_safe"] else
                    f"not one of its buckets, and it cannot be padded ({info['why']})"))
            values[dim] = fits[0]
            if fits[0] != n:
                padded[dim] = (n, fits[0])
        return Choice(self._buckets[_sizes_key(values)], padded)

    def _refuse(self, what: str) -> CompileError:
        return CompileError(f"{what}: the build serves {self.describe()}")

    def pad(self, inputs: dict, choice: Choice) -> dict:
        """``inputs`` grown to the bucket's shapes along padded dims by repeating each one's last slice."""
        out = {}
        for spec in self.inputs:
            arr = inputs[spec["name"]]
            widths = [(0, choice.padded[d][1] - choice.padded[d][0]) if d in choice.padded else (0, 0)
                      for d in spec["dims"]]
            out[spec["name"]] = np.pad(arr, widths, mode="edge") if any(w for _, w in widths) else arr
        return out

    def unpad(self, outputs: dict, choice: Choice) -> dict:
        """The bucket's outputs sliced back along the axes its analysis recorded for each padded dim."""
        out = {}
        for name, arr in outputs.items():
            axes = choice.bucket["outputs"].get(name, {})
            index = [slice(None)] * np.ndim(arr)
            for dim, (given, _) in choice.padded.items():
                if dim in axes:
                    index[axes[dim]] = slice(0, given)
            out[name] = arr[tuple(index)]
        return out

    def bucket_dir(self, choice: Choice) -> Path:
        return self.build_dir / choice.bucket["dir"]


def _sizes_key(sizes: dict) -> tuple:
    return tuple(sorted(sizes.items()))


def load_profile(build_dir) -> Profile | None:
    """The profile of a profile build folder, None for an ordinary build (or anything else)."""
    path = Path(build_dir) / PROFILE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        _check(data)
        return Profile(build_dir, data)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise CompileError(f"'{build_dir}' has an unreadable {PROFILE_FILE} ({type(e).__name__}: {e}): "
                           "compile it again") from None


def _check(data: dict) -> None:
    """The shape of profile.json that :class:`Profile` relies on; a ValueError names what is off."""
    dims = data["dims"]
    for info in dims.values():
        if not all(isinstance(info[k], int) for k in ("min", "max")) or not isinstance(info["padding_safe"], bool) \
                or not all(isinstance(b, int) for b in info["buckets"]):
            raise ValueError("a dim without integer min, max, buckets and a padding_safe flag")
    for spec in data["inputs"]:
        if not isinstance(spec["name"], str) or not isinstance(spec["dtype"], str) or \
                not all(isinstance(d, int) or d in dims for d in spec["dims"]):
            raise ValueError(f"input {spec.get('name')!r} has a dim the profile does not define")
    for b in data["buckets"]:
        if not isinstance(b["key"], str) or not isinstance(b["dir"], str) or set(b["dims"]) != set(dims) \
                or not all(isinstance(a, int) for axes in b["outputs"].values() for a in axes.values()):
            raise ValueError(f"bucket {b.get('key')!r} does not give every dim a size")
        if Path(b["dir"]).is_absolute() or ".." in Path(b["dir"]).parts:
            raise ValueError(f"bucket {b['key']!r} lies outside the build folder")
    if not isinstance(data["outputs"], list):
        raise ValueError("outputs is not a list")
