"""Validation at the Python boundary, shared by every system.

Compiled kernels check nothing: whatever reaches them has passed through here.  Messages name
the argument, what was expected, what was found and, where there is one, the fix.
"""
from __future__ import annotations

import numbers
import operator

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def native(dt) -> np.dtype:
    """``dt`` in the machine's byte order: '>f4' read from a file is float32 like '<f4'."""
    dt = np.dtype(dt)
    return dt if dt.isnative else dt.newbyteorder("=")


def result_dtype(*arrays) -> np.dtype:
    """float32 when every floating input is float32, else float64 (integers promote to float64).

    Byte order does not count: a big-endian float32 input is float32.
    """
    dts = [native(np.asarray(a).dtype) for a in arrays if a is not None]
    if dts and all(dt == np.float32 for dt in dts):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def check_dtype_arg(dtype) -> np.dtype:
    """Coerce a ``dtype=`` argument to float32 or float64."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from exc
    if dt not in FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dt}")
    return dt


def as_float_array(x, name: str, dtype=None, ndim=None, finite: bool = True) -> np.ndarray:
    """A C-contiguous float array (``dtype`` or float32/float64 kept, integers -> float64).

    ``ndim`` is an int or a tuple of accepted ranks.  Raises TypeError for non-numeric input,
    ValueError for a wrong rank or (when ``finite``) NaN/inf entries.
    """
    arr = np.asarray(x)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
    ):
        raise TypeError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise TypeError(f"{name} must be real, got dtype {arr.dtype}")
    if dtype is None:
        # non-native byte order is converted, never promoted
        dtype = native(arr.dtype) if native(arr.dtype) in FLOAT_DTYPES else np.float64
    # ascontiguousarray would turn a 0-d array into 1-d; a 0-d array is contiguous already
    arr = np.asarray(arr, dtype=dtype) if arr.ndim == 0 else np.ascontiguousarray(arr, dtype=dtype)
    if ndim is not None:
        ranks = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in ranks:
            want = " or ".join(f"{r}-D" for r in ranks)
            raise ValueError(f"{name} must be {want}, got {arr.ndim}-D with shape {arr.shape}")
    if finite and arr.size and not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite, found NaN or inf")
    return arr


def as_int(v, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer scalar (a 0-d integer array too; bool refused), optionally within
    [``minimum``, ``maximum``]."""
    if isinstance(v, np.ndarray) and v.ndim == 0:
        v = v[()]
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(v).__name__} {v!r}")
    v = operator.index(v)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {v}")
    return v


def as_pair(v, name: str, minimum: int = 0, maximum: int | None = None) -> tuple[int, int]:
    """An int or a pair of ints, each in [``minimum``, ``maximum``], as a 2-tuple."""
    if isinstance(v, (tuple, list)) or (isinstance(v, np.ndarray) and v.ndim > 0):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair of ints, got {len(v)} values")
        return as_int(v[0], name, minimum, maximum), as_int(v[1], name, minimum, maximum)
    a = as_int(v, name, minimum, maximum)
    return a, a
