# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython SMO kernel for the hard-margin SVM dual (backend ``"cython"``): the numba kernel's
algorithm and signature (second-order working set, no upper bound, round-robin row cache).
The SVM works in float64 whatever the input dtype, so there is no fused type here.
"""
import numpy as np

from libc.math cimport INFINITY

cdef double TAU = 1e-12


cdef Py_ssize_t _row(const double[:, ::1] XT, Py_ssize_t i, Py_ssize_t keep,
                     Py_ssize_t[::1] slot_of, Py_ssize_t[::1] owner, double[:, ::1] cache,
                     Py_ssize_t *nxt) noexcept nogil:
    cdef Py_ssize_t s = slot_of[i], k, t, n = cache.shape[1], nc = cache.shape[0]
    cdef double a
    cdef double *row
    cdef const double *xk
    if s >= 0:
        return s
    s = nxt[0]
    if s == keep:
        s = (s + 1) % nc
    nxt[0] = (s + 1) % nc
    if owner[s] >= 0:
        slot_of[owner[s]] = -1
    owner[s] = i
    slot_of[i] = s
    row = &cache[s, 0]
    for t in range(n):
        row[t] = 0.0
    for k in range(XT.shape[0]):
        a = XT[k, i]
        xk = &XT[k, 0]
        for t in range(n):
            row[t] += a * xk[t]
    return s


def smo_solve(const double[:, ::1] XT, const double[::1] y, double[::1] alpha, double[::1] grad,
              double tol, Py_ssize_t max_iter, Py_ssize_t n_cache):
    cdef Py_ssize_t d = XT.shape[0], n = XT.shape[1]
    n_cache = max(2, min(n_cache, n))
    cdef double[:, ::1] cache = np.empty((n_cache, n))
    cdef Py_ssize_t[::1] slot_of = np.full(n, -1, np.intp)
    cdef Py_ssize_t[::1] owner = np.full(n_cache, -1, np.intp)
    cdef double[::1] diag = np.zeros(n)
    cdef Py_ssize_t nxt = 0, it = 0, i, j, t, k, si, sj
    cdef double gap = INFINITY, gmax, gmin, best, v, b, a, obj, quad, ai, aj, ni, nj, delta, diff
    cdef double s, ci, cj
    cdef const double *ki
    cdef const double *kj
    with nogil:
        for k in range(d):
            for t in range(n):
                diag[t] += XT[k, t] * XT[k, t]
        while it < max_iter:
            gmax = -INFINITY
            i = -1
            for t in range(n):
                v = -y[t] * grad[t]
                if (y[t] > 0 or alpha[t] > 0) and v > gmax:
                    gmax = v
                    i = t
            if i < 0:  # no candidate: the gradient overflowed (a diverging, non-separable run)
                gap = INFINITY
                break
            gmin = INFINITY
            si = _row(XT, i, -1, slot_of, owner, cache, &nxt)
            ki = &cache[si, 0]
            j = -1
            best = INFINITY
            for t in range(n):
                if y[t] < 0 or alpha[t] > 0:
                    v = -y[t] * grad[t]
                    if v < gmin:
                        gmin = v
                    b = gmax - v
                    if b > 0:
                        a = diag[i] + diag[t] - 2.0 * ki[t]
                        if a <= 0:
                            a = TAU
                        obj = -(b * b) / a
                        if obj < best:
                            best = obj
                            j = t
            gap = gmax - gmin
            if gap < tol or j < 0:
                break
            sj = _row(XT, j, si, slot_of, owner, cache, &nxt)
            kj = &cache[sj, 0]
            quad = diag[i] + diag[j] - 2.0 * ki[j]
            if quad <= 0:
                quad = TAU
            ai = alpha[i]
            aj = alpha[j]
            if y[i] != y[j]:
                delta = (-grad[i] - grad[j]) / quad
                diff = ai - aj
                ni = ai + delta
                nj = aj + delta
                if diff > 0:
                    if nj < 0:
                        nj = 0.0
                        ni = diff
                else:
                    if ni < 0:
                        ni = 0.0
                        nj = -diff
            else:
                delta = (grad[i] - grad[j]) / quad
                s = ai + aj
                ni = ai - delta
                nj = aj + delta
                if ni < 0:
                    ni = 0.0
                    nj = s
                if nj < 0:
                    nj = 0.0
                    ni = s
            alpha[i] = ni
            alpha[j] = nj
            ci = y[i] * (ni - ai)
            cj = y[j] * (nj - aj)
            for t in range(n):
                grad[t] += y[t] * (ci * ki[t] + cj * kj[t])
            it += 1
    return it, gap
