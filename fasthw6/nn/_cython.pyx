# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython batch-norm kernels (backend ``"cython"``): the numba kernels' algorithms, same names.

Shapes were validated by the caller.  gcc does not vectorise a floating-point sum without
permission to reassociate, so the per-channel reductions of the 4-D layout keep eight float64
partial sums (lanes j mod 8), which it turns into vector adds; the numba kernels get the same
effect from the ``reassoc`` flag.  The 2-D layout accumulates per feature and needs neither; it
takes four rows per sweep of the accumulators and its forward statistics in chunks of ``rows``
rows merged by Chan's update, as the numba kernels do.  Outputs are computed in x's dtype with
the mean (and mean(dy)) split into a rounded high part and the rest, as in ``_numba``.  With
``stream`` the outputs are written with non-temporal stores, as the numba kernels do (64-byte
AVX-512 vectors where the CPU has them, chosen at run time, else SSE2; the width does not change
the values).

Over 500 lines: the four kernels and the inline helpers they share are one extension module
(it builds and loads as one unit); the C side of the streaming stores is in ``_stream.h``.
"""
from cython.parallel cimport prange
cimport openmp
from cpython.pythread cimport PyThread_get_thread_ident
from libc.math cimport sqrt
from libc.stdint cimport uintptr_t
from libc.stdlib cimport free, malloc

cdef extern from "_stream.h":
    ctypedef struct fh6_f4:
        pass
    ctypedef struct fh6_d2:
        pass
    fh6_f4 fh6_loadu_f4(const float *p) nogil
    fh6_f4 fh6_set1_f4(float a) nogil
    fh6_f4 fh6_sub_f4(fh6_f4 a, fh6_f4 b) nogil
    fh6_f4 fh6_mul_f4(fh6_f4 a, fh6_f4 b) nogil
    fh6_f4 fh6_add_f4(fh6_f4 a, fh6_f4 b) nogil
    void fh6_stream_f4(float *p, fh6_f4 a) nogil
    fh6_d2 fh6_loadu_d2(const double *p) nogil
    fh6_d2 fh6_set1_d2(double a) nogil
    fh6_d2 fh6_sub_d2(fh6_d2 a, fh6_d2 b) nogil
    fh6_d2 fh6_mul_d2(fh6_d2 a, fh6_d2 b) nogil
    fh6_d2 fh6_add_d2(fh6_d2 a, fh6_d2 b) nogil
    void fh6_stream_d2(double *p, fh6_d2 a) nogil
    void fh6_fence() nogil
    int fh6_wide() nogil
    Py_ssize_t fh6_normalise_wide_float(const float *xs, float mh, float ml, float k, float b,
                                        float *ys, Py_ssize_t j, Py_ssize_t L) nogil
    Py_ssize_t fh6_normalise_wide_double(const double *xs, double mh, double ml, double k,
                                         double b, double *ys, Py_ssize_t j, Py_ssize_t L) nogil
    Py_ssize_t fh6_row_normalise_wide_float(const float *xs, const float *mh, const float *ml,
                                            const float *k, const float *b, float *ys,
                                            Py_ssize_t j, Py_ssize_t w) nogil
    Py_ssize_t fh6_row_normalise_wide_double(const double *xs, const double *mh,
                                             const double *ml, const double *k, const double *b,
                                             double *ys, Py_ssize_t j, Py_ssize_t w) nogil
    Py_ssize_t fh6_dx_wide_float(const float *gs, const float *xs, float mh, float ml, float ah,
                                 float al, float k1, float k2, float *ds, Py_ssize_t j,
                                 Py_ssize_t L) nogil
    Py_ssize_t fh6_dx_wide_double(const double *gs, const double *xs, double mh, double ml,
                                  double ah, double al, double k1, double k2, double *ds,
                                  Py_ssize_t j, Py_ssize_t L) nogil
    Py_ssize_t fh6_row_dx_wide_float(const float *gs, const float *xs, const float *co,
                                     Py_ssize_t w, float *ds, Py_ssize_t j) nogil
    Py_ssize_t fh6_row_dx_wide_double(const double *gs, const double *xs, const double *co,
                                      Py_ssize_t w, double *ds, Py_ssize_t j) nogil

import os as _os

from .. import _parallel
include "../_omp_fork.pxi"


ctypedef fused real:
    float
    double



def wide_streaming_stores():
    """Whether the streaming stores use 64-byte AVX-512 vectors in this process (else SSE2);
    ``FASTHW6_NO_AVX512=1`` forces SSE2."""
    return bool(fh6_wide())

def n_threads():
    """Threads a parallel kernel of this backend runs on now."""
    return _omp_threads()


cdef inline double _sum(const real *xs, Py_ssize_t L) noexcept nogil:
    cdef double a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0
    cdef Py_ssize_t j = 0
    while j + 8 <= L:
        a0 += xs[j]; a1 += xs[j + 1]; a2 += xs[j + 2]; a3 += xs[j + 3]
        a4 += xs[j + 4]; a5 += xs[j + 5]; a6 += xs[j + 6]; a7 += xs[j + 7]
        j += 8
    while j < L:
        a0 += xs[j]
        j += 1
    return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))


cdef inline double _sqdev(const real *xs, double m, Py_ssize_t L) noexcept nogil:
    cdef double a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0, d
    cdef Py_ssize_t j = 0
    while j + 8 <= L:
        a0 += (xs[j] - m) * (xs[j] - m); a1 += (xs[j + 1] - m) * (xs[j + 1] - m)
        a2 += (xs[j + 2] - m) * (xs[j + 2] - m); a3 += (xs[j + 3] - m) * (xs[j + 3] - m)
        a4 += (xs[j + 4] - m) * (xs[j + 4] - m); a5 += (xs[j + 5] - m) * (xs[j + 5] - m)
        a6 += (xs[j + 6] - m) * (xs[j + 6] - m); a7 += (xs[j + 7] - m) * (xs[j + 7] - m)
        j += 8
    while j < L:
        d = xs[j] - m
        a0 += d * d
        j += 1
    return ((a0 + a1) + (a2 + a3)) + ((a4 + a5) + (a6 + a7))


cdef inline void _dysums(const real *gs, const real *xs, double m, Py_ssize_t L,
                         double *sdy, double *sdyx) noexcept nogil:
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0, t0 = 0, t1 = 0, t2 = 0, t3 = 0
    cdef Py_ssize_t j = 0
    while j + 4 <= L:
        s0 += gs[j]; s1 += gs[j + 1]; s2 += gs[j + 2]; s3 += gs[j + 3]
        t0 += gs[j] * (xs[j] - m); t1 += gs[j + 1] * (xs[j + 1] - m)
        t2 += gs[j + 2] * (xs[j + 2] - m); t3 += gs[j + 3] * (xs[j + 3] - m)
        j += 4
    while j < L:
        s0 += gs[j]
        t0 += gs[j] * (xs[j] - m)
        j += 1
    sdy[0] += (s0 + s1) + (s2 + s3)
    sdyx[0] += (t0 + t1) + (t2 + t3)


def batchnorm_forward_4d(const real[:, :, ::1] x, const double[::1] gamma, const double[::1] beta,
                         double eps,
                         bint batch_stats, double[::1] mean, double[::1] var, real[:, :, ::1] y,
                         bint stream):
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], L = x.shape[2]
    cdef Py_ssize_t c, n, j
    cdef double s, q, m
    cdef real mh, ml, k, b
    cdef const real *xs
    cdef real *ys
    cdef int nt = _omp_threads()
    with nogil:
        for c in prange(C, schedule="static", num_threads=nt):
            if batch_stats:
                s = 0.0
                for n in range(N):
                    s = s + _sum(&x[n, c, 0], L)
                m = s / (N * L)
                q = 0.0
                for n in range(N):
                    q = q + _sqdev(&x[n, c, 0], m, L)
                mean[c] = m
                var[c] = q / (N * L)
            mh = <real> mean[c]
            ml = <real> (mean[c] - mh)
            k = <real> (gamma[c] / sqrt(var[c] + eps))
            b = <real> beta[c]
            if stream:
                for n in range(N):
                    _normalise_stream(&x[n, c, 0], mh, ml, k, b, &y[n, c, 0], L)
                fh6_fence()
            else:
                for n in range(N):
                    xs = &x[n, c, 0]
                    ys = &y[n, c, 0]
                    for j in range(L):
                        ys[j] = ((xs[j] - mh) - ml) * k + b
    return y


cdef inline void _normalise_stream(const real *xs, real mh, real ml, real k, real b, real *ys,
                                   Py_ssize_t L) noexcept nogil:
    """The normalise loop with non-temporal stores, lane by lane the same operations."""
    cdef Py_ssize_t j = 0
    cdef fh6_f4 fm, fl, fk, fb
    cdef fh6_d2 dm, dl, dk, db
    cdef Py_ssize_t A = 64 if fh6_wide() else 16
    while j < L and (<uintptr_t> &ys[j]) % A != 0:
        ys[j] = ((xs[j] - mh) - ml) * k + b
        j += 1
    if A == 64:
        if real is float:
            j = fh6_normalise_wide_float(xs, mh, ml, k, b, ys, j, L)
        else:
            j = fh6_normalise_wide_double(xs, mh, ml, k, b, ys, j, L)
    if real is float:
        fm = fh6_set1_f4(mh); fl = fh6_set1_f4(ml); fk = fh6_set1_f4(k); fb = fh6_set1_f4(b)
        while j + 4 <= L:
            fh6_stream_f4(&ys[j], fh6_add_f4(fh6_mul_f4(
                fh6_sub_f4(fh6_sub_f4(fh6_loadu_f4(&xs[j]), fm), fl), fk), fb))
            j += 4
    else:
        dm = fh6_set1_d2(mh); dl = fh6_set1_d2(ml); dk = fh6_set1_d2(k); db = fh6_set1_d2(b)
        while j + 2 <= L:
            fh6_stream_d2(&ys[j], fh6_add_d2(fh6_mul_d2(
                fh6_sub_d2(fh6_sub_d2(fh6_loadu_d2(&xs[j]), dm), dl), dk), db))
            j += 2
    while j < L:
        ys[j] = ((xs[j] - mh) - ml) * k + b
        j += 1


cdef inline void _row_normalise_stream(const real *xs, const real *mh, const real *ml,
                                       const real *k, const real *b, real *ys,
                                       Py_ssize_t w) noexcept nogil:
    """``_normalise_stream`` with one coefficient per feature (the (N, D) layout)."""
    cdef Py_ssize_t j = 0
    cdef Py_ssize_t A = 64 if fh6_wide() else 16
    while j < w and (<uintptr_t> &ys[j]) % A != 0:
        ys[j] = ((xs[j] - mh[j]) - ml[j]) * k[j] + b[j]
        j += 1
    if A == 64:
        if real is float:
            j = fh6_row_normalise_wide_float(xs, mh, ml, k, b, ys, j, w)
        else:
            j = fh6_row_normalise_wide_double(xs, mh, ml, k, b, ys, j, w)
    if real is float:
        while j + 4 <= w:
            fh6_stream_f4(&ys[j], fh6_add_f4(fh6_mul_f4(
                fh6_sub_f4(fh6_sub_f4(fh6_loadu_f4(&xs[j]), fh6_loadu_f4(&mh[j])),
                           fh6_loadu_f4(&ml[j])), fh6_loadu_f4(&k[j])), fh6_loadu_f4(&b[j])))
            j += 4
    else:
        while j + 2 <= w:
            fh6_stream_d2(&ys[j], fh6_add_d2(fh6_mul_d2(
                fh6_sub_d2(fh6_sub_d2(fh6_loadu_d2(&xs[j]), fh6_loadu_d2(&mh[j])),
                           fh6_loadu_d2(&ml[j])), fh6_loadu_d2(&k[j])), fh6_loadu_d2(&b[j])))
            j += 2
    while j < w:
        ys[j] = ((xs[j] - mh[j]) - ml[j]) * k[j] + b[j]
        j += 1


cdef inline void _row_dx_stream(const real *gs, const real *xs, const real *co, Py_ssize_t w,
                                real *ds) noexcept nogil:
    """The (N, D) dx loop with non-temporal stores; ``co`` holds the six coefficient rows
    (mean high/low, mean(dy) high/low, k1, k2) of ``w`` features each."""
    cdef Py_ssize_t j = 0
    cdef Py_ssize_t A = 64 if fh6_wide() else 16
    while j < w and (<uintptr_t> &ds[j]) % A != 0:
        ds[j] = (co[4 * w + j] * ((gs[j] - co[2 * w + j]) - co[3 * w + j])
                 - co[5 * w + j] * ((xs[j] - co[j]) - co[w + j]))
        j += 1
    if A == 64:
        if real is float:
            j = fh6_row_dx_wide_float(gs, xs, co, w, ds, j)
        else:
            j = fh6_row_dx_wide_double(gs, xs, co, w, ds, j)
    if real is float:
        while j + 4 <= w:
            fh6_stream_f4(&ds[j], fh6_sub_f4(
                fh6_mul_f4(fh6_loadu_f4(&co[4 * w + j]), fh6_sub_f4(fh6_sub_f4(
                    fh6_loadu_f4(&gs[j]), fh6_loadu_f4(&co[2 * w + j])),
                    fh6_loadu_f4(&co[3 * w + j]))),
                fh6_mul_f4(fh6_loadu_f4(&co[5 * w + j]), fh6_sub_f4(fh6_sub_f4(
                    fh6_loadu_f4(&xs[j]), fh6_loadu_f4(&co[j])), fh6_loadu_f4(&co[w + j])))))
            j += 4
    else:
        while j + 2 <= w:
            fh6_stream_d2(&ds[j], fh6_sub_d2(
                fh6_mul_d2(fh6_loadu_d2(&co[4 * w + j]), fh6_sub_d2(fh6_sub_d2(
                    fh6_loadu_d2(&gs[j]), fh6_loadu_d2(&co[2 * w + j])),
                    fh6_loadu_d2(&co[3 * w + j]))),
                fh6_mul_d2(fh6_loadu_d2(&co[5 * w + j]), fh6_sub_d2(fh6_sub_d2(
                    fh6_loadu_d2(&xs[j]), fh6_loadu_d2(&co[j])), fh6_loadu_d2(&co[w + j])))))
            j += 2
    while j < w:
        ds[j] = (co[4 * w + j] * ((gs[j] - co[2 * w + j]) - co[3 * w + j])
                 - co[5 * w + j] * ((xs[j] - co[j]) - co[w + j]))
        j += 1


cdef inline void _dx_stream(const real *gs, const real *xs, real mh, real ml, real ah, real al,
                            real k1, real k2, real *ds, Py_ssize_t L) noexcept nogil:
    """``_dx`` of the numba kernels with non-temporal stores: lane by lane the same operations,
    so bitwise equal to the ordinary loop."""
    cdef Py_ssize_t j = 0
    cdef fh6_f4 f1, f2, fa, fb, fm, fn
    cdef fh6_d2 d1, d2, da, db, dm, dn
    cdef Py_ssize_t A = 64 if fh6_wide() else 16
    while j < L and (<uintptr_t> &ds[j]) % A != 0:
        ds[j] = k1 * ((gs[j] - ah) - al) - k2 * ((xs[j] - mh) - ml)
        j += 1
    if A == 64:
        if real is float:
            j = fh6_dx_wide_float(gs, xs, mh, ml, ah, al, k1, k2, ds, j, L)
        else:
            j = fh6_dx_wide_double(gs, xs, mh, ml, ah, al, k1, k2, ds, j, L)
    if real is float:
        f1 = fh6_set1_f4(k1); f2 = fh6_set1_f4(k2); fa = fh6_set1_f4(ah); fb = fh6_set1_f4(al)
        fm = fh6_set1_f4(mh); fn = fh6_set1_f4(ml)
        while j + 4 <= L:
            fh6_stream_f4(&ds[j], fh6_sub_f4(
                fh6_mul_f4(f1, fh6_sub_f4(fh6_sub_f4(fh6_loadu_f4(&gs[j]), fa), fb)),
                fh6_mul_f4(f2, fh6_sub_f4(fh6_sub_f4(fh6_loadu_f4(&xs[j]), fm), fn))))
            j += 4
    else:
        d1 = fh6_set1_d2(k1); d2 = fh6_set1_d2(k2); da = fh6_set1_d2(ah); db = fh6_set1_d2(al)
        dm = fh6_set1_d2(mh); dn = fh6_set1_d2(ml)
        while j + 2 <= L:
            fh6_stream_d2(&ds[j], fh6_sub_d2(
                fh6_mul_d2(d1, fh6_sub_d2(fh6_sub_d2(fh6_loadu_d2(&gs[j]), da), db)),
                fh6_mul_d2(d2, fh6_sub_d2(fh6_sub_d2(fh6_loadu_d2(&xs[j]), dm), dn))))
            j += 2
    while j < L:
        ds[j] = k1 * ((gs[j] - ah) - al) - k2 * ((xs[j] - mh) - ml)
        j += 1


def batchnorm_backward_4d(const real[:, :, ::1] dy, const real[:, :, ::1] x, const double[::1] gamma,
                          const double[::1] mean, const double[::1] var, double eps, bint batch_stats,
                          real[:, :, ::1] dx, double[::1] dgamma, double[::1] dbeta,
                          bint stream):
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], L = x.shape[2]
    cdef Py_ssize_t c, n, j
    cdef double m, istd, sdy, sdyx, k1, k2, a
    cdef real mh, ml, ah, al, rk1, rk2
    cdef const real *xs
    cdef const real *gs
    cdef real *ds
    cdef int nt = _omp_threads()
    with nogil:
        for c in prange(C, schedule="static", num_threads=nt):
            m = mean[c]
            istd = 1.0 / sqrt(var[c] + eps)
            sdy = 0.0
            sdyx = 0.0
            for n in range(N):
                _dysums(&dy[n, c, 0], &x[n, c, 0], m, L, &sdy, &sdyx)
            dbeta[c] = sdy
            dgamma[c] = sdyx * istd
            k1 = gamma[c] * istd
            a = 0.0
            k2 = 0.0
            if batch_stats:
                a = sdy / (N * L)
                k2 = k1 * istd * istd * sdyx / (N * L)
            mh = <real> m
            ml = <real> (m - mh)
            ah = <real> a
            al = <real> (a - ah)
            rk1 = <real> k1
            rk2 = <real> k2
            if stream:
                for n in range(N):
                    _dx_stream(&dy[n, c, 0], &x[n, c, 0], mh, ml, ah, al, rk1, rk2,
                               &dx[n, c, 0], L)
                fh6_fence()  # on the thread that streamed: orders the weakly-ordered stores
            else:
                for n in range(N):
                    gs = &dy[n, c, 0]
                    xs = &x[n, c, 0]
                    ds = &dx[n, c, 0]
                    for j in range(L):
                        ds[j] = rk1 * ((gs[j] - ah) - al) - rk2 * ((xs[j] - mh) - ml)
    return dx


cdef inline void _rows_shifted_sums(const real *x, Py_ssize_t D, Py_ssize_t r0, Py_ssize_t r1,
                                    Py_ssize_t c0, Py_ssize_t w, const double *k, double *s1,
                                    double *s2) noexcept nogil:
    """s1[j] += x[n, c0 + j] - k[j], s2[j] += (x[n, c0 + j] - k[j])**2 over rows r0..r1, four
    rows per sweep of the accumulators."""
    cdef Py_ssize_t n = r0, j
    cdef double d0, d1, d2, d3
    cdef const real *x0
    cdef const real *x1
    cdef const real *x2
    cdef const real *x3
    while n + 4 <= r1:
        x0 = x + n * D + c0
        x1 = x0 + D
        x2 = x1 + D
        x3 = x2 + D
        for j in range(w):
            d0 = x0[j] - k[j]
            d1 = x1[j] - k[j]
            d2 = x2[j] - k[j]
            d3 = x3[j] - k[j]
            s1[j] += (d0 + d1) + (d2 + d3)
            s2[j] += (d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)
        n += 4
    while n < r1:
        x0 = x + n * D + c0
        for j in range(w):
            d0 = x0[j] - k[j]
            s1[j] += d0
            s2[j] += d0 * d0
        n += 1


cdef inline void _rows_grad_sums(const real *dy, const real *x, Py_ssize_t D, Py_ssize_t r0,
                                 Py_ssize_t r1, Py_ssize_t c0, Py_ssize_t w, const double *m,
                                 double *sdy, double *sdyx) noexcept nogil:
    cdef Py_ssize_t n = r0, j
    cdef double a0, a1, a2, a3
    cdef const real *x0
    cdef const real *x1
    cdef const real *x2
    cdef const real *x3
    cdef const real *g0
    cdef const real *g1
    cdef const real *g2
    cdef const real *g3
    while n + 4 <= r1:
        x0 = x + n * D + c0
        x1 = x0 + D
        x2 = x1 + D
        x3 = x2 + D
        g0 = dy + n * D + c0
        g1 = g0 + D
        g2 = g1 + D
        g3 = g2 + D
        for j in range(w):
            a0 = g0[j]
            a1 = g1[j]
            a2 = g2[j]
            a3 = g3[j]
            sdy[j] += (a0 + a1) + (a2 + a3)
            sdyx[j] += ((a0 * (x0[j] - m[j]) + a1 * (x1[j] - m[j]))
                        + (a2 * (x2[j] - m[j]) + a3 * (x3[j] - m[j])))
        n += 4
    while n < r1:
        x0 = x + n * D + c0
        g0 = dy + n * D + c0
        for j in range(w):
            a0 = g0[j]
            sdy[j] += a0
            sdyx[j] += a0 * (x0[j] - m[j])
        n += 1


def batchnorm_forward_2d(const real[:, ::1] x, const double[::1] gamma, const double[::1] beta,
                         double eps,
                         bint batch_stats, double[::1] mean, double[::1] var, real[:, ::1] y,
                         Py_ssize_t rows, Py_ssize_t slices, bint stream):
    """Chunks of ``rows`` rows: one pass of sums about a row of the chunk, merged by Chan's
    pairwise update."""
    cdef Py_ssize_t N = x.shape[0], D = x.shape[1]
    cdef Py_ssize_t t, c0, c1, w, n, j, r0, r1, nb, seen
    cdef double *buf
    cdef double *mb
    cdef double *vb
    cdef double *kk
    cdef double *g
    cdef double *s1
    cdef double *s2
    cdef real *co
    cdef double delta, fb, fab, d, cq
    cdef const real *xs
    cdef real *ys
    cdef Py_ssize_t nomem = 0
    cdef int nt = _omp_threads()
    with nogil:
        for t in prange(slices, schedule="static", num_threads=nt):
            # assigned here, not through a pointer: prange makes only assigned variables
            # thread-private, and a shared c0/c1 let threads write each other's columns
            c0 = t * D // slices
            c1 = (t + 1) * D // slices
            w = c1 - c0
            mb = &mean[c0]
            vb = &var[c0]
            buf = <double *> malloc(4 * w * sizeof(double))
            co = <real *> malloc(4 * w * sizeof(real))
            if buf == NULL or co == NULL:
                free(buf)
                free(co)
                nomem += 1
                continue
            kk = buf
            s1 = buf + w
            s2 = buf + 2 * w
            g = buf + 3 * w  # as _numba: the running mean is kept about the first row
            if batch_stats:
                for j in range(w):
                    mb[j] = 0.0
                    vb[j] = 0.0
                    g[j] = x[0, c0 + j]
                seen = 0
                r0 = 0
                while r0 < N:
                    r1 = r0 + rows if r0 + rows < N else N
                    nb = r1 - r0
                    for j in range(w):
                        kk[j] = x[r0, c0 + j]
                        s1[j] = 0.0
                        s2[j] = 0.0
                    _rows_shifted_sums(&x[0, 0], D, r0, r1, c0, w, kk, s1, s2)
                    fb = <double> nb / (seen + nb)
                    fab = seen * fb
                    for j in range(w):
                        d = s1[j] / nb
                        cq = s2[j] - s1[j] * d
                        if cq < 0.0:  # rounding; a NaN stays NaN for the API's check
                            cq = 0.0
                        delta = ((kk[j] - g[j]) + d) - mb[j]
                        mb[j] += delta * fb
                        vb[j] += cq + delta * delta * fab
                    seen = seen + nb
                    r0 = r1
                for j in range(w):
                    vb[j] /= N
                    mb[j] += g[j]
            for j in range(w):
                co[j] = <real> mb[j]
                co[w + j] = <real> (mb[j] - co[j])
                co[2 * w + j] = <real> (gamma[c0 + j] / sqrt(vb[j] + eps))
                co[3 * w + j] = <real> beta[c0 + j]
            if stream:
                # last rows first: they are still in L2 from the statistics sweep
                for n in range(N - 1, -1, -1):
                    _row_normalise_stream(&x[n, c0], co, co + w, co + 2 * w, co + 3 * w,
                                          &y[n, c0], w)
                fh6_fence()
            else:
                for n in range(N):
                    xs = &x[n, c0]
                    ys = &y[n, c0]
                    for j in range(w):
                        ys[j] = ((xs[j] - co[j]) - co[w + j]) * co[2 * w + j] + co[3 * w + j]
            free(co)
            free(buf)
    if nomem:
        raise MemoryError(f"batchnorm_forward_2d: no memory for its column scratch")
    return y


def batchnorm_backward_2d(const real[:, ::1] dy, const real[:, ::1] x, const double[::1] gamma,
                          const double[::1] mean, const double[::1] var, double eps, bint batch_stats, real[:, ::1] dx,
                          double[::1] dgamma, double[::1] dbeta, Py_ssize_t slices,
                          bint stream):
    cdef Py_ssize_t N = x.shape[0], D = x.shape[1]
    cdef Py_ssize_t t, c0, c1, w, n, j
    cdef double *buf
    cdef double *sdy
    cdef double *sdyx
    cdef real *co
    cdef const double *mb
    cdef double istd, k1, k2, a
    cdef const real *xs
    cdef const real *gs
    cdef real *ds
    cdef Py_ssize_t nomem = 0
    cdef int nt = _omp_threads()
    with nogil:
        for t in prange(slices, schedule="static", num_threads=nt):
            # assigned here, not through a pointer: prange makes only assigned variables
            # thread-private, and a shared c0/c1 let threads write each other's columns
            c0 = t * D // slices
            c1 = (t + 1) * D // slices
            w = c1 - c0
            mb = &mean[c0]
            buf = <double *> malloc(2 * w * sizeof(double))
            co = <real *> malloc(6 * w * sizeof(real))
            if buf == NULL or co == NULL:
                free(buf)
                free(co)
                nomem += 1
                continue
            sdy = buf
            sdyx = buf + w
            for j in range(2 * w):
                buf[j] = 0.0
            _rows_grad_sums(&dy[0, 0], &x[0, 0], D, 0, N, c0, w, mb, sdy, sdyx)
            for j in range(w):
                istd = 1.0 / sqrt(var[c0 + j] + eps)
                dbeta[c0 + j] = sdy[j]
                dgamma[c0 + j] = sdyx[j] * istd
                k1 = gamma[c0 + j] * istd
                if batch_stats:
                    a = sdy[j] / N
                    k2 = k1 * istd * istd * sdyx[j] / N
                else:
                    a = 0.0
                    k2 = 0.0
                co[j] = <real> mb[j]
                co[w + j] = <real> (mb[j] - co[j])
                co[2 * w + j] = <real> a
                co[3 * w + j] = <real> (a - co[2 * w + j])
                co[4 * w + j] = <real> k1
                co[5 * w + j] = <real> k2
            if stream:
                # last rows first: they are still in L2 from the sums sweep
                for n in range(N - 1, -1, -1):
                    _row_dx_stream(&dy[n, c0], &x[n, c0], co, w, &dx[n, c0])
                fh6_fence()
            else:
                for n in range(N):
                    gs = &dy[n, c0]
                    xs = &x[n, c0]
                    ds = &dx[n, c0]
                    for j in range(w):
                        ds[j] = (co[4 * w + j] * ((gs[j] - co[2 * w + j]) - co[3 * w + j])
                                 - co[5 * w + j] * ((xs[j] - co[j]) - co[w + j]))
            free(co)
            free(buf)
    if nomem:
        raise MemoryError(f"batchnorm_backward_2d: no memory for its column scratch")
    return dx
