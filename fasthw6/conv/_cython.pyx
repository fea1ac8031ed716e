# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython convolution kernels (backend ``"cython"``): the numba kernels' algorithms, same names.

Shapes were validated by the caller.  Row buffers have the output's dtype, as in the numba kernels.  The phase divisions ``(ry - ky) / sh`` and
``(px + pw - kx) / sw`` are exact by construction, so C division is right there; the two
divisions that can see a negative numerator go through ``_floordiv``.
"""
from cython.parallel cimport prange
from libc.math cimport fabs
from libc.stdlib cimport free, malloc

ctypedef fused real:
    float
    double


cdef inline Py_ssize_t _max(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a if a > b else b


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


cdef inline Py_ssize_t _ntaps(Py_ssize_t first, Py_ssize_t k, Py_ssize_t step) noexcept nogil:
    """How many of first, first+step, ... are < k (cython cannot range() with a runtime step)."""
    return (k - first + step - 1) / step if first < k else 0


cdef inline Py_ssize_t _min(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return a if a < b else b


def conv2d(real[:, :, :, ::1] x, real[:, :, :, ::1] w, real[::1] bias,
           Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, bint relu,
           real[:, :, :, ::1] out):
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t O = w.shape[0], kh = w.shape[2], kw = w.shape[3]
    cdef Py_ssize_t Ho = out.shape[2], Wo = out.shape[3]
    cdef Py_ssize_t job, n, o, oy, c, ky, kx, iy, j, j0, j1
    cdef real b
    cdef real *acc
    with nogil:
        for job in prange(N * O, schedule="dynamic"):
            n = job // O
            o = job % O
            acc = <real *> malloc(Wo * sizeof(real))
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
            free(acc)
    return out


def conv_transpose2d(real[:, :, :, ::1] x, real[:, :, :, ::1] w, real[::1] bias,
                     Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, bint relu,
                     real[:, :, :, ::1] out):
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t O = w.shape[1], kh = w.shape[2], kw = w.shape[3]
    cdef Py_ssize_t Ho = out.shape[2], Wo = out.shape[3]
    cdef Py_ssize_t job, n, o, oy, ry, px, nj, c, ky, kx, ty, tx, iy, d, j, j0, j1
    cdef real b
    cdef real *acc
    with nogil:
        for job in prange(N * O, schedule="dynamic"):
            n = job // O
            o = job % O
            acc = <real *> malloc(((Wo + sw - 1) // sw) * sizeof(real))
            b = bias[o]
            for oy in range(Ho):
                ry = oy + ph
                for px in range(_min(sw, Wo)):
                    nj = (Wo - px + sw - 1) // sw
                    for j in range(nj):
                        acc[j] = 0.0
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
                                    _axpy(w[c, o, ky, kx], &x[n, c, iy, j0 + d], 1, acc + j0, j1 - j0)
                    _store_row(acc, b, relu, &out[n, o, oy, px], sw, nj)
            free(acc)
    return out


def col2im(real[:, :, :, :, :, ::1] cols, real[::1] bias,
           Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, bint relu,
           real[:, :, :, ::1] out):
    cdef Py_ssize_t N = cols.shape[0], O = cols.shape[1], kh = cols.shape[2], kw = cols.shape[3]
    cdef Py_ssize_t H = cols.shape[4], W = cols.shape[5]
    cdef Py_ssize_t Ho = out.shape[2], Wo = out.shape[3]
    cdef Py_ssize_t job, n, o, oy, ry, px, nj, ky, kx, ty, tx, iy, d, j, j0, j1
    cdef real b
    cdef real *acc
    with nogil:
        for job in prange(N * O, schedule="dynamic"):
            n = job // O
            o = job % O
            acc = <real *> malloc(((Wo + sw - 1) // sw) * sizeof(real))
            b = bias[o]
            for oy in range(Ho):
                ry = oy + ph
                for px in range(_min(sw, Wo)):
                    nj = (Wo - px + sw - 1) // sw
                    for j in range(nj):
                        acc[j] = 0.0
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
                                _add(&cols[n, o, ky, kx, iy, j0 + d], acc + j0, j1 - j0)
                    _store_row(acc, b, relu, &out[n, o, oy, px], sw, nj)
            free(acc)
    return out
