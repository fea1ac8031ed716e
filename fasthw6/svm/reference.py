"""The hard-margin SVM dual in plain NumPy (backend ``"numpy"``): plain SMO over all samples
with the compiled kernels' second-order working-set rule and stopping test, one vectorised NumPy
expression per selection and update, the full Gram matrix held in memory.  The compiled kernels
reach the same optimum faster (a growing working set and active-set moves); this one is slow
for large n and obviously right for the tests.
"""
from __future__ import annotations

import numpy as np

TAU = 1e-12


def smo_solve(XT, y, alpha, grad, tol, max_iter, n_cache):
    """Same contract as the numba kernel: returns (steps, final KKT gap)."""
    K = XT.T @ XT
    diag = np.diag(K).copy()
    gap = np.inf
    it = 0
    while it < max_iter:
        v = -y * grad
        up = (y > 0) | (alpha > 0)
        low = (y < 0) | (alpha > 0)
        if not np.isfinite(v[up]).any():
            return it, np.inf
        i = int(np.argmax(np.where(up, v, -np.inf)))
        gmax = v[i]
        gmin = np.min(np.where(low, v, np.inf))
        gap = gmax - gmin
        b = gmax - v
        cand = low & (b > 0)
        if gap < tol or not cand.any():
            break
        a = diag[i] + diag - 2.0 * K[i]
        a = np.where(a <= 0, TAU, a)
        j = int(np.argmin(np.where(cand, -(b * b) / a, np.inf)))
        quad = diag[i] + diag[j] - 2.0 * K[i, j]
        quad = quad if quad > 0 else TAU
        ai, aj = alpha[i], alpha[j]
        if y[i] != y[j]:
            delta = (-grad[i] - grad[j]) / quad
            diff = ai - aj
            ni, nj = ai + delta, aj + delta
            if diff > 0 and nj < 0:
                ni, nj = diff, 0.0
            elif diff <= 0 and ni < 0:
                ni, nj = 0.0, -diff
        else:
            delta = (grad[i] - grad[j]) / quad
            s = ai + aj
            ni, nj = ai - delta, aj + delta
            if ni < 0:
                ni, nj = 0.0, s
            if nj < 0:
                ni, nj = s, 0.0
        alpha[i], alpha[j] = ni, nj
        grad += y * (y[i] * (ni - ai) * K[i] + y[j] * (nj - aj) * K[j])
        it += 1
    return it, gap
