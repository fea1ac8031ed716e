"""Shared by every HMM kernel module: the sizes both backends agree on (``_cython.pyx`` exports
its copies, ``SHARED_CONSTANTS``, and a test compares them), the log-likelihood scaling helpers
and the symbol range pass."""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .._sizes import (  # noqa: F401  (the size switches both backends share)
    DIAG_SMALL_MAX_N, ESTEP_FAR_TABLE_BYTES, ESTEP_GEMM_MAX_MADDS, ESTEP_GEMM_MIN_N, ESTEP_LANES,
    ESTEP_PREFETCH_STEPS, ESTEP_SMALL_MAX_N, ESTEP_XI_COLS, ESTEP_XS_STEPS, FRAMES_GEMM_LANES,
    GEMM_LANES, GEMM_RESCALE_STEPS, LANES, SMALL_MAX_N, VIT_BLOCK_BYTES, VIT_LANES,
    VIT_LANES_MAX_N, VIT_WIDE_LANES, VIT_WIDE_MAX_N)

_TWO_M512 = 2.0 ** -512
_TWO_P512 = 2.0 ** 512
_SMALL = 2.0 ** -400
_LN2_512 = 512.0 * math.log(2.0)
_LN2 = math.log(2.0)
TILE = 16  # most steps of emissions the small-N kernels gather at a time ...
TILE_BYTES = 16384  # ... and at most this size, to stay in L1 (1.1-1.3x at N=3..8 over 16 steps)


def _index_bytes(builder, arr, i, dim=0):
    """LLVM: the byte offset of index ``i`` (any integer) along ``dim`` of array struct ``arr``."""
    i64 = ir.IntType(64)
    wide = builder.sext(i, i64) if i.type.width < 64 else i
    return builder.mul(wide, builder.extract_value(arr.strides, dim))


def _prefetch_byte(builder, addr):
    """LLVM: a read prefetch of the cache line at integer address ``addr`` (``llvm.prefetch``,
    locality 3, data)."""
    i8p = ir.IntType(8).as_pointer()
    i32 = ir.IntType(32)
    fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])
    fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
    builder.call(fn, [builder.inttoptr(addr, i8p), i32(0), i32(3), i32(1)])


@intrinsic
def _prefetch_row(typingctx, tab, p):
    """Hint the CPU to fetch row ``p`` of the 2-D table ``tab`` into cache, its first 16
    cache lines at most (LLVM's ``prefetch``: no effect on any value, no fault on any
    address, so a row past the table's end is harmless)."""
    if not (isinstance(tab, types.Array) and tab.ndim == 2 and isinstance(p, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        arr = context.make_array(sig.args[0])(context, builder, args[0])
        row = _index_bytes(builder, arr, args[1])
        base = builder.ptrtoint(arr.data, ir.IntType(64))
        ncols = builder.extract_value(arr.shape, 1)
        item = context.get_abi_sizeof(context.get_data_type(sig.args[0].dtype))
        nbytes = builder.mul(ncols, ir.Constant(ir.IntType(64), item))
        # every 64-byte line of the row: up to 16 lines (rows of up to 128 float64s)
        for line in range(16):
            off = ir.Constant(ir.IntType(64), 64 * line)
            with builder.if_then(builder.icmp_signed("<", off, nbytes), likely=True):
                _prefetch_byte(builder, builder.add(base, builder.add(row, off)))
        return context.get_dummy_value()

    return types.none(tab, p), codegen


@intrinsic
def _prefetch_at(typingctx, arr, i):
    """Hint the CPU to fetch the cache line holding ``arr[i]`` of the 1-D array ``arr`` (as
    ``_prefetch_row``: no effect on any value, no fault on any address)."""
    if not (isinstance(arr, types.Array) and arr.ndim == 1 and isinstance(i, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        a = context.make_array(sig.args[0])(context, builder, args[0])
        base = builder.ptrtoint(a.data, ir.IntType(64))
        _prefetch_byte(builder, builder.add(base, _index_bytes(builder, a, args[1])))
        return context.get_dummy_value()

    return types.none(arr, i), codegen


@njit(nogil=True, cache=True, inline="always")
def _far_rows(tab):
    """True when the emission table ``tab`` is too large for its rows to be in cache when
    read: the lockstep E-step then fetches them ahead (``ESTEP_PREFETCH_STEPS``)."""
    return tab.shape[0] * tab.shape[1] * tab.itemsize > ESTEP_FAR_TABLE_BYTES


@njit(nogil=True, cache=True, inline="always")
def _fetch_ahead(emit_t, xs, t):
    """Before forward step t of a lockstep block (symbols ``xs`` (T0, L)): fetch each lane's
    emission row ESTEP_PREFETCH_STEPS steps ahead, if there is such a step."""
    s = t + ESTEP_PREFETCH_STEPS
    if s < xs.shape[0]:
        for l in range(xs.shape[1]):
            _prefetch_row(emit_t, xs[s, l])


@njit(nogil=True, cache=True, inline="always")
def _fetch_back(emit_t, xs, t, gamma, offsets, seqs, want_gamma):
    """Before backward step t (which reads the rows of step t+1): fetch each lane's emission
    row ESTEP_PREFETCH_STEPS steps further back and, with ``want_gamma``, the γ row it will
    store then."""
    s = t + 1 - ESTEP_PREFETCH_STEPS
    if s >= 0:
        for l in range(xs.shape[1]):
            _prefetch_row(emit_t, xs[s, l])
            if want_gamma and s >= 1:
                _prefetch_row(gamma, offsets[seqs[l]] + s - 1)


@njit(nogil=True, cache=True, inline="always")
def _ll_push(s, p, e, extra):
    """Fold normaliser ``s`` into (mantissa p, count e of 2^512 factors, directly logged extra)."""
    if s >= _SMALL:
        p *= s
        if p < _TWO_M512:
            p *= _TWO_P512
            e += 1
    elif s > 0.0:
        extra += math.log(s)
    else:
        extra = -np.inf
    return p, e, extra


@njit(nogil=True, cache=True, inline="always")
def _ll_value(p, e, extra):
    if extra == -np.inf:
        return -np.inf
    return math.log(p) - e * _LN2_512 + extra


@njit(nogil=True, cache=True, inline="always")
def _span_range(X, a, b, mn, mx):
    """(min, max) of mn, mx and the symbols X[a:b], as int64, in one pass: four running
    minima and maxima, so that four symbols go at a time where one chain would wait on each
    comparison (10^6 symbols in cache, one thread, AMD EPYC family 25 model 17: int64 0.51
    -> 0.13 ms, uint8 0.40 -> 0.09; the same with numba held to AVX2)."""
    m0 = m1 = m2 = m3 = mn
    x0 = x1 = x2 = x3 = mx
    Y = X[a:b]  # indexes from 0: no negative-index fix-up per read
    n4 = Y.shape[0] // 4 * 4
    for i in range(0, n4, 4):
        v0, v1 = np.int64(Y[i]), np.int64(Y[i + 1])
        v2, v3 = np.int64(Y[i + 2]), np.int64(Y[i + 3])
        m0, m1, m2, m3 = min(m0, v0), min(m1, v1), min(m2, v2), min(m3, v3)
        x0, x1, x2, x3 = max(x0, v0), max(x1, v1), max(x2, v2), max(x3, v3)
    for i in range(n4, Y.shape[0]):
        v = np.int64(Y[i])
        m0 = min(m0, v)
        x0 = max(x0, v)
    return min(min(m0, m1), min(m2, m3)), max(max(x0, x1), max(x2, x3))


@njit(nogil=True, cache=True)
def symbol_range(X, n_chunks, out):
    """Smallest and largest symbol of X (non-empty) into out[0], out[1] (int64): one pass
    instead of numpy's two, over ``n_chunks`` chunks (<= len(X): no chunk is empty)."""
    n = X.shape[0]
    lo = np.empty(n_chunks, np.int64)
    hi = np.empty(n_chunks, np.int64)
    for c in range(n_chunks):
        a = c * n // n_chunks
        b = (c + 1) * n // n_chunks
        lo[c], hi[c] = _span_range(X, a, b, np.int64(X[a]), np.int64(X[a]))
    out[0] = lo.min()
    out[1] = hi.max()
    return out


@njit(nogil=True, cache=True)
def _chunks(offsets, n_chunks):
    """Split the sequences into ``n_chunks`` contiguous ranges of about equal symbol count."""
    S = offsets.shape[0] - 1
    n_chunks = max(1, min(n_chunks, S))
    bounds = np.empty(n_chunks + 1, np.int64)
    total = offsets[S]
    bounds[0] = 0
    for c in range(1, n_chunks):
        target = (total * c) // n_chunks
        b = np.searchsorted(offsets[:S + 1], target)
        bounds[c] = max(bounds[c - 1], min(b, S))
    bounds[n_chunks] = S
    return bounds


@njit(nogil=True, cache=True, inline="always")
def _pow2_scale(s):
    """(r, k): r = 2^-k, the exact power of two that brings ``s`` into [1, 2).

    Read from the bits of ``s``: a few integer operations that vectorise with the lanes, where
    a division (or a log) per lane-step would cost as much as the whole step at small N.
    s = 0 gives k = -1023: α stays 0 and the final log gives -inf.  A subnormal s gets
    r = 2^1023 and lands in (2^-51, 2), safe to carry on from."""
    ex = (np.float64(s).view(np.int64) >> 52) & 0x7FF
    return np.int64((2046 - ex) << 52).view(np.float64), ex - 1023


@njit(nogil=True, cache=True, inline="always")
def _loglik_pow2(s, k):
    """log P from the sum ``s`` of the last (unscaled) α and the count ``k`` of factors 2."""
    if s > 0.0:
        return math.log(s) + k * _LN2
    return -np.inf


@njit(nogil=True, cache=True, inline="always")
def _lazy_scale_bits(arr):
    """Bits K of the lockstep passes' power-of-two rescaling: a lane's α (or β) sum is kept in
    [2^-K, 1] (β: [2^-K, 2^K]) by exact multiplications by 2^±K, so no step divides.  Small
    enough in float32 that products of α and β values stay far from underflow."""
    return 24.0 if arr.itemsize == 4 else 256.0


_LN2_HI = 0.6931471803691238  # ln 2 in two parts: k ln2 is exact for |k| < 2^20
_LN2_LO = 1.9082149292705877e-10
_INV_LN2 = 1.4426950408889634
_SHIFTER = 6755399441055744.0  # 1.5 * 2^52: x + it rounds x to an integer held in its low bits


@njit(nogil=True, cache=True, inline="always")
def _exp_le0(y):
    """exp(y) for y <= 0 to within 4e-16 relative; 0 below -708 (where e^y nears the smallest
    normal double, far below any term it could be added to) and for -inf.  e^r by its Taylor
    polynomial of degree 12 on |r| <= ln2/2, times 2^k, k = round(y / ln 2): adding 1.5 * 2^52
    rounds y / ln 2 to k and leaves k in the low bits, from which 2^k's exponent field is one
    add and one shift.  No conversion, floor or branch: 1.3 ns a value vectorised, against 1.8
    for a floor, an int conversion and two factors (which kept subnormal results)."""
    z = y if y > -708.0 else -708.0
    t = z * _INV_LN2 + _SHIFTER
    k = t - _SHIFTER
    r = (z - k * _LN2_HI) - k * _LN2_LO
    p = 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    s = np.int64((np.float64(t).view(np.int64) + 1023) << 52).view(np.float64)
    return p * s if y > -708.0 else 0.0
