"""The log-space fallback of the scaled kernels, for the sequences they call impossible.

The compiled kernels rescale α once per step, after the step's product A_ij b_j(x_t): a possible
sequence whose single-step factors are both tiny (1e-200 x 1e-200, or 1e-25 x 1e-25 in float32)
underflows inside that product and comes out as -inf, while Viterbi, in log space, finds a path
of finite probability.  A score must never be below the best path's, so every sequence a kernel
scores -inf is scored again here in float64 log space (log-sum-exp over states, one NumPy step
per symbol): the truly impossible ones stay -inf, the others get their log-likelihood, and
posteriors and E-step sums for them are computed here too.  Impossible sequences are rare and
short work for this path; the kernels' speed is untouched for the rest.
"""
from __future__ import annotations

import numpy as np


def _lse(a, axis):
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(m, axis) + np.log(np.sum(np.exp(a - m), axis=axis))


def logs(sp, tm):
    """(log startprob, log transmat) in float64, log 0 = -inf."""
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(sp, np.float64)), np.log(np.asarray(tm, np.float64))


def forward_backward(le, lsp, ltm, want_posteriors):
    """log P of one sequence from its per-step log-emissions ``le`` (T, N); with
    ``want_posteriors`` also γ (T, N) and Σ_t ξ_t (N, N), float64 (zeros if impossible)."""
    T, N = le.shape
    la = np.empty((T, N))
    la[0] = lsp + le[0]
    for t in range(1, T):
        la[t] = _lse(la[t - 1][:, None] + ltm, 0) + le[t]
    ll = float(_lse(la[-1], 0))
    if not want_posteriors:
        return ll, None, None
    gamma, xi = np.zeros((T, N)), np.zeros((N, N))
    if ll == -np.inf:
        return ll, gamma, xi
    lb = np.zeros((T, N))
    for t in range(T - 2, -1, -1):
        lb[t] = _lse(ltm + (le[t + 1] + lb[t + 1])[None, :], 1)
    with np.errstate(invalid="ignore"):
        gamma = np.exp(la + lb - ll)
        for t in range(T - 1):
            xi += np.exp(la[t][:, None] + ltm + (le[t + 1] + lb[t + 1])[None, :] - ll)
    return ll, np.nan_to_num(gamma), np.nan_to_num(xi)


def rescore(out, off, le_of, lsp, ltm):
    """Score again, in log space, every non-empty sequence of ``out`` at -inf; ``le_of(a, b)``
    gives the log-emissions (T, N) of steps [a, b).  Updates ``out`` in place."""
    for s in np.nonzero(out == -np.inf)[0]:
        a, b = int(off[s]), int(off[s + 1])
        if b > a:
            out[s] = forward_backward(le_of(a, b), lsp, ltm, False)[0]
    return out
