# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython kernels for the VAE latent layer (backend ``"cython"``): the numba kernels' algorithms
and signatures (``_numba.py``), including the range-reduced polynomial exp and 2^k built in the
exponent bits.

The results are bit for bit those of the numba kernels, on any x86-64 CPU: the ``auto`` backend
may run either for the same call, and ``tests/test_vae_bitidentity.py`` holds them to it.  Every
floating-point operation is written in the order the numba source has it, and the C compiler
keeps that order: it does not reassociate without -ffast-math, and setup.py passes
``-ffp-contract=off`` so that no multiply and add are fused (numba, without ``fastmath``, fuses
none either).  float32 * float32 is a float32 product in both; a float32 meeting a float64 is
widened in both.  exp's polynomial is evaluated in the same order as numba's (Horner's rule for
degree 7; for degree 13, Horner's rule down to r^4 and the higher terms in pairs), and 2^k
multiplies it once, as there.

Row sums have the numba kernels' explicit lane structure (``_lane_sum``): element j goes to lane
j mod 8 for the full blocks of 8, the tail after the last full block is added to lane 0 in
order, and the lanes are combined as ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)): the KL
in float64 lanes, the finiteness checks (sums of x - x: 0, or NaN once an x is inf/NaN) in lanes
of the output's dtype.  Terms are computed in a loop of their own and summed afterwards, except
the sigma parameterisation's KL terms (the ones with a log), computed in the lane loop.
"""
from cython.parallel cimport parallel, prange
cimport openmp
from cpython.pythread cimport PyThread_get_thread_ident
from libc.math cimport NAN, floor, log
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

import os as _os

from .. import _parallel
include "../_omp_fork.pxi"


ctypedef fused real:
    float
    double

cdef double LOG2E = 1.4426950408889634
cdef double LN2_HI = 0.6931471803691238
cdef double LN2_LO = 1.9082149292705877e-10


cdef inline void _exp_row(const real *x, double scale, bint lowp, double *out,
                          Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    cdef double t, kf, r, r2, r4, q, p, two_k
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
            r2 = r * r
            r4 = r2 * r2
            q = (((1.0 / 24 + r * (1.0 / 120)) + r2 * (1.0 / 720 + r * (1.0 / 5040)))
                 + r4 * ((1.0 / 40320 + r * (1.0 / 362880))
                         + r2 * (1.0 / 3628800 + r * (1.0 / 39916800)))
                 + (r4 * r4) * (1.0 / 479001600 + r * (1.0 / 6227020800.0)))
            p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6 + r * q)))
        bits = (<int64_t> <int32_t> kf + 1023) << 52
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


cdef inline real _lane_sum(const real *t, Py_ssize_t n) noexcept nogil:
    """t[0] + ... + t[n-1] in the lane order, in t's dtype (float64 for the KL sums)."""
    cdef Py_ssize_t j, n8 = n - n % 8  # 8 lanes
    cdef real x0 = 0, x1 = 0, x2 = 0, x3 = 0, x4 = 0, x5 = 0, x6 = 0, x7 = 0
    for j in range(0, n8, 8):
        x0 = x0 + t[j]
        x1 = x1 + t[j + 1]
        x2 = x2 + t[j + 2]
        x3 = x3 + t[j + 3]
        x4 = x4 + t[j + 4]
        x5 = x5 + t[j + 5]
        x6 = x6 + t[j + 6]
        x7 = x7 + t[j + 7]
    for j in range(n8, n):
        x0 = x0 + t[j]
    return ((x0 + x4) + (x2 + x6)) + ((x1 + x5) + (x3 + x7))


cdef inline double _kl_term_sigma(const real *m, const double *s, const real *e,
                                  Py_ssize_t j) noexcept nogil:
    # mu^2 + sigma^2 - log sigma^2 - 1; 0 * eps adds nothing unless eps is NaN/inf
    cdef double mj = m[j]
    return mj * mj + s[j] * s[j] - 2.0 * log(s[j]) - 1.0 + 0.0 * e[j]


cdef inline double _kl_sum_sigma(const real *m, const double *s, const real *e,
                                 Py_ssize_t n) noexcept nogil:
    """The sigma parameterisation's KL sum, each term computed in its lane's step."""
    cdef Py_ssize_t j, n8 = n - n % 8  # 8 lanes
    cdef double x0 = 0.0, x1 = 0.0, x2 = 0.0, x3 = 0.0, x4 = 0.0, x5 = 0.0, x6 = 0.0, x7 = 0.0
    for j in range(0, n8, 8):
        x0 = x0 + _kl_term_sigma(m, s, e, j)
        x1 = x1 + _kl_term_sigma(m, s, e, j + 1)
        x2 = x2 + _kl_term_sigma(m, s, e, j + 2)
        x3 = x3 + _kl_term_sigma(m, s, e, j + 3)
        x4 = x4 + _kl_term_sigma(m, s, e, j + 4)
        x5 = x5 + _kl_term_sigma(m, s, e, j + 5)
        x6 = x6 + _kl_term_sigma(m, s, e, j + 6)
        x7 = x7 + _kl_term_sigma(m, s, e, j + 7)
    for j in range(n8, n):
        x0 = x0 + _kl_term_sigma(m, s, e, j)
    return ((x0 + x4) + (x2 + x6)) + ((x1 + x5) + (x3 + x7))


def latent_forward(const real[:, ::1] mu, const real[:, ::1] v, const real[:, ::1] eps, bint sig, bint lowp,
                   real[:, ::1] z, double[::1] kl, double[::1] chk):
    cdef Py_ssize_t N = mu.shape[0], D = mu.shape[1], i, j
    cdef double acc, mj
    cdef double *s = NULL  # per-thread scratch (set before the parallel block: no warning)
    cdef double *t = NULL
    cdef real *c = NULL
    cdef Py_ssize_t nomem = 0
    cdef int nt = _omp_threads()
    with nogil, parallel(num_threads=nt):
        s = <double *> malloc(2 * D * sizeof(double))  # sigma, then the KL terms
        t = s + D
        c = <real *> malloc(D * sizeof(real))  # z - z
        for i in prange(N, schedule="static"):
            if s == NULL or c == NULL:
                nomem += 1
                continue
            _sigma_row(&v[i, 0], sig, lowp, s, D)
            if sig:
                for j in range(D):
                    z[i, j] = <real> (mu[i, j] + s[j] * eps[i, j])
                    c[j] = z[i, j] - z[i, j]  # 0 unless z as stored is inf/NaN
                acc = _kl_sum_sigma(&mu[i, 0], s, &eps[i, 0], D)
            else:
                for j in range(D):
                    z[i, j] = <real> (mu[i, j] + s[j] * eps[i, j])
                    c[j] = z[i, j] - z[i, j]
                    mj = mu[i, j]
                    t[j] = mj * mj + s[j] * s[j] - <double> v[i, j] - 1.0 + 0.0 * eps[i, j]
                acc = _lane_sum(t, D)  # t is double *: the float64 specialisation
            kl[i] = 0.5 * acc
            chk[i] = _lane_sum(c, D)
        free(c)
        free(s)
    if nomem:
        raise MemoryError(f"latent_forward: no memory for {D}-value row scratch")
    return kl


def latent_backward(const real[:, ::1] dz, const double[::1] gkl, const real[:, ::1] mu,
                    const real[:, ::1] v, const real[:, ::1] eps, bint sig, bint lowp, real[:, ::1] dmu, real[:, ::1] dv,
                    double[::1] chk):
    cdef Py_ssize_t N = mu.shape[0], D = mu.shape[1], i, j
    cdef double g
    cdef real zero = 0
    cdef real nan = <real> NAN
    cdef double *s = NULL
    cdef real *c = NULL
    cdef Py_ssize_t nomem = 0
    cdef int nt = _omp_threads()
    with nogil, parallel(num_threads=nt):
        s = <double *> malloc(D * sizeof(double))
        c = <real *> malloc(D * sizeof(real))
        for i in prange(N, schedule="static"):
            if s == NULL or c == NULL:
                nomem += 1
                continue
            _sigma_row(&v[i, 0], sig, lowp, s, D)
            g = gkl[i]
            if sig:
                for j in range(D):
                    dmu[i, j] = <real> (dz[i, j] + g * mu[i, j])
                    dv[i, j] = <real> (dz[i, j] * eps[i, j] + g * (s[j] - 1.0 / s[j]))
                    # x - x is 0 for a finite x, NaN for inf/NaN: the check in the output's own
                    # precision, on the stored value; the forward's log(sigma) rejects
                    # sigma <= 0, here nothing else would
                    c[j] = ((dmu[i, j] - dmu[i, j]) + (dv[i, j] - dv[i, j])
                            + (zero if s[j] > 0.0 else nan))
            else:
                for j in range(D):
                    dmu[i, j] = <real> (dz[i, j] + g * mu[i, j])
                    dv[i, j] = <real> (0.5 * (dz[i, j] * eps[i, j] * s[j]
                                              + g * (s[j] * s[j] - 1.0)))
                    c[j] = (dmu[i, j] - dmu[i, j]) + (dv[i, j] - dv[i, j])
            chk[i] = _lane_sum(c, D)
        free(c)
        free(s)
    if nomem:
        raise MemoryError(f"latent_backward: no memory for {D}-value row scratch")
    return dmu
