"""Tensor maps for sm_90 TMA loads (``tl_tma_load_*`` in the prelude): the arguments of the driver's
``cuTensorMapEncodeTiled``, checked, and packed for each runtime.

A kernel takes its tensor map as a ``const __grid_constant__ TlTensorMap`` parameter. On a GPU that is the
128-byte opaque ``CUtensorMap`` the driver encodes (:meth:`TensorMapSpec.encode`, through libcuda with
ctypes: CuPy's ``cupy.cuda.driver`` has no binding for it); the CuPy launch passes those bytes by value as a
one-element numpy array (:func:`cupy_arg`). The emulator gets the same arguments in its own
128-byte layout (:meth:`TensorMapSpec.emu_bytes`, the ``TlTensorMap`` of ``backend/emu/emu_tma.h``).

Dimensions are innermost first, as the driver takes them: ``global_dim[0]`` is the contiguous one and
``global_strides[i]`` (bytes) is the stride of dimension ``i + 1``. :meth:`TensorMapSpec.check` enforces the
driver's documented rules, so a bad map is a :class:`TensorMapError` naming the rule on every runtime, not a
``CUDA_ERROR_INVALID_VALUE`` on a GPU only.
"""
from __future__ import annotations

import ctypes
import enum
import struct
from dataclasses import dataclass

import numpy as np


class TensorMapError(ValueError):
    """A tensor map the driver would refuse (or, for ``encode``, did refuse)."""


class DataType(enum.IntEnum):
    """``CUtensorMapDataType`` (cuda.h)."""

    UINT8 = 0
    UINT16 = 1
    UINT32 = 2
    INT32 = 3
    UINT64 = 4
    INT64 = 5
    FLOAT16 = 6
    FLOAT32 = 7
    FLOAT64 = 8
    BFLOAT16 = 9
    FLOAT32_FTZ = 10
    TFLOAT32 = 11
    TFLOAT32_FTZ = 12


class Interleave(enum.IntEnum):
    """``CUtensorMapInterleave``."""

    NONE = 0
    B16 = 1
    B32 = 2


class Swizzle(enum.IntEnum):
    """``CUtensorMapSwizzle`` (the modes wgmma's descriptors can read; the 128B_ATOM_* ones are left out)."""

    NONE = 0
    B32 = 1
    B64 = 2
    B128 = 3


class L2Promotion(enum.IntEnum):
    """``CUtensorMapL2promotion``."""

    NONE = 0
    B64 = 1
    B128 = 2
    B256 = 3


class OobFill(enum.IntEnum):
    """``CUtensorMapFloatOOBfill``: zeros, or a NaN that makes the tensor cores' FMA give zero."""

    NONE = 0
    NAN_REQUEST_ZERO_FMA = 1


ELEMENT_BYTES = {DataType.UINT8: 1, DataType.UINT16: 2, DataType.UINT32: 4, DataType.INT32: 4,
                 DataType.UINT64: 8, DataType.INT64: 8, DataType.FLOAT16: 2, DataType.FLOAT32: 4,
                 DataType.FLOAT64: 8, DataType.BFLOAT16: 2, DataType.FLOAT32_FTZ: 4, DataType.TFLOAT32: 4,
                 DataType.TFLOAT32_FTZ: 4}
FLOATS = {DataType.FLOAT16, DataType.FLOAT32, DataType.FLOAT64, DataType.BFLOAT16, DataType.FLOAT32_FTZ,
          DataType.TFLOAT32, DataType.TFLOAT32_FTZ}
# numpy has no bf16; tilec passes bf16 tensors as uint16 bit patterns, so the caller names the type.
NUMPY_TYPES = {np.dtype(np.uint8): DataType.UINT8, np.dtype(np.uint16): DataType.UINT16,
               np.dtype(np.uint32): DataType.UINT32, np.dtype(np.int32): DataType.INT32,
               np.dtype(np.uint64): DataType.UINT64, np.dtype(np.int64): DataType.INT64,
               np.dtype(np.float16): DataType.FLOAT16, np.dtype(np.float32): DataType.FLOAT32,
               np.dtype(np.float64): DataType.FLOAT64}
SWIZZLE_BYTES = {Swizzle.NONE: 0, Swizzle.B32: 32, Swizzle.B64: 64, Swizzle.B128: 128}
MAP_BYTES = 128   # sizeof(CUtensorMap) and of the emulator's TlTensorMap
# The emulator's TlTensorMap (emu_tma.h): address, 5 dims, 4 strides, 5 box dims, 5 element strides, 6 enums.
_EMU_LAYOUT = struct.Struct("<Q5Q4Q5I5I6B2x")


@dataclass(frozen=True)
class TensorMapSpec:
    """``cuTensorMapEncodeTiled``'s arguments. Sequences are innermost dimension first."""

    dtype: DataType
    global_address: int
    global_dim: tuple
    global_strides: tuple      # bytes, of dimensions 1 .. rank-1
    box_dim: tuple
    element_strides: tuple = ()   # default: all 1
    interleave: Interleave = Interleave.NONE
    swizzle: Swizzle = Swizzle.NONE
    l2_promotion: L2Promotion = L2Promotion.NONE
    oob_fill: OobFill = OobFill.NONE

    @property
    def rank(self) -> int:
        return len(self.global_dim)

    @property
    def strides(self) -> tuple:
        """``element_strides``, or all ones when not given."""
        return tuple(self.element_strides) or (1,) * self.rank

    @property
    def box_bytes(self) -> int:
        """The bytes one load delivers (its ``complete_tx``): the whole box, out-of-bounds fill included."""
        n = 1
        for i, (b, s) in enumerate(zip(self.box_dim, self.strides)):
            n *= b if i == 0 else -(-b // s)
        return n * ELEMENT_BYTES[DataType(self.dtype)]

    def check(self) -> "TensorMapSpec":
        """The driver's documented rules (cuda.h, cuTensorMapEncodeTiled); returns self."""
        try:
            dtype = DataType(self.dtype)
            interleave, swizzle = Interleave(self.interleave), Swizzle(self.swizzle)
            L2Promotion(self.l2_promotion), OobFill(self.oob_fill)
        except ValueError as e:
            raise TensorMapError(f"tensor map: {e}") from None
        r, es = self.rank, ELEMENT_BYTES[dtype]
        if not 1 <= r <= 5:
            raise TensorMapError(f"tensor map: rank {r} is not in 1..5")
        if interleave != Interleave.NONE and r < 3:
            raise TensorMapError("tensor map: an interleaved layout needs rank 3 or more")
        for name, seq, want in (("global_strides", self.global_strides, r - 1), ("box_dim", self.box_dim, r),
                                ("element_strides", self.strides, r)):
            if len(seq) != want:
                raise TensorMapError(f"tensor map: {name} has {len(seq)} entries, rank {r} needs {want}")
        align = 32 if interleave == Interleave.B32 else 16
        if self.global_address % align:
            raise TensorMapError(f"tensor map: global address {self.global_address:#x} is not {align}-byte aligned")
        if not all(1 <= d <= 2**32 for d in self.global_dim):
            raise TensorMapError(f"tensor map: global_dim {self.global_dim} must be in 1..2^32")
        stride_align = 32 if interleave == Interleave.B32 else 16
        if not all(s % stride_align == 0 and 0 < s < 2**40 for s in self.global_strides):
            raise TensorMapError(f"tensor map: global_strides {self.global_strides} must be multiples of "
                                 f"{stride_align} below 2^40")
        if not all(1 <= b <= 256 for b in self.box_dim):
            raise TensorMapError(f"tensor map: box_dim {self.box_dim} must be in 1..256")
        inner = self.box_dim[0] * es
        if interleave == Interleave.NONE and inner % 16:
            raise TensorMapError(f"tensor map: the box's inner dimension is {inner} bytes, not a multiple of 16")
        if not all(1 <= s <= 8 for s in self.strides):
            raise TensorMapError(f"tensor map: element_strides {self.strides} must be in 1..8")
        span = SWIZZLE_BYTES[swizzle]
        if interleave == Interleave.NONE and span and inner > span:
            raise TensorMapError(f"tensor map: the box's inner dimension ({inner} bytes) exceeds the "
                                 f"{span}-byte swizzle")
        if interleave == Interleave.B32 and swizzle != Swizzle.B32:
            raise TensorMapError("tensor map: a 32-byte interleave needs the 32-byte swizzle")
        if self.oob_fill == OobFill.NAN_REQUEST_ZERO_FMA and dtype not in FLOATS:
            raise TensorMapError(f"tensor map: NaN out-of-bounds fill needs a floating-point type, not {dtype.name}")
        return self

    def encode_args(self) -> tuple:
        """``cuTensorMapEncodeTiled``'s arguments after the output pointer, as ctypes values."""
        self.check()
        r = self.rank
        return (ctypes.c_int(int(self.dtype)), ctypes.c_uint32(r), ctypes.c_void_p(self.global_address),
                (ctypes.c_uint64 * r)(*self.global_dim),
                (ctypes.c_uint64 * max(1, r - 1))(*self.global_strides),
                (ctypes.c_uint32 * r)(*self.box_dim), (ctypes.c_uint32 * r)(*self.strides),
                ctypes.c_int(int(self.interleave)), ctypes.c_int(int(self.swizzle)),
                ctypes.c_int(int(self.l2_promotion)), ctypes.c_int(int(self.oob_fill)))

    def encode(self, libcuda=None) -> bytes:
        """The 128-byte ``CUtensorMap`` from the driver (``libcuda`` defaults to libcuda.so.1 via ctypes)."""
        lib = libcuda if libcuda is not None else ctypes.CDLL("libcuda.so.1")
        out = (ctypes.c_uint64 * 16)()
        fn = lib.cuTensorMapEncodeTiled
        fn.restype = ctypes.c_int
        rc = fn(ctypes.byref(out), *self.encode_args())
        if rc != 0:
            raise TensorMapError(f"cuTensorMapEncodeTiled failed with CUresult {rc} for {self}")
        return bytes(out)

    def emu_bytes(self) -> bytes:
        """The emulator's ``TlTensorMap`` (emu_tma.h) for the same arguments, zero-padded to rank 5."""
        self.check()
        pad = lambda seq, n: list(seq) + [0] * (n - len(seq))   # noqa: E731
        return _EMU_LAYOUT.pack(self.global_address, *pad(self.global_dim, 5), *pad(self.global_strides, 4),
                                *pad(self.box_dim, 5), *pad(self.strides, 5), int(self.dtype), self.rank,
                                int(self.interleave), int(self.swizzle), int(self.l2_promotion),
                                int(self.oob_fill))


def cupy_arg(map_bytes: bytes) -> np.ndarray:
    """A by-value kernel argument for CuPy's RawKernel: a one-element numpy array of the 128 bytes (CuPy passes
    a size-1 numpy array by value, pointing the driver at its data: cupy/cuda/function.pyx ``_pointer``; the
    driver copies the parameter's size, so the host copy needs no 64-byte alignment)."""
    if len(map_bytes) != MAP_BYTES:
        raise TensorMapError(f"a tensor map is {MAP_BYTES} bytes, got {len(map_bytes)}")
    return np.frombuffer(bytes(map_bytes), dtype=np.dtype((np.void, MAP_BYTES))).copy()


def tiled(array: np.ndarray, box: tuple, *, address: int | None = None, dtype: DataType | None = None,
          swizzle: Swizzle = Swizzle.NONE, oob_fill: OobFill = OobFill.NONE,
          element_strides: tuple = ()) -> TensorMapSpec:
    """The map of a C-contiguous ``array`` (outermost axis first, numpy's order) read in boxes of ``box``
    (also outermost first); ``address`` is the device address of its data (default: the host array's, for
    the emulator); ``dtype`` is needed for bf16 (a uint16 array)."""
    if not array.flags.c_contiguous:
        raise TensorMapError("tensor map: the array must be C-contiguous")
    kind = dtype if dtype is not None else NUMPY_TYPES.get(array.dtype)
    if kind is None:
        raise TensorMapError(f"tensor map: no TMA data type for {array.dtype}")
    if len(box) != array.ndim:
        raise TensorMapError(f"tensor map: box {box} has {len(box)} dims, the array {array.ndim}")
    dims = tuple(int(d) for d in reversed(array.shape))
    strides = tuple(int(s) for s in reversed(array.strides))[1:]
    return TensorMapSpec(DataType(kind), int(array.ctypes.data if address is None else address), dims, strides,
                         tuple(int(b) for b in reversed(box)), tuple(reversed(element_strides)),
                         swizzle=swizzle, oob_fill=oob_fill).check()


ATTR_TYPES = {"f16": DataType.FLOAT16, "bf16": DataType.BFLOAT16, "f32": DataType.FLOAT32}
ATTR_SWIZZLE = {0: Swizzle.NONE, 32: Swizzle.B32, 64: Swizzle.B64, 128: Swizzle.B128}


def from_attr(attr: dict, address: int) -> TensorMapSpec:
    """The map a kernel's ``tensor_maps`` entry describes (``backend/lower/wgmma_engine.tensor_map_attrs``,
    copied into plan.json's launch step) over the row-major buffer at device ``address``: ``dims`` and ``box``
    innermost first, ``dtype`` a tilec type, ``swizzle`` in bytes (0, 32, 64, 128)."""
    dtype = ATTR_TYPES[attr["dtype"]]
    dims = tuple(int(d) for d in attr["dims"])
    strides, step = [], ELEMENT_BYTES[dtype]
    for d in dims[:-1]:
        step *= d
        strides.append(step)
    return TensorMapSpec(dtype, int(address), dims, tuple(strides), tuple(int(b) for b in attr["box"]),
                         swizzle=ATTR_SWIZZLE[int(attr["swizzle"])]).check()
