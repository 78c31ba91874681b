"""IR types: ranked tensors over a fixed set of element types, and function types.

A dimension is a non-negative int, or ``None`` for a dynamic dimension (printed ``?``); dynamic dims may
appear only before shapes are fixed by ``--input-shape``.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np

# Element type name -> numpy dtype. The names are the IR's spelling (``tensor<2x3xf32>``).
DTYPES: dict[str, str] = {
    "f32": "float32", "f16": "float16", "bf16": "bfloat16", "f64": "float64",
    "i64": "int64", "i32": "int32", "i8": "int8", "u8": "uint8", "bool": "bool",
}
FLOAT_DTYPES = ("f16", "bf16", "f32", "f64")
INT_DTYPES = ("i8", "u8", "i32", "i64")


def np_dtype(name: str) -> np.dtype:
    """The numpy dtype of an IR element type (bf16 comes from ml_dtypes, which onnx depends on)."""
    if name == "bf16":
        import ml_dtypes
        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(DTYPES[name])


def dtype_of(array_dtype) -> str:
    """The IR element type of a numpy dtype; raises ValueError for types the IR does not carry."""
    dt = np.dtype(array_dtype)
    found = _BY_NUMPY_NAME.get(dt.name)   # dt.name is slow (numpy builds it per call): read it once
    if found is None:
        raise ValueError(f"unsupported element type {dt.name}")
    return found


_BY_NUMPY_NAME = {np_name: name for name, np_name in DTYPES.items()}


def itemsize(dtype: str) -> int:
    """Bytes per element."""
    return 1 if dtype == "bool" else np_dtype(dtype).itemsize


@dataclass(frozen=True)
class TensorType:
    """``tensor<d0 x d1 x ... x dtype>``; rank 0 prints as ``tensor<f32>``."""

    shape: tuple
    dtype: str

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown element type '{self.dtype}'")
        object.__setattr__(self, "shape", tuple(self.shape))

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def is_static(self) -> bool:
        return all(d is not None for d in self.shape)

    @property
    def numel(self) -> int:
        return prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.numel * itemsize(self.dtype)

    def with_shape(self, shape) -> "TensorType":
        return TensorType(tuple(shape), self.dtype)

    def with_dtype(self, dtype: str) -> "TensorType":
        return TensorType(self.shape, dtype)

    def __str__(self) -> str:
        dims = "".join(("?" if d is None else str(d)) + "x" for d in self.shape)
        return f"tensor<{dims}{self.dtype}>"

    @staticmethod
    def of(array: np.ndarray) -> "TensorType":
        return TensorType(tuple(int(d) for d in array.shape), dtype_of(array.dtype))


@dataclass(frozen=True)
class FunctionType:
    """``(inputs) -> (results)``; used as the type of functions and of generic op signatures."""

    inputs: tuple
    results: tuple

    def __str__(self) -> str:
        ins = ", ".join(map(str, self.inputs))
        outs = ", ".join(map(str, self.results))
        return f"({ins}) -> ({outs})"
