"""GPU arrays stay on the GPU: the input check, the cupy device's copies and the output kind, with a stand-in for
CuPy (a numpy array that says it is a CUDA array and refuses every host transfer), since CI has no GPU."""
import numpy as np
import pytest

from tilec.ir.diagnostics import CompileError
from tilec.runtime import cupy_device
from tilec.runtime.array_files import conform_inputs
from tilec.runtime.device_arrays import is_device_array, like, to_host


class FakeDeviceArray(np.ndarray):
    """Looks like a CuPy array to tilec; a host transfer (``get``/``set``) is a test failure."""
    __cuda_array_interface__ = {"version": 3}
    host_reads = 0

    def get(self, stream=None):
        FakeDeviceArray.host_reads += 1
        return np.asarray(self).copy()

    def set(self, data, stream=None):
        raise AssertionError("a device array was written from the host")


class FakeStream:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def synchronize(self):
        pass


class FakeCupy:
    ndarray = FakeDeviceArray
    uint8 = np.uint8

    @staticmethod
    def ascontiguousarray(a):
        return np.ascontiguousarray(a).view(FakeDeviceArray)


def on_device(a) -> FakeDeviceArray:
    return np.asarray(a).view(FakeDeviceArray)


def test_device_arrays_are_recognised_and_host_arrays_are_not():
    assert is_device_array(on_device(np.zeros(2)))
    assert not is_device_array(np.zeros(2))
    assert not is_device_array([1.0, 2.0])


def test_the_input_check_keeps_a_device_array_where_it_is():
    x = on_device(np.ones((2, 3), np.float32))
    out = conform_inputs({"x": x}, [("x", "f32", [2, 3])])
    assert out["x"] is x or np.shares_memory(out["x"], x)
    assert isinstance(out["x"], FakeDeviceArray)
    with pytest.raises(CompileError, match="has shape"):
        conform_inputs({"x": x}, [("x", "f32", [3, 2])])
    with pytest.raises(CompileError, match="dtype"):
        conform_inputs({"x": x}, [("x", "f16", [2, 3])])
    assert conform_inputs({"x": x}, [("x", "f16", [2, 3])], cast=True)["x"].dtype == np.float16


def test_the_cupy_device_copies_device_arrays_on_the_device():
    dev = cupy_device.CupyDevice.__new__(cupy_device.CupyDevice)
    dev.cp, dev.stream = FakeCupy, FakeStream()
    raw = on_device(np.zeros(64, np.uint8))
    x = on_device(np.arange(4, dtype=np.float32) + 0.5)
    FakeDeviceArray.host_reads = 0
    dev.write(raw, 8, x)                        # would raise through .set() if it went via the host
    out = dev.read_device(raw, 8, "f32", [2, 2])
    assert FakeDeviceArray.host_reads == 0
    assert isinstance(out, FakeDeviceArray) and not np.shares_memory(out, raw)
    np.testing.assert_array_equal(np.asarray(out), [[0.5, 1.5], [2.5, 3.5]])


def test_outputs_come_back_as_the_inputs_kind():
    dev_out = on_device(np.arange(3, dtype=np.float32))
    FakeDeviceArray.host_reads = 0
    host = like(dev_out, np.zeros(1))           # a numpy caller gets host arrays
    assert type(host) is np.ndarray and FakeDeviceArray.host_reads == 1
    np.testing.assert_array_equal(host, [0, 1, 2])
    assert type(to_host(np.zeros(2))) is np.ndarray
