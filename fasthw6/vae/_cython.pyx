# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython kernels for the VAE latent layer (backend ``"cython"``): the numba kernels' algorithms
and signatures, including the range-reduced polynomial exp and 2^k built in the exponent bits.
"""
from cython.parallel cimport prange
from libc.math cimport NAN, floor, log
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

ctypedef fused real:
    float
    double

cdef double LOG2E = 1.4426950408889634
cdef double LN2_HI = 0.6931471803691238
cdef double LN2_LO = 1.9082149292705877e-10


cdef inline void _exp_row(const real *x, double scale, bint lowp, double *out,
                          Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    cdef double t, kf, r, p, two_k
    cdef int64_t bits
    for j in range(n):
        t = scale * x[j]
        t = -708.0 if t < -708.0 else (709.0 if t > 709.0 else t)
        kf = floor(t * LOG2E + 0.5)
        r = (t - kf * LN2_HI) - kf * LN2_LO
        if lowp:
            p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6 + r * (1.0 / 24 + r * (
                1.0 / 120 + r * (1.0 / 720 + r * (1.0 / 5040)))))))
        else:
            p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6 + r * (1.0 / 24 + r * (
                1.0 / 120 + r * (1.0 / 720 + r * (1.0 / 5040 + r * (1.0 / 40320 + r * (
                    1.0 / 362880 + r * (1.0 / 3628800 + r * (1.0 / 39916800 + r * (
                        1.0 / 479001600 + r * (1.0 / 6227020800.0)))))))))))))
        bits = (<int64_t> kf + 1023) << 52
        memcpy(&two_k, &bits, 8)
        out[j] = p * two_k


cdef inline void _sigma_row(const real *v, bint sig, bint lowp, double *s,
                            Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    if sig:
        for j in range(n):
            s[j] = v[j]
    else:
        _exp_row(v, 0.5, lowp, s, n)


def latent_forward(const real[:, ::1] mu, const real[:, ::1] v, const real[:, ::1] eps, bint sig, bint lowp,
                   real[:, ::1] z, double[::1] kl, double[::1] chk):
    cdef Py_ssize_t N = mu.shape[0], D = mu.shape[1], i, j
    cdef double acc, mj
    cdef real zacc
    cdef double *s
    with nogil:
        for i in prange(N, schedule="static"):
            s = <double *> malloc(D * sizeof(double))
            _sigma_row(&v[i, 0], sig, lowp, s, D)
            acc = 0.0
            zacc = 0
            for j in range(D):
                z[i, j] = <real> (mu[i, j] + s[j] * eps[i, j])
                zacc = zacc + (z[i, j] - z[i, j])  # 0 unless z as stored is inf/NaN
                mj = mu[i, j]
                if sig:
                    acc = acc + (mj * mj + s[j] * s[j] - 2.0 * log(s[j]) - 1.0 + 0.0 * eps[i, j])
                else:
                    acc = acc + (mj * mj + s[j] * s[j] - <double> v[i, j] - 1.0 + 0.0 * eps[i, j])
            kl[i] = 0.5 * acc
            chk[i] = zacc
            free(s)
    return kl


def latent_backward(const real[:, ::1] dz, const double[::1] gkl, const real[:, ::1] mu,
                    const real[:, ::1] v, const real[:, ::1] eps, bint sig, bint lowp, real[:, ::1] dmu, real[:, ::1] dv,
                    double[::1] chk):
    cdef Py_ssize_t N = mu.shape[0], D = mu.shape[1], i, j
    cdef double g, a, b, acc
    cdef real racc
    cdef double *s
    with nogil:
        for i in prange(N, schedule="static"):
            s = <double *> malloc(D * sizeof(double))
            _sigma_row(&v[i, 0], sig, lowp, s, D)
            g = gkl[i]
            acc = 0.0
            racc = 0
            for j in range(D):
                a = dz[i, j] + g * mu[i, j]
                if sig:
                    b = dz[i, j] * eps[i, j] + g * (s[j] - 1.0 / s[j])
                    if not s[j] > 0.0:  # the forward's log(sigma) rejects it; nothing else here would
                        acc = acc + NAN
                else:
                    b = 0.5 * (dz[i, j] * eps[i, j] * s[j] + g * (s[j] * s[j] - 1.0))
                dmu[i, j] = <real> a
                dv[i, j] = <real> b
                # x - x is 0 for a finite x, NaN for inf/NaN: the check in the output's own
                # precision (no conversion back to double per element), on the stored value
                racc = racc + ((dmu[i, j] - dmu[i, j]) + (dv[i, j] - dv[i, j]))
            chk[i] = acc + racc
            free(s)
    return dmu
