"""The document's HMM code (question 4), corrected: the NumPy reference backend (``"numpy"``).

It keeps the document's shape -- α, β, γ, δ as (states × time) arrays filled column by column,
ξ per time step -- and fixes its five defects:

1. the backward step uses the emission of the *next* symbol, ``B[:, O[t+1]]``;
2. γ_t ∝ α_t β_t at every t (not summed from ξ, which misses the last step);
3. decoding backtracks through stored argmaxes (Viterbi), instead of a per-column argmax of δ;
4. α is normalised every step (β by the same normalisers) and log P(O) = Σ log c_t, so long
   sequences neither underflow nor give 0/0; Viterbi works in log space;
5. the M-step (in ``api.py``) keeps the previous parameters of a state with no expected
   occupancy instead of dividing 0 by 0.

Same kernel names and signatures as the ``_numba`` package and ``_cython.pyx``; slow (a Python
loop per sequence and per step) and obviously right.  Zero probabilities are allowed: an impossible
sequence has log P = -inf and contributes no statistics.
"""
from __future__ import annotations

import numpy as np



def _sequences(offsets):
    for s in range(len(offsets) - 1):
        yield s, int(offsets[s]), int(offsets[s + 1])


def _forward(A, B, PI, O):
    """Scaled α (N × T) and normalisers c (T,); c_t = 0 marks an impossible prefix."""
    N, T = A.shape[0], O.shape[0]
    alpha = np.zeros((N, T), dtype=np.float64)
    c = np.zeros(T, dtype=np.float64)
    alpha[:, 0] = PI * B[:, O[0]]
    for t in range(T):
        if t > 0:
            for j in range(N):
                alpha[j, t] = np.sum(alpha[:, t - 1] * A[:, j]) * B[j, O[t]]
        c[t] = np.sum(alpha[:, t])
        if c[t] == 0.0:
            return alpha, c
        alpha[:, t] /= c[t]
    return alpha, c


def _backward(A, B, O, c):
    """β (N × T) scaled by the forward normalisers, using B[:, O[t+1]] (defect 1 fixed)."""
    N, T = A.shape[0], O.shape[0]
    beta = np.zeros((N, T), dtype=np.float64)
    beta[:, -1] = 1.0
    for t in range(T - 2, -1, -1):
        for i in range(N):
            beta[i, t] = np.sum(A[i, :] * B[:, O[t + 1]] * beta[:, t + 1])
        beta[:, t] /= c[t + 1]
    return beta


def _loglik(c):
    with np.errstate(divide="ignore"):
        return float(np.sum(np.log(c))) if np.all(c > 0) else -np.inf


def _params(startprob, transmat, emit_t):
    return (np.asarray(transmat, np.float64), np.asarray(emit_t, np.float64).T,
            np.asarray(startprob, np.float64))


def forward_loglik(X, offsets, order, startprob, transmat, emit_t, out):
    """Scores of the sequences ``order`` into ``out``; returns -1, or the position of a symbol
    outside [0, M) anywhere in X (then nothing is scored), as the compiled kernels, which check
    the symbols of their blocks as they go."""
    sym = np.asarray(X)
    bad = np.flatnonzero((sym < 0) | (sym >= emit_t.shape[0]))
    if bad.size:
        return int(bad[0])
    A, B, PI = _params(startprob, transmat, emit_t)
    for s in order:
        _, c = _forward(A, B, PI, np.asarray(X[offsets[s]:offsets[s + 1]], np.int64))
        out[s] = _loglik(c)
    return -1


def forward_loglik_models(X, offsets, order, Ls, Kg, sp_rep, A_rep, E_rep, out):
    """Scores of the sequences ``order`` under every model into ``out[seq, model]``; returns
    -1, or the position of a symbol outside [0, M) anywhere in X (then nothing is scored), as
    the compiled kernels.  Each model's tables are read back from its lane (slot 0) of the
    replicated tables (layouts: ``_numba/multi.py``), then scored as ``forward_loglik``."""
    sym = np.asarray(X)
    M = E_rep.shape[1]
    bad = np.flatnonzero((sym < 0) | (sym >= M))
    if bad.size:
        return int(bad[0])
    G, K = sp_rep.shape[0], out.shape[1]
    N = A_rep.shape[1] // sp_rep.shape[1]
    _LANES = sp_rep.shape[1] // N  # lanes of the table layout
    sp = np.asarray(sp_rep, np.float64).reshape(G, N, _LANES)
    A = np.asarray(A_rep, np.float64).reshape(G, N, N, _LANES)
    E = np.asarray(E_rep, np.float64).reshape(G, M, N, _LANES)
    for m in range(K):
        g, q = divmod(m, Kg)
        PI, Am, B = sp[g, :, q], A[g, :, :, q], E[g, :, :, q].T
        for s in order:
            _, c = _forward(Am, B, PI, np.asarray(X[offsets[s]:offsets[s + 1]], np.int64))
            out[s, m] = _loglik(c)
    return -1


def lockstep_plan(offsets, N, n_chunks, block_elems, max_lanes):
    """The compiled kernels' plan, with every sequence a block of its own (this backend has no
    lockstep): (order, bstart, cbound, sizes) as ``_numba.lockstep_plan``."""
    lens = np.diff(np.asarray(offsets))
    order = np.argsort(lens, kind="stable")
    order = np.ascontiguousarray(order[np.count_nonzero(lens == 0):], dtype=np.int64)
    n = order.shape[0]
    C = max(1, min(int(n_chunks), n))
    return (order, np.arange(n + 1, dtype=np.int64), (n * np.arange(C + 1)) // C,
            np.zeros((C, 3), np.int64))


def lockstep_run(X, offsets, startprob, transmat, emit_t, order, bstart, k0, k1, sizes, st, tr,
                 ob, gamma, out, want_stats, want_gamma):
    """The sequences of blocks ``k0:k1`` of a plan: log P into ``out``; γ into ``gamma``
    (``want_gamma``); E-step sums added into ``st``, ``tr`` (Σξ divided by A, as the compiled
    kernels: the caller multiplies by A) and ``ob`` (``want_stats``; an ``ob`` of no rows
    gets nothing: the framewise E-step's γ goes to ``gamma`` rows only)."""
    A, B, PI = _params(startprob, transmat, emit_t)
    for s in order[bstart[k0]:bstart[k1]]:
        a, b = int(offsets[s]), int(offsets[s + 1])
        O = np.asarray(X[a:b], np.int64)
        alpha, c = _forward(A, B, PI, O)
        out[s] = _loglik(c)
        if out[s] == -np.inf:
            if want_gamma:
                gamma[a:b] = 0.0
            continue
        beta = _backward(A, B, O, c)
        g = alpha * beta  # defect 2 fixed: γ from α β at every t, the last one included
        g /= g.sum(axis=0)
        if want_gamma:
            gamma[a:b] = g.T
        if want_stats:
            for t in range(O.shape[0] - 1):
                tr += alpha[:, t, None] * (B[:, O[t + 1]] * beta[:, t + 1])[None, :] / c[t + 1]
            st += g[:, 0]
            if ob.shape[0]:
                for t in range(O.shape[0]):
                    ob[O[t]] += g[:, t]


def viterbi(X, offsets, log_startprob, log_transmat, log_emit_t, bp, states, out, check_m):
    """Paths into ``states``, their log-probabilities into ``out``; returns -1, or the position
    of a symbol outside [0, check_m) in the sequences' span of X (then nothing is decoded; -1
    checks nothing), as the compiled kernels, which check each block's symbols as they go."""
    a0, b0 = int(offsets[0]), int(offsets[-1])
    sym = np.asarray(X[a0:b0])
    bad = np.flatnonzero((sym < 0) | (sym >= check_m)) if check_m >= 0 else ()
    if len(bad):
        return a0 + int(bad[0])
    lA = np.asarray(log_transmat, np.float64)
    lB = np.asarray(log_emit_t, np.float64).T
    lPI = np.asarray(log_startprob, np.float64)
    N = lA.shape[0]
    for s, a, b in _sequences(offsets):
        if b == a:
            out[s] = 0.0
            continue
        O = np.asarray(X[a:b], np.int64)
        T = O.shape[0]
        delta = np.zeros((N, T))
        psi = np.zeros((N, T), dtype=np.int64)
        delta[:, 0] = lPI + lB[:, O[0]]
        for t in range(1, T):
            for j in range(N):
                cand = delta[:, t - 1] + lA[:, j]
                psi[j, t] = N - 1 - np.argmax(cand[::-1])  # ties: the largest state
                delta[j, t] = cand[psi[j, t]] + lB[j, O[t]]
        # defect 3 fixed: backtrack through the stored argmaxes
        path = np.zeros(T, dtype=np.int64)
        path[-1] = np.argmax(delta[:, -1])
        for t in range(T - 1, 0, -1):
            path[t - 1] = psi[path[t], t]
        states[a:b] = path
        out[s] = delta[path[-1], -1]
    return -1


def sample_chain(u, start_cdf, trans_cdf, emit_cdf, states, symbols):
    n = states.shape[0]
    cur = 0
    for t in range(n):
        cdf = start_cdf if t == 0 else trans_cdf[cur]
        hit = np.nonzero(cdf > u[2 * t])[0]
        cur = int(hit[0]) if hit.size else 0
        states[t] = cur
        hit = np.nonzero(emit_cdf[cur] > u[2 * t + 1])[0]
        symbols[t] = int(hit[0]) if hit.size else 0
    return states


def n_threads():
    return 1


def symbol_range(X, n_chunks, out):
    """Smallest and largest symbol of X (non-empty) into out[0], out[1]."""
    out[0], out[1] = X.min(), X.max()
    return out


def diag_frames(X, center, a, b, lin, quad, const, out, shift, scaled):
    """Diagonal-Gaussian log-likelihoods of frames X[a:b] - center, scaled by each frame's
    maximum when ``scaled`` (the compiled kernels' fused job, in plain NumPy)."""
    x = X[a:b] - center
    _frames_out(const + x @ lin.T + (x * x) @ quad.T, a, b, out, shift, scaled)


def _frames_out(ll, a, b, out, shift, scaled):
    """Log-likelihoods ``ll`` of frames [a, b) into out, or with ``scaled`` exp(ll - m) and
    m, each frame's maximum (0 when all -inf), into shift."""
    if scaled:
        m = ll.max(axis=1)
        m[m == -np.inf] = 0.0
        shift[a:b] = m
        ll = np.exp(ll - m[:, None])
    out[a:b] = ll


def full_frames(X, center, a, b, mc, linv, const, out, shift, scaled):
    """Full-covariance log-likelihoods of frames X[a:b]: const_k - ½ |L_k⁻¹ (x - center -
    mc_k)|² (``linv`` zero-padded to (N, Dp, Dp)), scaled by each frame's maximum when
    ``scaled`` (the compiled kernels' job, in plain NumPy)."""
    D = X.shape[1]
    y = X[a:b] - center
    z = np.einsum("kij,tkj->tki", linv[:, :D, :D], y[:, None, :] - mc[None])
    _frames_out(const - 0.5 * (z * z).sum(axis=2), a, b, out, shift, scaled)


def diag_moments(X, center, gamma, a, b, post, obs, sq):
    """The diagonal M-step's weighted sums of frames [a, b), added into post, obs, sq."""
    y = X[a:b] - center
    g = gamma[a:b]
    post += g.sum(axis=0)
    obs += g.T @ y
    sq += g.T @ (y * y)


def full_moments(X, center, gamma, a, b, post, obs, sq):
    """The full M-step's weighted sums of frames [a, b), added into post, obs and sq (N,
    D(D+1)/2: Σγ y_d y_e for d <= e, row-major upper triangle)."""
    y = X[a:b] - center
    g = gamma[a:b]
    iu, ju = np.triu_indices(X.shape[1])
    post += g.sum(axis=0)
    obs += g.T @ y
    sq += g.T @ (y[:, iu] * y[:, ju])


def frame_pairs(X, center, a, b, out, diag):
    """Pairwise products y_i y_j (i <= j, row-major upper triangle; i = j only with
    ``diag``) and y = x - center of frames [a, b), lanes innermost, into out (>= P + D,
    >= b - a)."""
    y = (X[a:b] - center).T
    D = X.shape[1]
    iu, ju = (np.arange(D),) * 2 if diag else np.triu_indices(D)
    P = iu.shape[0]
    out[:P, :b - a] = y[iu] * y[ju]
    out[P:P + D, :b - a] = y


def count_terms(x, a, b, table, out):
    """The count models' factorial terms Σ_d log(x_td!) of frames [a, b), checked as counts
    (the compiled kernels' job and return codes, in plain NumPy)."""
    v = x[a:b]
    if not ((v >= 0) & (v <= 2.0 ** 53) & (v == np.floor(v))).all():
        return 1
    big = (v >= table.shape[0]).any(axis=1)
    terms = table.take(np.minimum(v, table.shape[0] - 1).astype(np.intp))
    s = np.zeros(len(v))
    for d in range(v.shape[1]):  # features in order, as the kernels add them
        s += terms[:, d]
    out[a:b][~big] = s[~big]
    return 2 if big.any() else 0


def mixture_frames(L, logw, a, b, out, shift, mix, scaled):
    """Per-state log-sum-exp of weighted component log-densities of frames [a, b): the
    frames' likelihoods scaled by their maximum (``shift``) with ``scaled``, else their logs,
    into out; with ``mix`` the components' posteriors within their state replace L's rows."""
    N, nm = logw.shape
    x = L[a:b].reshape(-1, N, nm) + logw
    top = x.max(axis=2)
    top[top == -np.inf] = 0.0
    e = np.exp(x - top[:, :, None])
    s = e.sum(axis=2)
    if mix:
        L[a:b] = (e / np.where(s > 0, s, 1.0)[:, :, None]).reshape(b - a, N * nm)
    if scaled:
        m = np.where(s > 0, top, -np.inf).max(axis=1)
        m[m == -np.inf] = 0.0
        shift[a:b] = m
        out[a:b] = np.where(s > 0, s * np.exp(np.minimum(top - m[:, None], 0.0)), 0.0)
    else:
        with np.errstate(divide="ignore"):
            out[a:b] = np.log(s) + top


def forward_loglik_frames(X, offsets, order, startprob, transmat, flp, out):
    """As the compiled ``forward_loglik_frames``: scores of the sequences ``order`` from the
    frames' emission log-likelihoods ``flp`` (X = 0..n-1, symbol t is frame t), each frame
    scaled by its maximum (0 when all are -inf) and the maxima added back; a sequence with a
    NaN or +inf entry scores NaN.  Returns -1."""
    flp = np.asarray(flp, np.float64)
    A, PI = np.asarray(transmat, np.float64), np.asarray(startprob, np.float64)
    for s in order:
        rows = flp[offsets[s]:offsets[s + 1]]
        if (np.isnan(rows) | (rows == np.inf)).any():
            out[s] = np.nan
            continue
        m = rows.max(axis=1)
        m[m == -np.inf] = 0.0
        B = np.exp(rows - m[:, None]).T  # (N, T): frame t's scaled likelihoods
        _, c = _forward(A, B, PI, np.arange(rows.shape[0]))
        out[s] = _loglik(c) + m.sum()
    return -1


def _diag_table(emissions):
    """The (n, N) table of the frames' diagonal-Gaussian log-likelihoods (``emissions`` =
    (data, center, lin, quad, const), see ``diag_frames``)."""
    data, center, lin, quad, const = emissions
    flp = np.empty((data.shape[0], lin.shape[0]))
    diag_frames(data, center, 0, data.shape[0], lin, quad, const, flp, None, False)
    return flp


def forward_loglik_diag(X, offsets, order, startprob, transmat, emissions, out):
    """As the compiled ``forward_loglik_diag``: ``forward_loglik_frames`` on the frames'
    diagonal-Gaussian log-likelihoods, here computed first as a table (``emissions`` = (data,
    center, lin, quad, const), see ``diag_frames``).  Returns -1."""
    return forward_loglik_frames(X, offsets, order, startprob, transmat,
                                 _diag_table(emissions), out)


forward_loglik_diag_lanes = forward_loglik_diag  # the compiled kernels' small-N entry


def viterbi_diag(X, offsets, log_startprob, log_transmat, emissions, bp, states, out, check_m):
    """As the compiled ``viterbi_diag``: ``viterbi`` on the frames' diagonal-Gaussian
    log-likelihoods, here computed first as a table (``emissions`` = (data, center, lin,
    quad, const), see ``diag_frames``)."""
    return viterbi(X, offsets, log_startprob, log_transmat, _diag_table(emissions), bp, states,
                   out, -1)
