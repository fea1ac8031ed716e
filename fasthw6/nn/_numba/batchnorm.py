"""The batch-norm kernels: (N, C, L) and (N, D) layouts, forward and backward."""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._lanes import _dx, _grad_sums, _normalise, _row_dx, _row_normalise, _sqdev, _sum
from ._stream import (_dx_stream, _normalise_stream, _rows_dx_stream, _rows_normalise_stream,
                      _store_fence)


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
