"""Is there a usable CUDA device? Asked of the NVIDIA driver itself, before any GPU package is imported."""

from __future__ import annotations

import ctypes
import functools


@functools.cache
def cuda_devices() -> tuple[int, str]:
    """(number of CUDA devices, reason when none).

    Hand-written over ``libcuda`` with ctypes because the driver library is on every NVIDIA host whatever
    Python packages are installed, while ``onnxruntime-gpu`` lists its CUDA provider even on machines
    without a GPU, so the provider list alone cannot tell whether GPU tests can run.
    """
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0, "no NVIDIA driver (libcuda.so.1 not found)"
    status = driver.cuInit(0)
    if status != 0:
        return 0, f"NVIDIA driver present but cuInit failed (CUresult {status})"
    count = ctypes.c_int(0)
    status = driver.cuDeviceGetCount(ctypes.byref(count))
    if status != 0:
        return 0, f"cuDeviceGetCount failed (CUresult {status})"
    if count.value == 0:
        return 0, "NVIDIA driver present but no CUDA device visible"
    return count.value, ""
