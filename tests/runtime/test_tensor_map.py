"""tilec.runtime.tensor_map without a GPU: the arguments handed to cuTensorMapEncodeTiled (through a stand-in
of libcuda that records them), the driver's documented rules as errors, the emulator's TlTensorMap layout and
the by-value argument CuPy passes. (The emulator tests in tests/emu/test_emu_hopper.py run real loads from
these maps.)"""
from __future__ import annotations

import ctypes

import numpy as np
import pytest

from tilec.runtime import tensor_map as tm


class FakeLibcuda:
    """Records cuTensorMapEncodeTiled's arguments as plain Python values and fills the map with a pattern."""

    class Function:
        """Stands in for a ctypes function: callable, with the restype the caller sets."""

        def __init__(self, body):
            self.body, self.restype = body, None

        def __call__(self, *args):
            return self.body(*args)

    def __init__(self, rc: int = 0):
        self.rc = rc
        self.calls: list = []
        self.cuTensorMapEncodeTiled = self.Function(self._encode)

    def _encode(self, out, dtype, rank, address, dims, strides, box, estrides, interleave, swizzle, l2, oob):
        r = rank.value
        self.calls.append({
            "dtype": dtype.value, "rank": r, "address": address.value, "dims": list(dims)[:r],
            "strides": list(strides)[:max(0, r - 1)], "box": list(box)[:r], "estrides": list(estrides)[:r],
            "interleave": interleave.value, "swizzle": swizzle.value, "l2": l2.value, "oob": oob.value})
        buf = ctypes.cast(out, ctypes.POINTER(ctypes.c_uint64))
        for i in range(16):
            buf[i] = 0x0101010101010101 * (i + 1)
        return self.rc


def test_tiled_map_of_a_row_major_tensor_packs_the_driver_arguments():
    a = np.zeros((3, 40, 72), np.float16)
    spec = tm.tiled(a, (1, 8, 64), address=0x7F0000001000, swizzle=tm.Swizzle.B128,
                    oob_fill=tm.OobFill.NAN_REQUEST_ZERO_FMA)
    lib = FakeLibcuda()
    raw = spec.encode(libcuda=lib)
    (call,) = lib.calls
    assert call == {"dtype": 6, "rank": 3, "address": 0x7F0000001000, "dims": [72, 40, 3],
                    "strides": [144, 40 * 144], "box": [64, 8, 1], "estrides": [1, 1, 1], "interleave": 0,
                    "swizzle": 3, "l2": 0, "oob": 1}
    assert len(raw) == 128 and raw[:8] == bytes([1] * 8) and raw[-8:] == bytes([16] * 8)
    assert spec.box_bytes == 64 * 8 * 2
    assert lib.cuTensorMapEncodeTiled.restype is ctypes.c_int


def test_a_driver_refusal_is_a_tensor_map_error():
    spec = tm.tiled(np.zeros((16, 16), np.float32), (8, 8), address=0x1000)
    with pytest.raises(tm.TensorMapError, match="CUresult 1"):
        spec.encode(libcuda=FakeLibcuda(rc=1))


@pytest.mark.parametrize("change, rule", [
    (dict(global_address=0x1008), "16-byte aligned"),
    (dict(global_strides=(136,)), "multiples of 16"),
    (dict(box_dim=(64, 300)), "1..256"),
    (dict(box_dim=(4, 8)), "multiple of 16"),
    (dict(swizzle=tm.Swizzle.B64), "exceeds the 64-byte swizzle"),
    (dict(element_strides=(1, 9)), "1..8"),
    (dict(dtype=tm.DataType.INT32, oob_fill=tm.OobFill.NAN_REQUEST_ZERO_FMA), "floating-point"),
    (dict(global_dim=(64,)), "rank 1 needs 0"),
])
def test_the_drivers_rules_are_checked(change, rule):
    base = dict(dtype=tm.DataType.FLOAT16, global_address=0x1000, global_dim=(64, 32), global_strides=(128,),
                box_dim=(64, 8))
    base.update(change)
    with pytest.raises(tm.TensorMapError, match=rule):
        tm.TensorMapSpec(**base).check()


def test_emulator_layout_is_the_struct_emu_tma_h_declares():
    spec = tm.TensorMapSpec(tm.DataType.BFLOAT16, 0x1234560, (72, 40, 3), (144, 5760), (64, 8, 1), (1, 2, 1),
                            swizzle=tm.Swizzle.B128, l2_promotion=tm.L2Promotion.B128)
    raw = spec.emu_bytes()
    assert len(raw) == tm.MAP_BYTES
    words = np.frombuffer(raw[:80], np.uint64)
    assert words[0] == 0x1234560 and list(words[1:6]) == [72, 40, 3, 0, 0] and list(words[6:10]) == [144, 5760, 0, 0]
    ints = np.frombuffer(raw[80:120], np.uint32)
    assert list(ints[:5]) == [64, 8, 1, 0, 0] and list(ints[5:10]) == [1, 2, 1, 0, 0]
    assert list(raw[120:126]) == [9, 3, 0, 3, 2, 0]


def test_cupy_argument_is_one_128_byte_element():
    arg = tm.cupy_arg(bytes(range(128)))
    assert arg.size == 1 and arg.nbytes == 128 and arg.tobytes() == bytes(range(128))
    with pytest.raises(tm.TensorMapError):
        tm.cupy_arg(b"\0" * 64)
