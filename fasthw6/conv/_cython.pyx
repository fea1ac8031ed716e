# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython convolution kernels (backend ``"cython"``): the numba kernels' algorithms, same names.

Shapes were validated by the caller.  Row buffers have the output's dtype, as in the numba
kernels, and come from the caller with them (``fasthw6.conv.api``: slots of scratch sized to the
work, allocated by NumPy, so that a failed allocation is a ``MemoryError`` before any kernel
runs; slot t runs jobs t, t+S, ...).  The phase divisions ``(ry - ky) / sh`` and
``(px + pw - kx) / sw`` are exact by construction, so C division is right there; the two
divisions that can see a negative numerator go through ``_floordiv``.
"""
from cython.parallel cimport prange
cimport openmp
from cpython.pythread cimport PyThread_get_thread_ident
from scipy.linalg.cython_blas cimport dgemm, sgemm
from libc.math cimport fabs

import os as _os

from .. import _parallel
include "../_omp_fork.pxi"


ctypedef fused real:
    float
    double


cdef inline Py_ssize_t _max(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a if a > b else b


cdef inline Py_ssize_t _min(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a if a < b else b


cdef inline Py_ssize_t _floordiv(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    cdef Py_ssize_t q = a / b
    if (a % b != 0) and ((a < 0) != (b < 0)):
        q -= 1
    return q


cdef inline void _axpy(real a, const real *xs, Py_ssize_t step, real *acc,
                       Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        acc[j] += a * xs[j * step]


cdef inline void _add(const real *xs, real *acc, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        acc[j] += xs[j]


cdef inline void _store_row(const real *acc, real b, bint relu, real *dst, Py_ssize_t step,
                            Py_ssize_t n) noexcept nogil:
    # ReLU as 0.5*(v+|v|) (exact: doubling and halving are exact) rather than a branch, which
    # gcc kept for float32 output and which mispredicts on random signs: 5x slower
    cdef Py_ssize_t j
    cdef real v
    if relu:
        for j in range(n):
            v = acc[j] + b
            dst[j * step] = 0.5 * (v + fabs(v))
    else:
        for j in range(n):
            dst[j * step] = acc[j] + b


cdef inline void _store_pair(const real *a0, const real *a1, real b, bint relu, real *dst,
                             Py_ssize_t Wo) noexcept nogil:
    """dst[2j] = a0[j] + b, dst[2j+1] = a1[j] + b: stride 2's two phases in one contiguous pass.

    ``0 if v < 0 else v`` is maxps(0, v) exactly (NaN kept, as in numba), which gcc vectorises
    with the interleaving; 0.5*(v+|v|) here went through double and cost 2x.
    """
    cdef Py_ssize_t j, n1 = Wo // 2
    cdef real v0, v1
    cdef real zero = 0
    if relu:
        for j in range(n1):
            v0 = a0[j] + b
            v1 = a1[j] + b
            dst[2 * j] = zero if v0 < zero else v0
            dst[2 * j + 1] = zero if v1 < zero else v1
    else:
        for j in range(n1):
            dst[2 * j] = a0[j] + b
            dst[2 * j + 1] = a1[j] + b
    if Wo % 2:
        v0 = a0[n1] + b
        dst[2 * n1] = zero if relu and v0 < zero else v0


cdef inline void _store_phases(const real *acc, Py_ssize_t nmax, Py_ssize_t sw, real b, bint relu,
                               real *dst, Py_ssize_t Wo) noexcept nogil:
    """dst[px + sw*j] = acc[px*nmax + j] + b for every phase px of an output row of length Wo."""
    cdef Py_ssize_t px
    if sw == 2 and Wo >= 2:
        _store_pair(acc, acc + nmax, b, relu, dst, Wo)
    else:
        for px in range(_min(sw, Wo)):
            _store_row(acc + px * nmax, b, relu, dst + px, sw, (Wo - px + sw - 1) // sw)


cdef inline Py_ssize_t _ntaps(Py_ssize_t first, Py_ssize_t k, Py_ssize_t step) noexcept nogil:
    """How many of first, first+step, ... are < k (cython cannot range() with a runtime step)."""
    return (k - first + step - 1) / step if first < k else 0




def n_threads():
    """Threads a parallel kernel of this backend runs on now (the most slots worth cutting a
    call into)."""
    return _omp_threads()


def conv2d(const real[:, :, :, ::1] x, const real[:, :, :, ::1] w, const real[::1] bias,
           Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, bint relu,
           real[:, :, :, ::1] out, real[:, ::1] rows):
    """``rows`` (S, Wo): a row buffer per slot; slot t runs jobs t, t+S, ... (as numba)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t O = w.shape[0], kh = w.shape[2], kw = w.shape[3]
    cdef Py_ssize_t Ho = out.shape[2], Wo = out.shape[3], S = rows.shape[0]
    cdef Py_ssize_t t, k, job, n, o, oy, c, ky, kx, iy, j, j0, j1
    cdef real b
    cdef real *acc
    cdef int nt = _omp_threads()
    with nogil:
        for t in prange(S, schedule="static", num_threads=nt):
            acc = &rows[t, 0]
            for k in range((N * O - t + S - 1) // S):  # jobs t, t+S, ... (numba: range step)
                job = t + k * S
                n = job // O
                o = job % O
                b = bias[o]
                for oy in range(Ho):
                    for j in range(Wo):
                        acc[j] = 0.0
                    for c in range(C):
                        for ky in range(kh):
                            iy = oy * sh + ky - ph
                            if iy < 0 or iy >= H:
                                continue
                            for kx in range(kw):
                                j0 = _max(0, -_floordiv(kx - pw, sw))
                                j1 = _min(Wo, _floordiv(W - 1 + pw - kx, sw) + 1)
                                if j1 > j0:
                                    _axpy(w[o, c, ky, kx], &x[n, c, iy, j0 * sw + kx - pw], sw,
                                          acc + j0, j1 - j0)
                    _store_row(acc, b, relu, &out[n, o, oy, 0], 1, Wo)
    return out


def conv_transpose2d(const real[:, :, :, ::1] x, const real[:, :, :, ::1] w, const real[::1] bias,
                     Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, bint relu,
                     real[:, :, :, ::1] out, real[:, :, ::1] phases):
    """``phases`` (S, min(sw, Wo), ceil(Wo/sw)): a row buffer per slot (as numba)."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t O = w.shape[1], kh = w.shape[2], kw = w.shape[3]
    cdef Py_ssize_t Ho = out.shape[2], Wo = out.shape[3], S = phases.shape[0]
    cdef Py_ssize_t nmax = (Wo + sw - 1) // sw
    cdef Py_ssize_t t, k, job, n, o, oy, ry, px, nj, c, ky, kx, ty, tx, iy, d, j, j0, j1
    cdef real b
    cdef real *acc
    cdef real *a
    cdef int nt = _omp_threads()
    with nogil:
        for t in prange(S, schedule="static", num_threads=nt):
            acc = &phases[t, 0, 0]
            for k in range((N * O - t + S - 1) // S):  # jobs t, t+S, ... (numba: range step)
                job = t + k * S
                n = job // O
                o = job % O
                b = bias[o]
                for oy in range(Ho):
                    ry = oy + ph
                    for px in range(_min(sw, Wo)):
                        nj = (Wo - px + sw - 1) // sw
                        a = acc + px * nmax
                        for j in range(nj):
                            a[j] = 0.0
                        for c in range(C):
                            for ty in range(_ntaps(ry % sh, kh, sh)):
                                ky = ry % sh + ty * sh
                                iy = (ry - ky) / sh
                                if iy < 0:
                                    break
                                if iy >= H:
                                    continue
                                for tx in range(_ntaps((px + pw) % sw, kw, sw)):
                                    kx = (px + pw) % sw + tx * sw
                                    d = (px + pw - kx) / sw
                                    j0 = _max(0, -d)
                                    j1 = _min(nj, W - d)
                                    if j1 > j0:
                                        _axpy(w[c, o, ky, kx], &x[n, c, iy, j0 + d], 1, a + j0,
                                              j1 - j0)
                    _store_phases(acc, nmax, sw, b, relu, &out[n, o, oy, 0], Wo)
    return out


cdef void _col2im_image(const real *cols, const real *bias, Py_ssize_t O, Py_ssize_t kh,
                        Py_ssize_t kw, Py_ssize_t H, Py_ssize_t W, Py_ssize_t sh, Py_ssize_t sw,
                        Py_ssize_t ph, Py_ssize_t pw, bint relu, real *out, Py_ssize_t Ho,
                        Py_ssize_t Wo, real *acc) noexcept nogil:
    """Scatter-add cols[o, ky, kx, iy, ix] into out[o, iy*sh+ky-ph, ix*sw+kx-pw], + bias."""
    cdef Py_ssize_t nmax = (Wo + sw - 1) // sw
    cdef Py_ssize_t o, oy, ry, px, nj, ky, kx, ty, tx, iy, d, j, j0, j1
    cdef real *a
    for o in range(O):
        for oy in range(Ho):
            ry = oy + ph
            for px in range(_min(sw, Wo)):
                nj = (Wo - px + sw - 1) // sw
                a = acc + px * nmax
                for j in range(nj):
                    a[j] = 0
                for ty in range(_ntaps(ry % sh, kh, sh)):
                    ky = ry % sh + ty * sh
                    iy = (ry - ky) / sh
                    if iy < 0:
                        break
                    if iy >= H:
                        continue
                    for tx in range(_ntaps((px + pw) % sw, kw, sw)):
                        kx = (px + pw) % sw + tx * sw
                        d = (px + pw - kx) / sw
                        j0 = _max(0, -d)
                        j1 = _min(nj, W - d)
                        if j1 > j0:
                            _add(cols + (((o * kh + ky) * kw + kx) * H + iy) * W + j0 + d, a + j0, j1 - j0)
            _store_phases(acc, nmax, sw, bias[o], relu, out + (o * Ho + oy) * Wo, Wo)


cdef inline void _gemm(int m, int n, int k, const real *a, const real *b, real *c) noexcept nogil:
    """Row-major c (m x n) = a (m x k) @ b (k x n), through Fortran BLAS on the transposes."""
    cdef char no = b'N'
    cdef float one_f = 1, zero_f = 0
    cdef double one_d = 1, zero_d = 0
    if real is float:
        sgemm(&no, &no, &n, &m, &k, &one_f, <float *> b, &n, <float *> a, &k, &zero_f, c, &n)
    else:
        dgemm(&no, &no, &n, &m, &k, &one_d, <double *> b, &n, <double *> a, &k, &zero_d, c, &n)


def conv_transpose2d_gemm(const real[:, :, :, ::1] x, const real[:, ::1] wmat, const real[::1] bias,
                          Py_ssize_t kh, Py_ssize_t kw, Py_ssize_t sh, Py_ssize_t sw,
                          Py_ssize_t ph, Py_ssize_t pw, bint relu, real[:, :, :, ::1] out,
                          real[:, :, ::1] cols, real[:, :, ::1] phases):
    """Per image: one BLAS GEMM cols = wmat @ x[n], then col2im while cols is still in cache.
    ``cols`` (S, C_out*kh*kw, H*W) and ``phases``: a column matrix and a row buffer per slot."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t O = out.shape[1], Ho = out.shape[2], Wo = out.shape[3]
    cdef Py_ssize_t M = wmat.shape[0], S = cols.shape[0], t, k, n
    cdef int nt = _omp_threads()
    with nogil:
        for t in prange(S, schedule="static", num_threads=nt):
            for k in range((N - t + S - 1) // S):
                n = t + k * S
                _gemm(<int> M, <int> (H * W), <int> C, &wmat[0, 0], &x[n, 0, 0, 0],
                      &cols[t, 0, 0])
                _col2im_image(&cols[t, 0, 0], &bias[0], O, kh, kw, H, W, sh, sw, ph, pw, relu,
                              &out[n, 0, 0, 0], Ho, Wo, &phases[t, 0, 0])
    return out
