"""Arrays that live on the GPU: CuPy arrays and CUDA torch tensors, taken through DLPack.

``tilec.compile(...)(x=t)`` with ``t`` on the GPU and the ``cupy`` backend never sends ``t`` through host
memory: the executor copies it device-to-device into its buffer, and the outputs come back as device arrays
(CuPy, or torch through ``torch.from_dlpack``, which shares the memory). Everywhere else an array is a numpy
array on the host. Nothing here imports CuPy or torch unless such an array is given.
"""
from __future__ import annotations

import numpy as np


def _module(value) -> str:
    return type(value).__module__.split(".")[0]


def is_device_array(value) -> bool:
    """A CuPy array or a torch tensor on a CUDA device (anything exposing ``__cuda_array_interface__``)."""
    if _module(value) == "torch":
        return bool(getattr(value, "is_cuda", False))
    return hasattr(value, "__cuda_array_interface__")


def as_cupy(value):
    """``value`` (a device array) as a CuPy array sharing its memory (DLPack for torch)."""
    import cupy
    if isinstance(value, cupy.ndarray):
        return value
    if _module(value) == "torch":
        return cupy.from_dlpack(value.detach())
    return cupy.asarray(value)   # __cuda_array_interface__: wraps the same memory


def to_host(value) -> np.ndarray:
    """A host numpy array for a numpy array, a CuPy array, a torch tensor or anything ``np.asarray`` takes."""
    if isinstance(value, np.ndarray):
        return value
    module = _module(value)
    if module == "torch":
        return value.detach().cpu().numpy()
    if module == "cupy":
        return value.get()
    return np.asarray(value)


def like(array, example):
    """``array`` (numpy, or CuPy when the run stayed on the GPU) as the kind of ``example``: a torch tensor on
    the example's device, a CuPy array, or numpy."""
    module = _module(example) if example is not None else "numpy"
    on_gpu = is_device_array(array)
    if module == "torch":
        import torch
        if not on_gpu:
            return torch.from_numpy(np.ascontiguousarray(array)).to(example.device)
        return torch.from_dlpack(array).to(example.device)   # shares the device memory
    if module == "cupy":
        import cupy
        return cupy.asarray(array)
    return array.get() if on_gpu else array
