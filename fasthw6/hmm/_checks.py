"""Validation of the HMM batch functions' and estimator's inputs, and their conversion to the
kernels' operands: symbols (uint8 or int64: read in place where they are, else widened), lengths,
probability tables.  Everything the kernels read is proven in range here.
"""
from __future__ import annotations

import math

import numpy as np

from .._backend import get_kernel, kernel_threads, resolve_backend
from .._parallel import run_pieces
from .._validate import check_dtype_arg

SYSTEM = "hmm"
SUM_TOL = 1e-5  # |row sum - 1| accepted, as hmmlearn's np.allclose(row_sum, 1)

# The kernels take two symbol types, so numba compiles two sets of kernels per float dtype, not
# four (each set is about a minute of first-call time, and ``fasthw6 compile`` builds the two):
# uint8 (and int8 proven non-negative) and int64 (and uint64) are read in place; int16, uint16,
# int32 and uint32 are widened to int64, one copy costing about a millisecond per 10^6 symbols.
_CANON = {np.dtype(np.int8): np.uint8, np.dtype(np.uint8): np.uint8,
          np.dtype(np.int64): np.int64, np.dtype(np.uint64): np.int64}
_WIDEN = {np.dtype(t) for t in (np.int16, np.uint16, np.int32, np.uint32)}


class SymbolTypeError(TypeError, ValueError):
    """X does not hold integers (a TypeError, and a ValueError as hmmlearn raises)."""


class NotFittedError(ValueError, AttributeError):
    """The model has no parameters yet: call ``fit`` or set them first."""



_RANGE_KERNEL_DTYPES = {np.dtype(np.uint8), np.dtype(np.int64)}
_RANGE_KERNEL_MIN = 1 << 16  # below this numpy's two passes cost less than a kernel call


def _range_deferrable(dtype, n_features):
    """Whether a kernel that range-checks the symbols it reads may take X unchecked: its
    canonical view (``_CANON``) must keep every symbol outside [0, n_features) outside it.
    uint64 values past the signed range read as negative; int8 negatives read as at least 128,
    outside only while n_features is at most that."""
    if dtype == np.dtype(np.int8):
        return n_features <= 128
    return True


def _as_symbols(X, n_features=None, name="X", backend=None, defer_range=False):
    """X as a 1-D integer array read in place where possible, and its maximum symbol.

    ``defer_range``: the caller's kernel checks every symbol against ``n_features`` as it reads
    it (``forward_loglik``), so skip the range pass where the dtype allows; the maximum is then
    returned as None."""
    arr = np.asarray(X)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        hint = " (use X.astype(int))" if np.issubdtype(arr.dtype, np.number) else ""
        raise SymbolTypeError(f"{name} must hold integer symbols, got {arr.dtype}{hint}")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    elif arr.ndim != 1:
        raise ValueError(f"{name} must have shape (n_samples,) or (n_samples, 1), got {arr.shape}")
    if not arr.dtype.isnative:  # e.g. '>i4' read from a file: the kernels take native order
        arr = arr.astype(arr.dtype.newbyteorder("="))
    arr = np.ascontiguousarray(arr)
    if arr.dtype in _WIDEN:
        arr = arr.astype(np.int64)
    if arr.size == 0:
        return arr.astype(np.int64), -1
    if defer_range and _range_deferrable(arr.dtype, n_features):
        return arr.view(_CANON[arr.dtype]), None
    if arr.dtype in _RANGE_KERNEL_DTYPES and arr.size >= _RANGE_KERNEL_MIN:
        be = resolve_backend(backend)
        kernel, n = get_kernel(SYSTEM, "symbol_range", be), kernel_threads(SYSTEM, be)
        bounds = (arr.size * np.arange(n + 1)) // n
        rng = np.empty((n, 2), np.int64)
        run_pieces(lambda i: kernel(arr[bounds[i]:bounds[i + 1]], 1, rng[i]), n, n)
        lo, hi = int(rng[:, 0].min()), int(rng[:, 1].max())
    else:
        lo, hi = int(arr.min()), int(arr.max())
    if lo < 0:
        raise ValueError(f"{name} holds a negative symbol {lo}; symbols must lie in [0, n_features)")
    if n_features is not None and hi >= n_features:
        raise ValueError(f"{name} holds symbol {hi} but the model emits only symbols "
                         f"0..{n_features - 1} (n_features={n_features})")
    return arr.view(_CANON[arr.dtype]), hi


def check_lengths(lengths, n, name="lengths"):
    """``lengths`` as int64 (S,), proven to be non-negative whole numbers summing to ``n``.

    Every check is made on the values as given (no cast first), so the message names the value
    the caller passed; the sum is taken without wrap-around (an int64 sum of huge lengths can wrap
    to ``n`` and send the kernels, which check nothing, outside X).

    Raises
    ------
    ValueError
        Not 1-D, not whole numbers (fractional, NaN, inf, bool, non-numeric), negative, or not
        summing to ``n``; the message names the argument and the offending entry.
    """
    lens = np.asarray(lengths)
    if lens.ndim == 0:
        lens = lens.reshape(1)
    if lens.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {lens.shape}")
    if lens.size == 0:
        if n != 0:
            raise ValueError(f"{name} sum to 0 but X holds {n} symbols")
        return np.zeros(0, np.int64)
    if lens.dtype == np.bool_ or not np.issubdtype(lens.dtype, np.number) \
            or np.issubdtype(lens.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold integers, got {lens.dtype}")
    if not np.issubdtype(lens.dtype, np.integer):
        bad = ~np.isfinite(lens)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{name} must hold finite whole numbers, got {name}[{i}] = {lens[i]}")
        frac = lens != np.floor(lens)
        if frac.any():
            i = int(np.argmax(frac))
            raise ValueError(f"{name} must hold integers, got {lens.dtype} with "
                             f"{name}[{i}] = {lens[i]}")
    if lens.min() < 0:
        i = int(np.argmax(lens < 0))
        raise ValueError(f"{name} must be non-negative, got {name}[{i}] = {lens[i]}")
    # each length is now in [0, inf); one above n (or an int64 running sum that wraps) means the
    # true sum is not n: report it exactly, in Python ints
    if lens.max() > n:
        if np.issubdtype(lens.dtype, np.integer):
            total = sum(lens.tolist())
        else:
            total = f"{math.fsum(lens.tolist()):g}"
        raise ValueError(f"{name} sum to {total} but X holds {n} symbols")
    lens = lens.astype(np.int64, copy=False)
    total = int(lens.sum())
    if total != n or lens.size * n >= 1 << 63:  # below that bound the int64 sum cannot wrap
        total = sum(lens.tolist())
        if total != n:
            raise ValueError(f"{name} sum to {total} but X holds {n} symbols")
    return lens


def _offsets(lengths, n):
    """Sequence start offsets (S+1,) int64 from ``lengths`` (None: one sequence of length n)."""
    if lengths is None:
        return np.array([0, n], dtype=np.int64)
    lens = check_lengths(lengths, n)
    off = np.zeros(lens.size + 1, dtype=np.int64)
    np.cumsum(lens, out=off[1:])
    return off


def check_real(a, name):
    """Raise ValueError when ``a`` holds complex numbers (converting to float would drop the
    imaginary part without a word); returns ``a`` unchanged."""
    dt = getattr(a, "dtype", None)
    if dt is None:
        try:
            dt = np.asarray(a).dtype
        except (TypeError, ValueError, OverflowError):
            return a  # the caller's conversion reports it
    if np.issubdtype(dt, np.complexfloating):
        raise ValueError(f"{name} must be real, got dtype {dt}")
    return a


def check_symbols(symbols, n_features=None, name="symbols"):
    """``symbols`` as a list of str, proven to be distinct names that survive a SEQS text round
    trip (non-empty, no whitespace, which separates tokens), one per emission column when
    ``n_features`` is given.

    Raises
    ------
    ValueError
        Not a list of strings, a wrong count, an empty name, a name with whitespace, a duplicate.
    """
    if not isinstance(symbols, (list, tuple)):
        raise ValueError(f"{name} must be a list of strings, got {type(symbols).__name__}")
    for i, s in enumerate(symbols):
        if not isinstance(s, str):
            raise ValueError(f"{name}[{i}] must be a string, got {s!r}")
        if not s:
            raise ValueError(f"{name}[{i}] is empty; a symbol name must be a non-empty string "
                             f"without whitespace")
        if s.split() != [s]:
            raise ValueError(f"{name}[{i}] = {s!r} contains whitespace, which separates the "
                             f"tokens of a SEQS line")
    if n_features is not None and len(symbols) != n_features:
        raise ValueError(f"{name} must name the {n_features} emission columns, got "
                         f"{len(symbols)} names")
    seen = set()
    for s in symbols:
        if s in seen:
            raise ValueError(f"{name} must be distinct, {s!r} appears twice")
        seen.add(s)
    return list(symbols)


def _prob(a, name, shape, what):
    check_real(a, name)
    try:
        arr = np.array(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array: {exc}") from None
    except OverflowError:  # a Python int beyond float64's range
        raise ValueError(f"{name} holds a number out of range of a float") from None
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape} ({what}), got {arr.shape}")
    if not np.isfinite(arr).all():
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(f"{name} must be finite, got {arr[idx]} at {idx if len(idx) > 1 else idx[0]}")
    if (arr < 0).any():
        idx = tuple(int(i) for i in np.argwhere(arr < 0)[0])
        raise ValueError(f"{name} must be non-negative, got {arr[idx]} at "
                         f"{idx if len(idx) > 1 else idx[0]}")
    sums = arr.sum(axis=-1)
    bad = np.abs(sums - 1.0) > SUM_TOL
    if bad.any():
        if arr.ndim == 1:
            raise ValueError(f"{name} sums to {float(sums):.6g}, expected 1")
        r = int(np.argmax(bad))
        raise ValueError(f"{name} row {r} sums to {float(sums[r]):.6g}, expected 1")
    return arr


def check_parameters(startprob, transmat, emissionprob, suffix=""):
    """Validated float64 copies of (startprob, transmat, emissionprob).

    Raises ValueError naming the argument (``startprob``, ``transmat``, ``emissionprob`` plus
    ``suffix``) for a wrong shape, a negative or non-finite entry, or a row not summing to 1.
    """
    sp = np.asarray(startprob)
    if sp.ndim != 1 or sp.size == 0:
        raise ValueError(f"startprob{suffix} must be a non-empty 1-D array, got shape {sp.shape}")
    n = sp.shape[0]
    startprob = _prob(startprob, f"startprob{suffix}", (n,), "one entry per state")
    transmat = _prob(transmat, f"transmat{suffix}", (n, n), "n_components x n_components")
    em = np.asarray(emissionprob)
    m = em.shape[1] if em.ndim == 2 and em.shape[1] > 0 else 1
    emissionprob = _prob(emissionprob, f"emissionprob{suffix}", (n, m),
                         "one row per state, one column per symbol")
    return startprob, transmat, emissionprob


def _model(startprob, transmat, emissionprob, dtype):
    if dtype is None:
        dts = [np.asarray(a).dtype for a in (startprob, transmat, emissionprob)]
        dtype = np.float32 if all(d == np.float32 for d in dts) else np.float64
    dtype = check_dtype_arg(dtype)
    sp, tm, em = check_parameters(startprob, transmat, emissionprob)
    return sp, tm, em, dtype


def _kernel_operands(sp, tm, em, dtype):
    ops = (np.ascontiguousarray(sp, dtype), np.ascontiguousarray(tm, dtype),
           np.ascontiguousarray(em.T, dtype))
    if dtype != np.float64:
        # a possible event rounded to probability 0 would score -inf where float64 is finite
        for name, a, a32 in (("startprob", sp, ops[0]), ("transmat", tm, ops[1]),
                             ("emissionprob", em, ops[2].T)):
            if np.count_nonzero(a32) == np.count_nonzero(a):  # the usual case, at little cost
                continue
            lost = (a32 == 0) & (a != 0)
            if lost.any():
                idx = tuple(int(i) for i in np.argwhere(lost)[0])
                at = ", ".join(map(str, idx))
                raise ValueError(f"{name}[{at}] = {a[idx]:.3g} underflows to 0 in {np.dtype(dtype)}, "
                                 f"which would make possible sequences impossible; use "
                                 f"dtype=np.float64")
    return ops


def _batch(X, lengths, n_features, backend=None, defer_range=False):
    x, _ = _as_symbols(X, n_features, backend=backend, defer_range=defer_range)
    return x, _offsets(lengths, x.shape[0])
