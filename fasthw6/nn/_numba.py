"""Numba batch-norm kernels (backend ``"numba"``).

Inputs were validated and made C-contiguous by ``fasthw6.nn.api``; nothing here checks bounds.

Two layouts:

- ``*_4d`` take x viewed as (N, C, L) (L = H*W) and reduce over N and L for each channel.  One
  channel's N planes (N*L values, a few hundred KiB) stay in L2 while the later passes re-read
  them, so memory sees x once and y once forward, dy and x once and dx once backward.  The
  reductions are float64 sums over a contiguous plane in explicit lanes (j mod 8), which LLVM
  vectorises without fastmath and which fix the order of every addition, so the Cython kernels
  give the same bits (``fasthw6._backend.STANDIN``).
- ``*_2d`` take x of shape (N, D) and reduce over rows.  Rows are read whole and in order (the
  hardware prefetcher's best case).  Column strips, which would let the second sweeps hit L2,
  measured slower: a strip of a (1024, 4096) float32 matrix is 1024 short segments 16 KiB apart,
  a power-of-two stride that puts them in few L2 sets, so a strip's second sweep (last row
  first) cost as much as its first (1.1-1.4 ms for dy and x: no L2 reuse in place); the first
  sweep itself ran 1.34 / 1.45 / 1.70 ms in segments of 2 / 1 / 0.5 KiB per row against 1.12 ms
  for whole rows; packed copies (contiguous, so they stay in L2) cost more than they save:
  copying a 16 MiB array into a 1 MiB buffer takes 0.98 ms from whole rows and 1.10 ms from
  1 KiB strips, against 0.57 ms to read it, and a packed backward (strips of 64-512 columns:
  sums while packing dy and x, dx from the packed copies) ran 5.2-10.4 ms against 3.3 ms for the
  two sweeps, with identical results.  So the (N, D) kernels make eight sweeps (x twice
  forward; dy and x twice backward), each near one core's combined read + write rate (about
  30 GB/s here).  One float64 accumulator per feature, so the inner loops vectorise across
  features without reassociation.
  The forward statistics take ``rows`` rows at a time, in one pass over x: each chunk's sums
  of x - k and (x - k)**2 about one of its own rows k give its mean and sum of squared
  deviations (s2 - s1**2 / nb, accurate to about nb * eps since a data point lies within
  sqrt(nb) standard deviations of the chunk mean), and chunks are merged with Chan, Golub and
  LeVeque's pairwise update.  The running mean is kept about the slice's first row: kept as an
  absolute value, a mean at 1e8 loses 1e-8 of every merge's delta (2e-9 relative variance
  error at unit spread, against 6e-14 about the first row).  The two-pass version re-read each
  chunk from L2 in float64, which cost as much as reading x from memory again (1.05 vs 0.61 ms
  at (1024, 4096) float32).

Outputs can be written with non-temporal (streaming) stores (``stream``; the API decides):
- the 4-D backward's dx: a channel's dy and x are re-read from L2 by the dx sweep, and dx lines
  allocated in L2 by ordinary stores evict them (32 x 56 x 56 float32: 784 KiB of dy and x plus
  392 KiB of dx; a re-read sweep runs at L2 speed up to about 1 MiB here, and slows from
  1.25 MiB), so the sweep went back to memory;
- a large output (y, or the (N, D) backward's dx): ordinary stores first read each line
  (read-for-ownership) and leave it dirty in cache, to be written back while the next sweeps
  stream their inputs in.

Never E[x^2] - E[x]^2.  Backward is fused: one pass accumulates sum(dy) and sum(dy * (x - mean)),
one pass writes dx.  ``prange`` runs over channels / column slices, independent work writing
disjoint slices; a column's arithmetic does not depend on how the columns are sliced.
"""
from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from .._jit import install_cache_locator

install_cache_locator()  # before the first @njit: kernels are cached under fasthw6._jit.cache_dir()


# Bytes per streamed vector: a whole cache line per store.  Measured on this machine (Sapphire
# Rapids, one thread, 16 MiB written): 64-byte non-temporal stores 0.64 ms, 32-byte ones (two per
# line) 2.7 ms; targets without 512-bit registers split the vector, with the same values.
_VECTOR_BYTES = 64



def n_threads():
    """Threads a parallel kernel of this backend runs on now."""
    return numba.get_num_threads()


# ---- reductions (explicit lanes: vectorised, and the same bits as the Cython kernels) -------
# A float64 sum over a plane runs in lanes: lane k adds the values j = k (mod W) in order, the
# values past the last whole group of W are added to lane 0, and the lanes are combined
# pairwise, ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)).  The order of every addition is
# written here, not left to the compiler, so the Cython kernels (which do the same) give bit for
# bit the same statistics on any CPU (``fasthw6._backend.STANDIN``).  LLVM does not vectorise
# such lanes written as scalars when x is float32 (it keeps one vcvtss2sd + vaddsd per value,
# 2x slower than a vector sum), so the lanes are one LLVM vector, built below: W = 8 for the
# sums of x and of (x - m)^2, W = 4 for the gradient's two sums.

def _lane_loop(kind, width):
    """An intrinsic ``f(xs[, gs], m)`` -> float64 lane sum(s) over contiguous 1-D arrays."""

    def body(builder, vals, m):
        """The per-lane terms of one group (vectors of float64)."""
        if kind == "sum":
            return [vals[0]]
        d = builder.fsub(vals[0], m)
        if kind == "sqdev":
            return [builder.fmul(d, d)]
        return [vals[1], builder.fmul(vals[1], d)]  # grad: (g, g * (x - m))

    def codegen(context, builder, sig, args):
        dbl = ir.DoubleType()
        arrays = [context.make_array(t)(context, builder, v)
                  for t, v in zip(sig.args, args) if isinstance(t, types.Array)]
        m = args[-1] if kind != "sum" else None
        n = builder.extract_value(arrays[0].shape, 0)
        datas = [a.data for a in arrays]
        vty = ir.VectorType(dbl, width)

        def load(i, j, vector):
            elt = datas[i].type.pointee
            ptr = builder.gep(datas[i], [j])
            if vector:
                ptr = builder.bitcast(ptr, ir.VectorType(elt, width).as_pointer())
            v = builder.load(ptr, align=elt.get_abi_size(context.target_data))
            if elt != dbl:
                v = builder.fpext(v, vty if vector else dbl)
            return v

        nterms = 1 if kind != "grad" else 2
        accs = [cgutils.alloca_once_value(builder, ir.Constant(vty, [0.0] * width))
                for _ in range(nterms)]
        mv = _splat(builder, vty, m) if m is not None else None
        groups = builder.udiv(n, ir.Constant(n.type, width))
        with cgutils.for_range(builder, groups) as loop:
            j = builder.mul(loop.index, ir.Constant(n.type, width))
            terms = body(builder, [load(i, j, True) for i in range(len(datas))], mv)
            for acc, t in zip(accs, terms):
                builder.store(builder.fadd(builder.load(acc), t), acc)
        lanes = [[builder.extract_element(builder.load(acc), ir.Constant(ir.IntType(32), k))
                  for k in range(width)] for acc in accs]
        lane0 = [cgutils.alloca_once_value(builder, ls[0]) for ls in lanes]
        start = builder.mul(groups, ir.Constant(n.type, width))
        with cgutils.for_range_slice(builder, start, n, ir.Constant(n.type, 1)) as (j, _):
            terms = body(builder, [load(i, j, False) for i in range(len(datas))], m)
            for acc, t in zip(lane0, terms):
                builder.store(builder.fadd(builder.load(acc), t), acc)
        out = []
        for ls, a0 in zip(lanes, lane0):
            vals = [builder.load(a0)] + ls[1:]
            while len(vals) > 1:  # pairwise: (l0 + l1), (l2 + l3), ... then their pairs
                vals = [builder.fadd(vals[i], vals[i + 1]) for i in range(0, len(vals), 2)]
            out.append(vals[0])
        if len(out) == 1:
            return out[0]
        return context.make_tuple(builder, sig.return_type, out)

    return codegen


def _contiguous(*arrays):
    return all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" and
               isinstance(a.dtype, types.Float) for a in arrays)


@intrinsic
def _sum(typingctx, xs):
    """sum(xs) in float64, lanes j mod 8."""
    if _contiguous(xs):
        return types.float64(xs), _lane_loop("sum", 8)


@intrinsic
def _sqdev(typingctx, xs, m):
    """sum((xs - m)^2) in float64, lanes j mod 8."""
    if _contiguous(xs) and isinstance(m, types.Float):
        return types.float64(xs, types.float64), _lane_loop("sqdev", 8)


@intrinsic
def _grad_sums(typingctx, xs, gs, m):
    """(sum(gs), sum(gs * (xs - m))) in float64, lanes j mod 4."""
    if _contiguous(xs, gs) and isinstance(m, types.Float):
        return types.UniTuple(types.float64, 2)(xs, gs, types.float64), _lane_loop("grad", 4)


# ---- elementwise (x's dtype, IEEE order) ---------------------------------------------------
# Outputs are computed in x's dtype: x - mean as (x - m_hi) - m_lo, with m_hi = mean rounded to
# that dtype and m_lo the rest, which is exact for x near the mean (Sterbenz) and so keeps large
# offsets harmless; the float32 <-> float64 conversions of a float64 formulation cost more than
# the memory traffic (1.1 ms of compute per 4M-element pass, measured on L2-resident data).

@njit(nogil=True, cache=True)
def _normalise(xs, mh, ml, k, b, ys):
    for j in range(xs.shape[0]):
        ys[j] = ((xs[j] - mh) - ml) * k + b


@njit(nogil=True, cache=True)
def _dx(gs, xs, mh, ml, ah, al, k1, k2, ds):
    for j in range(xs.shape[0]):
        ds[j] = k1 * ((gs[j] - ah) - al) - k2 * ((xs[j] - mh) - ml)


@njit(nogil=True, cache=True)
def _row_normalise(xs, mh, ml, k, b, ys):
    for j in range(xs.shape[0]):
        ys[j] = ((xs[j] - mh[j]) - ml[j]) * k[j] + b[j]


@njit(nogil=True, cache=True)
def _row_dx(gs, xs, mh, ml, ah, al, k1, k2, ds):
    for j in range(xs.shape[0]):
        ds[j] = k1[j] * ((gs[j] - ah[j]) - al[j]) - k2[j] * ((xs[j] - mh[j]) - ml[j])


# ---- streaming (non-temporal) stores ---------------------------------------------------------
# Numba has no vector type, so one 64-byte vector of the normalise / dx formulas is an LLVM
# intrinsic: unaligned loads, the scalar expression lane by lane (same operations, same order, no
# contraction, so bitwise equal to the ordinary loops), and an aligned store tagged
# ``!nontemporal`` (vmovntps / vmovntpd).  The callers peel a scalar head so that the stored
# address is 64-byte aligned, and stop the vector loop lanes short of the end.

def _lanes(aty):
    return _VECTOR_BYTES // (aty.dtype.bitwidth // 8)


def _vector_at(context, builder, aty, arr_val, j):
    arr = context.make_array(aty)(context, builder, arr_val)
    vty = ir.VectorType(context.get_data_type(aty.dtype), _lanes(aty))
    return builder.bitcast(builder.gep(arr.data, [j]), vty.as_pointer()), vty


def _splat(builder, vty, s):
    v = ir.Constant(vty, ir.Undefined)
    for i in range(vty.count):
        v = builder.insert_element(v, s, ir.Constant(ir.IntType(32), i))
    return v


def _coefficient(context, builder, sig, args, i, j, vty):
    """Argument i (one channel's scalar) splat to a vector."""
    return _splat(builder, vty, args[i])


def _store_streaming(builder, value, ptr):
    st = builder.store(value, ptr, align=_VECTOR_BYTES)
    st.set_metadata("nontemporal", builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)]))


@intrinsic
def _normalise_vector_stream(typingctx, xs, ys, j, mh, ml, k, b):
    def codegen(context, builder, sig, args):
        xsv, ysv, jv = args[:3]
        px, vty = _vector_at(context, builder, sig.args[0], xsv, jv)
        py, _ = _vector_at(context, builder, sig.args[1], ysv, jv)

        def s(i):
            return _coefficient(context, builder, sig, args, i, jv, vty)

        x = builder.load(px, align=1)
        t = builder.fsub(builder.fsub(x, s(3)), s(4))
        _store_streaming(builder, builder.fadd(builder.fmul(t, s(5)), s(6)), py)
        return context.get_dummy_value()

    return types.void(xs, ys, j, mh, ml, k, b), codegen


@intrinsic
def _dx_vector_stream(typingctx, gs, xs, ds, j, mh, ml, ah, al, k1, k2):
    def codegen(context, builder, sig, args):
        gsv, xsv, dsv, jv = args[:4]
        pg, vty = _vector_at(context, builder, sig.args[0], gsv, jv)
        px, _ = _vector_at(context, builder, sig.args[1], xsv, jv)
        pd, _ = _vector_at(context, builder, sig.args[2], dsv, jv)

        def s(i):
            return _coefficient(context, builder, sig, args, i, jv, vty)

        g = builder.load(pg, align=1)
        x = builder.load(px, align=1)
        a = builder.fmul(s(8), builder.fsub(builder.fsub(g, s(6)), s(7)))
        c = builder.fmul(s(9), builder.fsub(builder.fsub(x, s(4)), s(5)))
        _store_streaming(builder, builder.fsub(a, c), pd)
        return context.get_dummy_value()

    return types.void(gs, xs, ds, j, mh, ml, ah, al, k1, k2), codegen


@intrinsic
def _store_fence(typingctx):
    """Orders the streaming stores before whatever reads dx next (they are weakly ordered)."""
    def codegen(context, builder, sig, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen


@njit(nogil=True, cache=True)
def _dx_stream(gs, xs, mh, ml, ah, al, k1, k2, ds):
    L = xs.shape[0]
    V = _VECTOR_BYTES // ds.itemsize
    j = 0
    while j < L and (ds.ctypes.data + j * ds.itemsize) % _VECTOR_BYTES != 0:
        ds[j] = k1 * ((gs[j] - ah) - al) - k2 * ((xs[j] - mh) - ml)
        j += 1
    while j + V <= L:
        _dx_vector_stream(gs, xs, ds, j, mh, ml, ah, al, k1, k2)
        j += V
    while j < L:
        ds[j] = k1 * ((gs[j] - ah) - al) - k2 * ((xs[j] - mh) - ml)
        j += 1


@njit(nogil=True, cache=True)
def _normalise_stream(xs, mh, ml, k, b, ys):
    L = xs.shape[0]
    V = _VECTOR_BYTES // ys.itemsize
    j = 0
    while j < L and (ys.ctypes.data + j * ys.itemsize) % _VECTOR_BYTES != 0:
        ys[j] = ((xs[j] - mh) - ml) * k + b
        j += 1
    while j + V <= L:
        _normalise_vector_stream(xs, ys, j, mh, ml, k, b)
        j += V
    while j < L:
        ys[j] = ((xs[j] - mh) - ml) * k + b
        j += 1


# The (N, D) sweeps take four rows per vector of coefficients: one (mean, scale, ...) vector
# loaded for four rows instead of one cuts the coefficient reads, which otherwise stream from L2
# (4-6 coefficients x D features do not fit L1 next to the rows) and hold the line-fill buffers
# that the streaming stores also need.  The whole sweep is one function, not a call per row.
# Normalise sweep at (1024, 4096) float32, one thread: a call per row 1.54 ms, one function a
# row at a time 1.36 ms, four rows per coefficient vector 1.22 ms (two: 1.24, eight: 1.21).

def _item_vector(context, builder, aty, arr_val, n, j):
    """Pointer to the vector at [n, j] of a 2-D array of any strides."""
    arr = context.make_array(aty)(context, builder, arr_val)
    vty = ir.VectorType(context.get_data_type(aty.dtype), _lanes(aty))
    p = cgutils.get_item_pointer(context, builder, aty, arr, [n, j])
    return builder.bitcast(p, vty.as_pointer()), vty


def _coefficients(context, builder, aty, arr_val, count, j):
    """Rows 0..count-1 of a coefficient array as vectors read at column j."""
    intp = context.get_value_type(types.intp)
    return [builder.load(_item_vector(context, builder, aty, arr_val, ir.Constant(intp, q), j)[0],
                         align=1)
            for q in range(count)]


def _rows_normalise_intrinsic(rows):
    @intrinsic
    def normalise(typingctx, xs, ys, co, n, j):
        """ys[n:n+rows, j:j+V] = ((xs - co[0]) - co[1]) * co[2] + co[3], streamed."""
        def codegen(context, builder, sig, args):
            xt, yt, ct = sig.args[:3]
            xv, yv, cv, nv, jv = args
            m_hi, m_lo, k, b = _coefficients(context, builder, ct, cv, 4, jv)
            for r in range(rows):
                nr = builder.add(nv, ir.Constant(nv.type, r))
                px, _ = _item_vector(context, builder, xt, xv, nr, jv)
                py, _ = _item_vector(context, builder, yt, yv, nr, jv)
                t = builder.fsub(builder.fsub(builder.load(px, align=1), m_hi), m_lo)
                _store_streaming(builder, builder.fadd(builder.fmul(t, k), b), py)
            return context.get_dummy_value()

        return types.void(xs, ys, co, n, j), codegen

    return normalise


def _rows_dx_intrinsic(rows):
    @intrinsic
    def dx(typingctx, gs, xs, ds, co, n, j):
        """ds[n:n+rows, j:j+V] = co[4] * ((gs - co[2]) - co[3]) - co[5] * ((xs - co[0]) - co[1]),
        streamed."""
        def codegen(context, builder, sig, args):
            gt, xt, dt, ct = sig.args[:4]
            gv, xv, dv, cv, nv, jv = args
            m_hi, m_lo, a_hi, a_lo, k1, k2 = _coefficients(context, builder, ct, cv, 6, jv)
            for r in range(rows):
                nr = builder.add(nv, ir.Constant(nv.type, r))
                pg, _ = _item_vector(context, builder, gt, gv, nr, jv)
                px, _ = _item_vector(context, builder, xt, xv, nr, jv)
                pd, _ = _item_vector(context, builder, dt, dv, nr, jv)
                u = builder.fmul(k1, builder.fsub(builder.fsub(builder.load(pg, align=1), a_hi),
                                                  a_lo))
                v = builder.fmul(k2, builder.fsub(builder.fsub(builder.load(px, align=1), m_hi),
                                                  m_lo))
                _store_streaming(builder, builder.fsub(u, v), pd)
            return context.get_dummy_value()

        return types.void(gs, xs, ds, co, n, j), codegen

    return dx


_rows_normalise_4 = _rows_normalise_intrinsic(4)
_rows_normalise_1 = _rows_normalise_intrinsic(1)
_rows_dx_4 = _rows_dx_intrinsic(4)
_rows_dx_1 = _rows_dx_intrinsic(1)


@njit(nogil=True, cache=True)
def _aligned_from(a, n):
    """First column j whose a[n, j] is vector-aligned (a.shape[1] when there is none)."""
    j = 0
    while j < a.shape[1] and (a.ctypes.data + n * a.strides[0] + j * a.itemsize) % _VECTOR_BYTES:
        j += 1
    return j


@njit(nogil=True, cache=True)
def _rows_normalise_stream(x, co, y):
    """y = normalise(x) for an (N, w) block, co = (mean_hi, mean_lo, scale, shift) per column;
    rows four at a time when they share their alignment, scalar head and tail per row.

    Last rows first: the sweep before (statistics, or the gradient sums for dx) ended there, so
    its last ~2 MiB come from L2; the sweep after starts from the first rows, which this one
    leaves in L2 (fwd+bwd at (1024, 4096) float32: 1-3 % faster than rows in order).
    """
    N, w = x.shape
    V = _VECTOR_BYTES // y.itemsize
    shared = y.strides[0] % _VECTOR_BYTES == 0
    top = N  # rows top.. are done
    while top > 0:
        r = 4 if shared and top >= 4 else 1
        n = top - r
        h = _aligned_from(y, n)
        e = h + (w - h) // V * V
        for q in range(n, n + r):
            for j in range(h):
                y[q, j] = ((x[q, j] - co[0, j]) - co[1, j]) * co[2, j] + co[3, j]
            for j in range(e, w):
                y[q, j] = ((x[q, j] - co[0, j]) - co[1, j]) * co[2, j] + co[3, j]
        if r == 4:
            for j in range(h, e, V):
                _rows_normalise_4(x, y, co, n, j)
        else:
            for j in range(h, e, V):
                _rows_normalise_1(x, y, co, n, j)
        top = n
    _store_fence()


@njit(nogil=True, cache=True)
def _rows_dx_stream(dy, x, co, dx):
    """dx for an (N, w) block, co = (mean_hi, mean_lo, a_hi, a_lo, k1, k2) per column; rows as in
    ``_rows_normalise_stream``."""
    N, w = x.shape
    V = _VECTOR_BYTES // dx.itemsize
    shared = dx.strides[0] % _VECTOR_BYTES == 0
    top = N  # rows top.. are done
    while top > 0:
        r = 4 if shared and top >= 4 else 1
        n = top - r
        h = _aligned_from(dx, n)
        e = h + (w - h) // V * V
        for q in range(n, n + r):
            for j in range(h):
                dx[q, j] = (co[4, j] * ((dy[q, j] - co[2, j]) - co[3, j])
                            - co[5, j] * ((x[q, j] - co[0, j]) - co[1, j]))
            for j in range(e, w):
                dx[q, j] = (co[4, j] * ((dy[q, j] - co[2, j]) - co[3, j])
                            - co[5, j] * ((x[q, j] - co[0, j]) - co[1, j]))
        if r == 4:
            for j in range(h, e, V):
                _rows_dx_4(dy, x, dx, co, n, j)
        else:
            for j in range(h, e, V):
                _rows_dx_1(dy, x, dx, co, n, j)
        top = n
    _store_fence()


# ---- per-feature float64 accumulation over rows, four rows per sweep of the accumulators --------

@njit(nogil=True, cache=True)
def _rows_shifted_sums(x, r0, r1, c0, c1, k, s1, s2):
    """s1[j] += x[n, c0 + j] - k[j] and s2[j] += (x[n, c0 + j] - k[j])**2 over rows r0..r1."""
    n = r0
    while n + 4 <= r1:
        x0, x1, x2, x3 = x[n, c0:c1], x[n + 1, c0:c1], x[n + 2, c0:c1], x[n + 3, c0:c1]
        for j in range(s1.shape[0]):
            d0 = np.float64(x0[j]) - k[j]
            d1 = np.float64(x1[j]) - k[j]
            d2 = np.float64(x2[j]) - k[j]
            d3 = np.float64(x3[j]) - k[j]
            s1[j] += (d0 + d1) + (d2 + d3)
            s2[j] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
        n += 4
    while n < r1:
        x0 = x[n, c0:c1]
        for j in range(s1.shape[0]):
            d0 = np.float64(x0[j]) - k[j]
            s1[j] += d0
            s2[j] += d0 * d0
        n += 1


@njit(nogil=True, cache=True)
def _rows_grad_sums(dy, x, r0, r1, c0, c1, m, sdy, sdyx):
    n = r0
    while n + 4 <= r1:
        g0, g1, g2, g3 = dy[n, c0:c1], dy[n + 1, c0:c1], dy[n + 2, c0:c1], dy[n + 3, c0:c1]
        x0, x1, x2, x3 = x[n, c0:c1], x[n + 1, c0:c1], x[n + 2, c0:c1], x[n + 3, c0:c1]
        for j in range(sdy.shape[0]):
            a0, a1, a2, a3 = (np.float64(g0[j]), np.float64(g1[j]), np.float64(g2[j]),
                              np.float64(g3[j]))
            sdy[j] += (a0 + a1) + (a2 + a3)
            sdyx[j] += ((a0 * (np.float64(x0[j]) - m[j]) + a1 * (np.float64(x1[j]) - m[j]))
                        + (a2 * (np.float64(x2[j]) - m[j]) + a3 * (np.float64(x3[j]) - m[j])))
        n += 4
    while n < r1:
        g0, x0 = dy[n, c0:c1], x[n, c0:c1]
        for j in range(sdy.shape[0]):
            a0 = np.float64(g0[j])
            sdy[j] += a0
            sdyx[j] += a0 * (np.float64(x0[j]) - m[j])
        n += 1


# ---- (N, C, L) ------------------------------------------------------------------------------

@njit(nogil=True, cache=True, parallel=True)
def batchnorm_forward_4d(x, gamma, beta, eps, batch_stats, mean, var, y, stream):
    """``stream``: write y with non-temporal stores (outputs too big to stay in cache)."""
    N, C, L = x.shape
    M = N * L
    for c in prange(C):
        if batch_stats:
            s = 0.0
            for n in range(N):
                s += _sum(x[n, c])
            mc = s / M
            q = 0.0
            for n in range(N):
                q += _sqdev(x[n, c], mc)
            mean[c] = mc
            var[c] = q / M
        co = np.empty(4, y.dtype)  # the coefficients rounded to the output dtype
        co[0] = mean[c]
        co[1] = mean[c] - co[0]
        co[2] = gamma[c] / np.sqrt(var[c] + eps)
        co[3] = beta[c]
        if stream:
            for n in range(N):
                _normalise_stream(x[n, c], co[0], co[1], co[2], co[3], y[n, c])
            _store_fence()  # on the thread that streamed
        else:
            for n in range(N):
                _normalise(x[n, c], co[0], co[1], co[2], co[3], y[n, c])
    return y


@njit(nogil=True, cache=True, parallel=True)
def batchnorm_backward_4d(dy, x, gamma, mean, var, eps, batch_stats, dx, dgamma, dbeta, stream):
    """``stream``: write dx with non-temporal stores (for channels too big to share L2 with dx)."""
    N, C, L = x.shape
    M = N * L
    for c in prange(C):
        m = mean[c]
        istd = 1.0 / np.sqrt(var[c] + eps)
        sdy = 0.0
        sdyx = 0.0
        for n in range(N):
            s, t = _grad_sums(x[n, c], dy[n, c], m)
            sdy += s
            sdyx += t
        dbeta[c] = sdy
        dgamma[c] = sdyx * istd
        k1 = gamma[c] * istd
        if batch_stats:
            a = sdy / M
            k2 = k1 * istd * istd * sdyx / M
        else:
            a = 0.0
            k2 = 0.0
        co = np.empty(6, dx.dtype)
        co[0] = m
        co[1] = m - co[0]
        co[2] = a
        co[3] = a - co[2]
        co[4] = k1
        co[5] = k2
        if stream:
            for n in range(N):
                _dx_stream(dy[n, c], x[n, c], co[0], co[1], co[2], co[3], co[4], co[5], dx[n, c])
            _store_fence()  # on the thread that streamed
        else:
            for n in range(N):
                _dx(dy[n, c], x[n, c], co[0], co[1], co[2], co[3], co[4], co[5], dx[n, c])
    return dx


# ---- (N, D) ---------------------------------------------------------------------------------

@njit(nogil=True, cache=True, parallel=True)
def batchnorm_forward_2d(x, gamma, beta, eps, batch_stats, mean, var, y, rows, slices, stream):
    """``rows`` per statistics chunk; ``slices`` column slices;
    ``stream``: write y with non-temporal stores."""
    N, D = x.shape
    T = slices
    for t in prange(T):
        c0 = t * D // T
        c1 = (t + 1) * D // T
        w = c1 - c0
        mb = mean[c0:c1]
        vb = var[c0:c1]
        if batch_stats:
            mb[:] = 0.0
            vb[:] = 0.0  # running sum of squared deviations until the end
            k = np.empty(w)
            g = np.empty(w)  # the running mean is kept about the first row: about zero, a
            for j in range(w):  # mean keeps the digits that Chan's delta needs
                g[j] = x[0, c0 + j]
            s1 = np.empty(w)
            s2 = np.empty(w)
            seen = 0
            for r0 in range(0, N, rows):
                r1 = min(N, r0 + rows)
                nb = r1 - r0
                for j in range(w):
                    k[j] = x[r0, c0 + j]
                s1[:] = 0.0
                s2[:] = 0.0
                _rows_shifted_sums(x, r0, r1, c0, c1, k, s1, s2)
                # merge (seen, mb, vb) with the chunk's (nb, mean, sum of squared deviations)
                tot = seen + nb
                fb = nb / tot
                fab = seen * fb
                for j in range(w):
                    d = s1[j] / nb
                    cq = s2[j] - s1[j] * d
                    if cq < 0.0:  # rounding; a NaN stays NaN for the API's check
                        cq = 0.0
                    delta = ((k[j] - g[j]) + d) - mb[j]
                    mb[j] += delta * fb
                    vb[j] += cq + delta * delta * fab
                seen = tot
            for j in range(w):
                vb[j] /= N
                mb[j] += g[j]
        co = np.empty((4, w), y.dtype)  # the coefficients rounded to the output dtype
        for j in range(w):
            co[0, j] = mb[j]
            co[1, j] = mb[j] - co[0, j]
            co[2, j] = gamma[c0 + j] / np.sqrt(vb[j] + eps)
            co[3, j] = beta[c0 + j]
        if stream:
            _rows_normalise_stream(x[:, c0:c1], co, y[:, c0:c1])
        else:
            for n in range(N):
                _row_normalise(x[n, c0:c1], co[0], co[1], co[2], co[3], y[n, c0:c1])
    return y


@njit(nogil=True, cache=True, parallel=True)
def batchnorm_backward_2d(dy, x, gamma, mean, var, eps, batch_stats, dx, dgamma, dbeta, slices,
                          stream):
    """``slices`` column slices; ``stream``: write dx with non-temporal stores."""
    N, D = x.shape
    T = slices
    for t in prange(T):
        c0 = t * D // T
        c1 = (t + 1) * D // T
        w = c1 - c0
        mb = mean[c0:c1]
        sdy = np.zeros(w)
        sdyx = np.zeros(w)
        _rows_grad_sums(dy, x, 0, N, c0, c1, mb, sdy, sdyx)
        co = np.empty((6, w), dx.dtype)
        for j in range(w):
            istd = 1.0 / np.sqrt(var[c0 + j] + eps)
            dbeta[c0 + j] = sdy[j]
            dgamma[c0 + j] = sdyx[j] * istd
            k1 = gamma[c0 + j] * istd
            if batch_stats:
                a = sdy[j] / N
                k2 = k1 * istd * istd * sdyx[j] / N
            else:
                a = 0.0
                k2 = 0.0
            co[0, j] = mb[j]
            co[1, j] = mb[j] - co[0, j]
            co[2, j] = a
            co[3, j] = a - co[2, j]
            co[4, j] = k1
            co[5, j] = k2
        if stream:
            _rows_dx_stream(dy[:, c0:c1], x[:, c0:c1], co, dx[:, c0:c1])
        else:
            for n in range(N):
                _row_dx(dy[n, c0:c1], x[n, c0:c1], co[0], co[1], co[2], co[3], co[4], co[5],
                        dx[n, c0:c1])
    return dx
