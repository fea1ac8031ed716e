"""Numba SMO kernel for the hard-margin SVM dual (backend ``"numba"``).

Minimises f(a) = 1/2 a'Qa - sum(a), Q_ij = y_i y_j x_i.x_j, subject to a >= 0 and y'a = 0 (the
Lagrangian dual of question 3 with the sign flipped).  Each step picks the maximal-violating
``i`` and the ``j`` of the second-order working-set rule (Fan, Chen & Lin 2005), solves the
two-variable subproblem exactly, clips at 0 (there is no upper bound C) and updates the gradient
G = Qa - 1.  Kernel rows K[i, :] = X x_i are computed from X^T (d, n), one contiguous axpy per
feature, and kept in a small round-robin cache: the same few support vectors are picked again
and again.  Inputs were validated by ``fasthw6.svm.api``; nothing here checks bounds.
"""
from __future__ import annotations

import numpy as np
from numba import njit

TAU = 1e-12


@njit(nogil=True, cache=True, inline="always")
def _row(XT, i, keep, slot_of, owner, cache, state):
    # row i's cache slot, computing the row if absent; slot ``keep`` is never evicted
    s = slot_of[i]
    if s >= 0:
        return s
    s = state[0]
    if s == keep:
        s = (s + 1) % cache.shape[0]
    state[0] = (s + 1) % cache.shape[0]
    if owner[s] >= 0:
        slot_of[owner[s]] = -1
    owner[s] = i
    slot_of[i] = s
    row = cache[s]
    row[:] = 0.0
    for k in range(XT.shape[0]):
        a = XT[k, i]
        xk = XT[k]
        for t in range(row.shape[0]):
            row[t] += a * xk[t]
    return s


@njit(nogil=True, cache=True)
def smo_solve(XT, y, alpha, grad, tol, max_iter, n_cache):
    """Run at most ``max_iter`` steps from (alpha, grad); return (steps, final KKT gap)."""
    d, n = XT.shape
    n_cache = max(2, min(n_cache, n))
    cache = np.empty((n_cache, n))
    slot_of = np.full(n, -1, np.int64)
    owner = np.full(n_cache, -1, np.int64)
    state = np.zeros(1, np.int64)
    diag = np.zeros(n)
    for k in range(d):
        for t in range(n):
            diag[t] += XT[k, t] * XT[k, t]
    gap = np.inf
    it = 0
    while it < max_iter:
        # i: largest -y G over I_up = {y = +1} U {y = -1, a > 0}
        gmax = -np.inf
        i = -1
        for t in range(n):
            v = -y[t] * grad[t]
            if (y[t] > 0 or alpha[t] > 0) and v > gmax:
                gmax = v
                i = t
        # j: second-order choice over I_low = {y = -1} U {y = +1, a > 0}
        if i < 0:  # no candidate: the gradient overflowed (a diverging, non-separable run)
            gap = np.inf
            break
        gmin = np.inf
        si = _row(XT, i, -1, slot_of, owner, cache, state)
        ki = cache[si]
        j = -1
        best = np.inf
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
        sj = _row(XT, j, si, slot_of, owner, cache, state)
        kj = cache[sj]
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
