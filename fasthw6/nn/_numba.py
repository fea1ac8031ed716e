"""Numba batch-norm kernels (backend ``"numba"``).

Inputs were validated and made C-contiguous by ``fasthw6.nn.api``; nothing here checks bounds.

Two layouts, one algorithm:

- ``*_2d`` take x of shape (N, D) and reduce over rows.  Columns are processed in blocks of
  ``block`` features whose rows fit in L2 together, so the variance pass and the normalising pass
  re-read the block from cache, not from memory; the inner loops run along a contiguous row
  segment into float64 accumulators, one per feature, and vectorise without reassociation.
- ``*_4d`` take x viewed as (N, C, L) (L = H*W) and reduce over N and L for each channel.  A
  channel's N planes are re-read from cache by the later passes.  The inner loops are float64
  sum reductions over a contiguous plane, which LLVM vectorises only when allowed to reassociate
  the additions: ``FASTMATH`` grants exactly that flag and nothing else (no NaN/inf assumptions).

Mean and variance are two-pass (sum, then sum of squared deviations), never E[x^2] - E[x]^2.
Backward is fused: one pass accumulates sum(dy) and sum(dy * (x - mean)), one pass writes dx.
``prange`` runs over channels / feature blocks, independent work writing disjoint slices.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

FASTMATH = {"reassoc"}


@njit(nogil=True, cache=True, parallel=True, fastmath=FASTMATH)
def batchnorm_forward_4d(x, gamma, beta, eps, batch_stats, mean, var, y):
    N, C, L = x.shape
    M = N * L
    for c in prange(C):
        if batch_stats:
            s = 0.0
            for n in range(N):
                xs = x[n, c]
                for j in range(L):
                    s += np.float64(xs[j])
            m = s / M
            q = 0.0
            for n in range(N):
                xs = x[n, c]
                for j in range(L):
                    d = np.float64(xs[j]) - m
                    q += d * d
            mean[c] = m
            var[c] = q / M
        m = mean[c]
        k = gamma[c] / np.sqrt(var[c] + eps)
        b = np.float64(beta[c])
        for n in range(N):
            xs = x[n, c]
            ys = y[n, c]
            for j in range(L):
                ys[j] = (np.float64(xs[j]) - m) * k + b
    return y


@njit(nogil=True, cache=True, parallel=True, fastmath=FASTMATH)
def batchnorm_backward_4d(dy, x, gamma, mean, var, eps, batch_stats, dx, dgamma, dbeta):
    N, C, L = x.shape
    M = N * L
    for c in prange(C):
        m = mean[c]
        istd = 1.0 / np.sqrt(var[c] + eps)
        sdy = 0.0
        sdyx = 0.0
        for n in range(N):
            gs = dy[n, c]
            xs = x[n, c]
            for j in range(L):
                g = np.float64(gs[j])
                sdy += g
                sdyx += g * (np.float64(xs[j]) - m)
        dbeta[c] = sdy
        dgamma[c] = sdyx * istd
        k1 = gamma[c] * istd
        if batch_stats:
            a = sdy / M
            k2 = k1 * istd * istd * sdyx / M
        else:
            a = 0.0
            k2 = 0.0
        for n in range(N):
            gs = dy[n, c]
            xs = x[n, c]
            ds = dx[n, c]
            for j in range(L):
                ds[j] = k1 * (np.float64(gs[j]) - a) - k2 * (np.float64(xs[j]) - m)
    return dx


@njit(nogil=True, cache=True, parallel=True)
def batchnorm_forward_2d(x, gamma, beta, eps, batch_stats, mean, var, y, block):
    N, D = x.shape
    nblocks = (D + block - 1) // block
    for bi in prange(nblocks):
        c0 = bi * block
        c1 = min(D, c0 + block)
        w = c1 - c0
        mb = mean[c0:c1]
        vb = var[c0:c1]
        if batch_stats:
            acc = np.zeros(w)
            for n in range(N):
                xs = x[n, c0:c1]
                for j in range(w):
                    acc[j] += xs[j]
            for j in range(w):
                mb[j] = acc[j] / N
                acc[j] = 0.0
            for n in range(N):
                xs = x[n, c0:c1]
                for j in range(w):
                    d = xs[j] - mb[j]
                    acc[j] += d * d
            for j in range(w):
                vb[j] = acc[j] / N
        k = np.empty(w)
        for j in range(w):
            k[j] = gamma[c0 + j] / np.sqrt(vb[j] + eps)
        bb = beta[c0:c1].astype(np.float64)
        for n in range(N):
            xs = x[n, c0:c1]
            ys = y[n, c0:c1]
            for j in range(w):
                ys[j] = (xs[j] - mb[j]) * k[j] + bb[j]
    return y


@njit(nogil=True, cache=True, parallel=True)
def batchnorm_backward_2d(dy, x, gamma, mean, var, eps, batch_stats, dx, dgamma, dbeta, block):
    N, D = x.shape
    nblocks = (D + block - 1) // block
    for bi in prange(nblocks):
        c0 = bi * block
        c1 = min(D, c0 + block)
        w = c1 - c0
        mb = mean[c0:c1]
        sdy = np.zeros(w)
        sdyx = np.zeros(w)
        for n in range(N):
            gs = dy[n, c0:c1]
            xs = x[n, c0:c1]
            for j in range(w):
                g = np.float64(gs[j])
                sdy[j] += g
                sdyx[j] += g * (xs[j] - mb[j])
        k1 = np.empty(w)
        k2 = np.empty(w)
        a = np.empty(w)
        for j in range(w):
            istd = 1.0 / np.sqrt(var[c0 + j] + eps)
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
            gs = dy[n, c0:c1]
            xs = x[n, c0:c1]
            ds = dx[n, c0:c1]
            for j in range(w):
                ds[j] = k1[j] * (gs[j] - a[j]) - k2[j] * (xs[j] - mb[j])
    return dx
