# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython batch-norm kernels (backend ``"cython"``): the numba kernels' algorithms, same names.

Shapes were validated by the caller.  gcc does not vectorise a floating-point sum without
permission to reassociate, so the per-channel reductions of the 4-D layout keep eight float64
partial sums (lanes j mod 8), which it turns into vector adds; the numba kernels get the same
effect from the ``reassoc`` flag.  The 2-D layout accumulates per feature and needs neither.
"""
from cython.parallel cimport prange
cimport openmp
from libc.math cimport sqrt
from libc.stdlib cimport free, malloc

ctypedef fused real:
    float
    double


def n_threads():
    """Threads a parallel kernel of this backend runs on now."""
    return openmp.omp_get_max_threads()


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


def batchnorm_forward_4d(real[:, :, ::1] x, double[::1] gamma, double[::1] beta, double eps,
                         bint batch_stats, double[::1] mean, double[::1] var, real[:, :, ::1] y):
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], L = x.shape[2]
    cdef Py_ssize_t c, n, j
    cdef double s, q, m, k, b
    cdef const real *xs
    cdef real *ys
    with nogil:
        for c in prange(C, schedule="static"):
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
            m = mean[c]
            k = gamma[c] / sqrt(var[c] + eps)
            b = beta[c]
            for n in range(N):
                xs = &x[n, c, 0]
                ys = &y[n, c, 0]
                for j in range(L):
                    ys[j] = <real> ((xs[j] - m) * k + b)
    return y


def batchnorm_backward_4d(real[:, :, ::1] dy, real[:, :, ::1] x, double[::1] gamma,
                          double[::1] mean, double[::1] var, double eps, bint batch_stats,
                          real[:, :, ::1] dx, double[::1] dgamma, double[::1] dbeta):
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], L = x.shape[2]
    cdef Py_ssize_t c, n, j
    cdef double m, istd, sdy, sdyx, k1, k2, a
    cdef const real *xs
    cdef const real *gs
    cdef real *ds
    with nogil:
        for c in prange(C, schedule="static"):
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
            for n in range(N):
                gs = &dy[n, c, 0]
                xs = &x[n, c, 0]
                ds = &dx[n, c, 0]
                for j in range(L):
                    ds[j] = <real> (k1 * (gs[j] - a) - k2 * (xs[j] - m))
    return dx


cdef inline void _slice(Py_ssize_t t, Py_ssize_t T, Py_ssize_t D, Py_ssize_t *c0,
                        Py_ssize_t *c1) noexcept nogil:
    c0[0] = t * D // T
    c1[0] = (t + 1) * D // T


def batchnorm_forward_2d(real[:, ::1] x, double[::1] gamma, double[::1] beta, double eps,
                         bint batch_stats, double[::1] mean, double[::1] var, real[:, ::1] y,
                         Py_ssize_t rows, Py_ssize_t slices):
    """Chunks of ``rows`` rows: two-pass statistics in L2, merged by Chan's pairwise update."""
    cdef Py_ssize_t N = x.shape[0], D = x.shape[1]
    cdef Py_ssize_t t, c0, c1, w, n, j, r0, r1, nb, seen
    cdef double *buf
    cdef double *mb
    cdef double *vb
    cdef double *cm
    cdef double *cq
    cdef double *k
    cdef double d, delta, fb, fab
    cdef const real *xs
    cdef real *ys
    with nogil:
        for t in prange(slices, schedule="static"):
            _slice(t, slices, D, &c0, &c1)
            w = c1 - c0
            mb = &mean[c0]
            vb = &var[c0]
            buf = <double *> malloc(3 * w * sizeof(double))
            cm = buf
            cq = buf + w
            k = buf + 2 * w
            if batch_stats:
                for j in range(w):
                    mb[j] = 0.0
                    vb[j] = 0.0
                seen = 0
                r0 = 0
                while r0 < N:
                    r1 = r0 + rows if r0 + rows < N else N
                    nb = r1 - r0
                    for j in range(w):
                        cm[j] = 0.0
                    for n in range(r0, r1):
                        xs = &x[n, c0]
                        for j in range(w):
                            cm[j] += xs[j]
                    for j in range(w):
                        cm[j] /= nb
                        cq[j] = 0.0
                    for n in range(r0, r1):
                        xs = &x[n, c0]
                        for j in range(w):
                            d = xs[j] - cm[j]
                            cq[j] += d * d
                    fb = <double> nb / (seen + nb)
                    fab = seen * fb
                    for j in range(w):
                        delta = cm[j] - mb[j]
                        mb[j] += delta * fb
                        vb[j] += cq[j] + delta * delta * fab
                    seen = seen + nb
                    r0 = r1
                for j in range(w):
                    vb[j] /= N
            for j in range(w):
                k[j] = gamma[c0 + j] / sqrt(vb[j] + eps)
            for n in range(N):
                xs = &x[n, c0]
                ys = &y[n, c0]
                for j in range(w):
                    ys[j] = <real> ((xs[j] - mb[j]) * k[j] + beta[c0 + j])
            free(buf)
    return y


def batchnorm_backward_2d(real[:, ::1] dy, real[:, ::1] x, double[::1] gamma, double[::1] mean,
                          double[::1] var, double eps, bint batch_stats, real[:, ::1] dx,
                          double[::1] dgamma, double[::1] dbeta, Py_ssize_t slices):
    cdef Py_ssize_t N = x.shape[0], D = x.shape[1]
    cdef Py_ssize_t t, c0, c1, w, n, j
    cdef double *buf
    cdef double *sdy
    cdef double *sdyx
    cdef double *k1
    cdef double *k2
    cdef double *a
    cdef double *mb
    cdef double istd
    cdef const real *xs
    cdef const real *gs
    cdef real *ds
    with nogil:
        for t in prange(slices, schedule="static"):
            _slice(t, slices, D, &c0, &c1)
            w = c1 - c0
            mb = &mean[c0]
            buf = <double *> malloc(5 * w * sizeof(double))
            sdy = buf
            sdyx = buf + w
            k1 = buf + 2 * w
            k2 = buf + 3 * w
            a = buf + 4 * w
            for j in range(2 * w):
                buf[j] = 0.0
            for n in range(N):
                gs = &dy[n, c0]
                xs = &x[n, c0]
                for j in range(w):
                    sdy[j] += gs[j]
                    sdyx[j] += gs[j] * (xs[j] - mb[j])
            for j in range(w):
                istd = 1.0 / sqrt(var[c0 + j] + eps)
                dbeta[c0 + j] = sdy[j]
                dgamma[c0 + j] = sdyx[j] * istd
                k1[j] = gamma[c0 + j] * istd
                if batch_stats:
                    a[j] = sdy[j] / N
                    k2[j] = k1[j] * istd * istd * sdyx[j] / N
                else:
                    a[j] = 0.0
                    k2[j] = 0.0
            for n in range(N):
                gs = &dy[n, c0]
                xs = &x[n, c0]
                ds = &dx[n, c0]
                for j in range(w):
                    ds[j] = <real> (k1[j] * (gs[j] - a[j]) - k2[j] * (xs[j] - mb[j]))
            free(buf)
    return dx
