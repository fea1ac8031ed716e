"""Streaming (non-temporal) stores: 64-byte vectors of the normalise / dx formulas."""
from __future__ import annotations

from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._lanes import _splat

# Bytes per streamed vector: a whole cache line per store (4x faster than two 32-byte halves;
# docs/design/batchnorm.md); targets without 512-bit registers split it, with the same values.
_VECTOR_BYTES = 64


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
