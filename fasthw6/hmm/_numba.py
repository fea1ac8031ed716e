"""Numba HMM kernels (backend ``"numba"``).

Everything reaching these functions was validated by ``fasthw6.hmm.api``: symbols lie in
``[0, M)``, ``offsets`` is non-decreasing from 0 to ``len(X)``, probabilities are finite and
non-negative.  Nothing here checks bounds.

Conventions shared with ``_cython.pyx`` and ``reference.py`` (same names, same signatures):

- ``X`` holds the symbols of every sequence end to end (any unsigned/signed integer dtype, read
  in place), sequence ``s`` is ``X[offsets[s]:offsets[s+1]]``;
- ``emit_t`` is the emission matrix transposed, ``(M, N)``: the column of symbol ``x`` is the
  contiguous row ``emit_t[x]``;
- the forward pass of the posterior and E-step kernels normalises α every step (α̂ sums to 1).
  The log-likelihood is the sum of the logs of the normalisers, but taking a log per step costs
  more than the whole step at small N, so the normalisers are multiplied into a float64 mantissa
  ``p`` kept in [2^-512, 1] by exact power-of-two rescaling (``_ll_push``); one log per sequence
  remains.  A normaliser below 2^-400 (not representable in that budget) is logged directly; a
  zero one means the sequence is impossible: its log-likelihood is -inf and it contributes
  nothing to the E-step statistics.
- the scoring kernel (``forward_loglik``) does not divide at all: each step scales α by the
  exact power of two that brings its sum into [1, 2), read from the sum's exponent bits
  (``_pow2_scale``), and counts the factors; log P = log(Σ α_T) + k ln 2.  That keeps the range
  normalising keeps, with no division and no log per step; an impossible sequence's α stays 0
  and its log gives -inf.
- backward messages are normalised to sum 1 each step (they never overflow) and γ, ξ are
  normalised by ``Z_t = α̂_t · (A u)``, so their scale cancels exactly.
- Σ_t ξ_t(i, j) = A_ij Σ_t α̂_t(i) u_{t+1}(j) / Z_t: the kernels accumulate the outer products
  only and the caller multiplies by A once.  No T×N×N array ever exists.
"""
from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

_TWO_M512 = 2.0 ** -512
_TWO_P512 = 2.0 ** 512
_SMALL = 2.0 ** -400
_LN2_512 = 512.0 * math.log(2.0)
_LN2 = math.log(2.0)
LANES = 64  # sequences advanced in lockstep by the forward kernel (lanes innermost)
GEMM_LANES = 64  # lanes when the step is a BLAS GEMM
SMALL_MAX_N = 8  # up to this many states the lockstep kernel is compiled for each N; above, GEMM
TILE = 16  # most steps of emissions the small-N kernels gather at a time ...
TILE_BYTES = 16384  # ... and at most this size, to stay in L1 (1.1-1.3x at N=3..8 over 16 steps)


@njit(nogil=True, cache=True, inline="always")
def _ll_push(s, p, e, extra):
    """Fold normaliser ``s`` into (mantissa p, count e of 2^512 factors, directly logged extra)."""
    if s >= _SMALL:
        p *= s
        if p < _TWO_M512:
            p *= _TWO_P512
            e += 1
    elif s > 0.0:
        extra += math.log(s)
    else:
        extra = -np.inf
    return p, e, extra


@njit(nogil=True, cache=True, inline="always")
def _ll_value(p, e, extra):
    if extra == -np.inf:
        return -np.inf
    return math.log(p) - e * _LN2_512 + extra


@njit(nogil=True, cache=True)
def _chunks(offsets, n_chunks):
    """Split the sequences into ``n_chunks`` contiguous ranges of about equal symbol count."""
    S = offsets.shape[0] - 1
    n_chunks = max(1, min(n_chunks, S))
    bounds = np.empty(n_chunks + 1, np.int64)
    total = offsets[S]
    bounds[0] = 0
    for c in range(1, n_chunks):
        target = (total * c) // n_chunks
        b = np.searchsorted(offsets[:S + 1], target)
        bounds[c] = max(bounds[c - 1], min(b, S))
    bounds[n_chunks] = S
    return bounds


@njit(nogil=True, cache=True, inline="always")
def _forward_one(X, a, b, startprob, transmat, emit_t, alpha, tmp):
    """Scaled forward over X[a:b] (b > a), α̂ rows written to ``alpha[0:b-a]``; returns log P."""
    N = startprob.shape[0]
    x = X[a]
    s = 0.0
    for j in range(N):
        v = startprob[j] * emit_t[x, j]
        alpha[0, j] = v
        s += v
    p, e, extra = 1.0, 0, 0.0
    p, e, extra = _ll_push(s, p, e, extra)
    if s == 0.0:
        return -np.inf
    r = 1.0 / s
    for j in range(N):
        alpha[0, j] *= r
    for t in range(1, b - a):
        x = X[a + t]
        prev = alpha[t - 1]
        cur = alpha[t]
        for j in range(N):
            tmp[j] = 0.0
        for i in range(N):  # axpy form: row i of A is contiguous
            ai = prev[i]
            if ai != 0.0:
                row = transmat[i]
                for j in range(N):
                    tmp[j] += ai * row[j]
        em = emit_t[x]
        s = 0.0
        for j in range(N):
            v = tmp[j] * em[j]
            cur[j] = v
            s += v
        p, e, extra = _ll_push(s, p, e, extra)
        if s == 0.0:
            return -np.inf
        r = 1.0 / s
        for j in range(N):
            cur[j] *= r
    return _ll_value(p, e, extra)


@njit(nogil=True, cache=True, inline="always")
def _forward_score_one(X, a, b, startprob, transmat, emit_t, alpha, tmp):
    """Scaled forward over X[a:b] keeping only the current α̂ (O(N) memory); returns log P."""
    N = startprob.shape[0]
    x = X[a]
    s = 0.0
    for j in range(N):
        v = startprob[j] * emit_t[x, j]
        alpha[j] = v
        s += v
    p, e, extra = 1.0, 0, 0.0
    p, e, extra = _ll_push(s, p, e, extra)
    if s == 0.0:
        return -np.inf
    r = 1.0 / s
    for j in range(N):
        alpha[j] *= r
    for t in range(a + 1, b):
        x = X[t]
        for j in range(N):
            tmp[j] = 0.0
        for i in range(N):
            ai = alpha[i]
            row = transmat[i]
            for j in range(N):
                tmp[j] += ai * row[j]
        em = emit_t[x]
        s = 0.0
        for j in range(N):
            v = tmp[j] * em[j]
            alpha[j] = v
            s += v
        p, e, extra = _ll_push(s, p, e, extra)
        if s == 0.0:
            return -np.inf
        r = 1.0 / s
        for j in range(N):
            alpha[j] *= r
    return _ll_value(p, e, extra)


@njit(nogil=True, cache=True, inline="always")
def _pow2_scale(s):
    """(r, k): r = 2^-k, the exact power of two that brings ``s`` into [1, 2).

    Read from the bits of ``s``: a few integer operations that vectorise with the lanes, where
    a division (or a log) per lane-step would cost as much as the whole step at small N.
    s = 0 gives k = -1023: α stays 0 and the final log gives -inf.  A subnormal s gets
    r = 2^1023 and lands in (2^-51, 2), safe to carry on from."""
    ex = (np.float64(s).view(np.int64) >> 52) & 0x7FF
    return np.int64((2046 - ex) << 52).view(np.float64), ex - 1023


@njit(nogil=True, cache=True, inline="always")
def _loglik_pow2(s, k):
    """log P from the sum ``s`` of the last (unscaled) α and the count ``k`` of factors 2."""
    if s > 0.0:
        return math.log(s) + k * _LN2
    return -np.inf


@njit(nogil=True, cache=True)
def _finish_one(X, a, b, transmat_t, emit_t, cur, nxt, k):
    """Carry one sequence alone over X[a:b] from α in ``cur`` (unscaled, k factors 2 so far)
    and return log P.  The arithmetic is the lanes' own, operation for operation, so a score
    does not depend on which sequences shared its block."""
    N = cur.shape[0]
    for t in range(a, b):
        s = np.float64(cur[0])
        for i in range(1, N):
            s += cur[i]
        r, kk = _pow2_scale(s)
        k += kk
        row = emit_t[X[t]]
        for j in range(N):
            at = transmat_t[j]
            acc = at[0] * cur[0]
            for i in range(1, N):
                acc += at[i] * cur[i]
            nxt[j] = acc * (row[j] * r)
        cur, nxt = nxt, cur
    s = np.float64(cur[0])
    for i in range(1, N):
        s += cur[i]
    return _loglik_pow2(s, k)


def _make_lanes_small(N):
    """The lockstep kernel for a fixed small N, over LANES lanes.

    With N and the lane count compile-time constants, the loops over states unroll and every
    array access sits at a constant offset from one of a few base pointers, so LLVM vectorises
    the loop over lanes whole (α sums, power-of-two scale, the N x N product, the emission
    factor), with a handful of runtime alias checks.  Two things keep those checks few enough
    for it to try: flat arrays (row j of α is ``alpha[j*W:(j+1)*W]``) and no third α buffer:
    the step writes into the emission tile it has just consumed and copies back.  The gather of
    emissions does not vectorise; it runs apart, TILE steps at a time.  Operands: ``transmat``
    flat (N*N,), ``em`` (TILE, N*W), ``alpha`` (N*W,), ``k`` (W,) counts of factors 2 so far.
    """
    W = LANES
    TT = max(2, min(TILE, TILE_BYTES // (8 * N * W)))

    @njit(nogil=True, cache=True)
    def lanes(X, pos, T, startprob, transmat, emit_t, em, alpha, k):
        for t0 in range(0, T, TT):
            nt = min(TT, T - t0)
            for tt in range(nt):
                for l in range(W):
                    row = emit_t[X[pos[l] + t0 + tt]]
                    for j in range(N):
                        em[tt, j * W + l] = row[j]
            first = 0
            if t0 == 0:
                for j in range(N):
                    pj = startprob[j]
                    for l in range(W):
                        alpha[j * W + l] = pj * em[0, j * W + l]
                first = 1
            for tt in range(first, nt):
                e = em[tt]
                for l in range(W):
                    s = np.float64(alpha[l])
                    for i in range(1, N):
                        s += alpha[i * W + l]
                    r, kk = _pow2_scale(s)
                    k[l] += kk
                    for j in range(N):
                        acc = transmat[j] * alpha[l]
                        for i in range(1, N):
                            acc += transmat[i * N + j] * alpha[i * W + l]
                        e[j * W + l] = acc * (e[j * W + l] * r)
                    for j in range(N):
                        alpha[j * W + l] = e[j * W + l]

    return lanes


_lanes_1 = _make_lanes_small(1)
_lanes_2 = _make_lanes_small(2)
_lanes_3 = _make_lanes_small(3)
_lanes_4 = _make_lanes_small(4)
_lanes_5 = _make_lanes_small(5)
_lanes_6 = _make_lanes_small(6)
_lanes_7 = _make_lanes_small(7)
_lanes_8 = _make_lanes_small(8)  # SMALL_MAX_N


@njit(nogil=True, cache=True, inline="always")
def _sum4(a):
    """Sum with four running partial sums: any fixed order will do for choosing a power-of-two
    scale, and four chains run in parallel where one would wait on each add."""
    N = a.shape[0]
    p0 = p1 = p2 = p3 = 0.0
    j = 0
    while j + 4 <= N:
        p0 += a[j]
        p1 += a[j + 1]
        p2 += a[j + 2]
        p3 += a[j + 3]
        j += 4
    while j < N:
        p0 += a[j]
        j += 1
    return (p0 + p1) + (p2 + p3)


@njit(nogil=True, cache=True)
def _lanes_gemm(X, pos, T, startprob, transmat, emit_t, alpha, nxt, k):
    """The lockstep kernel for N > SMALL_MAX_N, lane-major: α is (W, N), one row per lane, so
    a step is the BLAS GEMM α A, and each lane's emission row multiplies its contiguous row of
    the product directly (no gather).  Returns the array holding the last α."""
    N = startprob.shape[0]
    W = alpha.shape[0]
    for l in range(W):
        row = emit_t[X[pos[l]]]
        for j in range(N):
            alpha[l, j] = startprob[j] * row[j]
    for t in range(1, T):
        np.dot(alpha, transmat, nxt)
        for l in range(W):
            r, kk = _pow2_scale(_sum4(alpha[l]))
            k[l] += kk
            row = emit_t[X[pos[l] + t]]
            o = nxt[l]
            for j in range(N):
                o[j] *= row[j] * r
        alpha, nxt = nxt, alpha
    return alpha


@njit(nogil=True, cache=True)
def _score_block(X, offsets, idx, startprob, transmat, transmat_t, emit_t, em, alpha, nxt, k,
                 out):
    """Score the sequences ``idx`` (1 to W of them, non-empty, shortest first) in lockstep over
    the shortest one's length; the lanes past it finish alone (``_finish_one``).  Spare lanes
    repeat the last sequence and are discarded."""
    N = startprob.shape[0]
    W = k.shape[0]
    L = idx.shape[0]
    T = offsets[idx[0] + 1] - offsets[idx[0]]
    pos = np.empty(W, np.int64)
    for l in range(W):
        pos[l] = offsets[idx[min(l, L - 1)]]
        k[l] = 0
    cur = alpha
    a_flat = transmat.reshape(N * N)
    if N <= SMALL_MAX_N:
        if N == 1:
            _lanes_1(X, pos, T, startprob, a_flat, emit_t, em, alpha, k)
        elif N == 2:
            _lanes_2(X, pos, T, startprob, a_flat, emit_t, em, alpha, k)
        elif N == 3:
            _lanes_3(X, pos, T, startprob, a_flat, emit_t, em, alpha, k)
        elif N == 4:
            _lanes_4(X, pos, T, startprob, a_flat, emit_t, em, alpha, k)
        elif N == 5:
            _lanes_5(X, pos, T, startprob, a_flat, emit_t, em, alpha, k)
        elif N == 6:
            _lanes_6(X, pos, T, startprob, a_flat, emit_t, em, alpha, k)
        elif N == 7:
            _lanes_7(X, pos, T, startprob, a_flat, emit_t, em, alpha, k)
        else:
            _lanes_8(X, pos, T, startprob, a_flat, emit_t, em, alpha, k)
    else:
        cur = _lanes_gemm(X, pos, T, startprob, transmat, emit_t, alpha.reshape((W, N)),
                          nxt.reshape((W, N)), k).ravel()
    one = np.empty(N, alpha.dtype)
    two = np.empty(N, alpha.dtype)
    for l in range(L):
        a, b = offsets[idx[l]], offsets[idx[l] + 1]
        for j in range(N):
            one[j] = cur[j * W + l] if N <= SMALL_MAX_N else cur[l * N + j]
        out[idx[l]] = _finish_one(X, a + T, b, transmat_t, emit_t, one, two, k[l])


@njit(nogil=True, cache=True, parallel=True)
def forward_loglik(X, offsets, startprob, transmat, emit_t, n_chunks, out):
    """Per-sequence log-likelihoods into ``out`` (float64, one per sequence); O(N) memory per
    sequence.  Sequences are taken shortest first, LANES at a time, and advanced in lockstep
    (``_score_block``); chunk ``c`` takes every n_chunks-th block so that threads share the
    long ones."""
    S = offsets.shape[0] - 1
    N = startprob.shape[0]
    W = LANES if N <= SMALL_MAX_N else GEMM_LANES
    lengths = offsets[1:] - offsets[:-1]
    order = np.argsort(lengths, kind="mergesort")
    z = 0
    while z < S and lengths[order[z]] == 0:
        out[order[z]] = 0.0
        z += 1
    n_blocks = (S - z + W - 1) // W
    n_c = max(1, min(n_chunks, n_blocks))
    transmat_t = np.ascontiguousarray(transmat.T)
    for c in prange(n_c):
        em = np.empty((TILE, N * W) if N <= SMALL_MAX_N else (0, 0), transmat.dtype)
        alpha = np.empty(N * W, transmat.dtype)
        nxt = np.empty(N * W, transmat.dtype)
        k = np.empty(W, np.int64)
        for blk in range(c, n_blocks, n_c):
            s0 = z + blk * W
            _score_block(X, offsets, order[s0:min(s0 + W, S)], startprob, transmat, transmat_t,
                         emit_t, em, alpha, nxt, k, out)
    return out


@njit(nogil=True, cache=True, inline="always")
def _backward_one(X, a, b, transmat, emit_t, alpha, gamma, beta, u, v, start_acc, trans_raw,
                  obs_acc, want_stats):
    """Backward pass over X[a:b] given α̂ rows ``alpha[0:T]``; writes γ into ``gamma[0:T]``
    (which may be ``alpha`` itself) and, if ``want_stats``, accumulates the E-step sums."""
    N = transmat.shape[0]
    T = b - a
    last = alpha[T - 1]
    g = gamma[T - 1]
    for j in range(N):
        beta[j] = 1.0 / N
        g[j] = last[j]
    if want_stats:
        ob = obs_acc[X[b - 1]]
        for j in range(N):
            ob[j] += g[j]
    for t in range(T - 2, -1, -1):
        em = emit_t[X[a + t + 1]]
        for j in range(N):
            u[j] = em[j] * beta[j]
        at = alpha[t]
        z = 0.0
        sv = 0.0
        for i in range(N):  # dot form: row i of A times u
            row = transmat[i]
            acc = 0.0
            for j in range(N):
                acc += row[j] * u[j]
            v[i] = acc
            z += at[i] * acc
            sv += acc
        iz = 1.0 / z if z > 0.0 else 0.0
        isv = 1.0 / sv if sv > 0.0 else 0.0
        if want_stats:
            for i in range(N):
                w = at[i] * iz
                if w != 0.0:
                    tr = trans_raw[i]
                    for j in range(N):
                        tr[j] += w * u[j]
        g = gamma[t]
        for i in range(N):
            g[i] = at[i] * v[i] * iz
            beta[i] = v[i] * isv
        if want_stats:
            ob = obs_acc[X[a + t]]
            for i in range(N):
                ob[i] += g[i]
    if want_stats:
        g = gamma[0]
        for i in range(N):
            start_acc[i] += g[i]


@njit(nogil=True, cache=True, parallel=True)
def forward_backward(X, offsets, startprob, transmat, emit_t, n_chunks, gamma, out):
    """Posteriors γ (``gamma``, shape (len(X), N)) and per-sequence log-likelihoods ``out``.

    α̂ is written into ``gamma`` and overwritten in place by γ during the backward pass, so the
    only other memory is O(N) per thread.  Rows of an impossible sequence are left at 0.
    """
    N = startprob.shape[0]
    bounds = _chunks(offsets, n_chunks)
    for c in prange(bounds.shape[0] - 1):
        tmp = np.empty(N, transmat.dtype)
        beta = np.empty(N, transmat.dtype)
        u = np.empty(N, transmat.dtype)
        v = np.empty(N, transmat.dtype)
        d0 = np.zeros(1, np.float64)
        d2 = np.zeros((1, 1), np.float64)
        for s in range(bounds[c], bounds[c + 1]):
            a, b = offsets[s], offsets[s + 1]
            if b == a:
                out[s] = 0.0
                continue
            lat = gamma[a:b]
            ll = _forward_one(X, a, b, startprob, transmat, emit_t, lat, tmp)
            out[s] = ll
            if ll == -np.inf:
                lat[:] = 0.0
                continue
            _backward_one(X, a, b, transmat, emit_t, lat, lat, beta, u, v, d0, d2, d2, False)
    return out


@njit(nogil=True, cache=True, parallel=True)
def estep(X, offsets, startprob, transmat, emit_t, n_chunks, start_acc, trans_acc, obs_acc, out):
    """E-step sums over every sequence: ``start_acc`` (N,) Σ γ_0, ``trans_acc`` (N, N) Σ ξ,
    ``obs_acc`` (M, N) Σ γ_t per symbol (all float64, added to), ``out`` per-sequence log P.

    Each chunk of sequences owns its accumulators; they are merged serially at the end.
    """
    N = startprob.shape[0]
    M = emit_t.shape[0]
    S = offsets.shape[0] - 1
    maxlen = 0
    for s in range(S):
        maxlen = max(maxlen, offsets[s + 1] - offsets[s])
    bounds = _chunks(offsets, n_chunks)
    C = bounds.shape[0] - 1
    st = np.zeros((C, N), np.float64)
    tr = np.zeros((C, N, N), np.float64)
    ob = np.zeros((C, M, N), np.float64)
    for c in prange(C):
        lat = np.empty((maxlen, N), transmat.dtype)
        tmp = np.empty(N, transmat.dtype)
        beta = np.empty(N, transmat.dtype)
        u = np.empty(N, transmat.dtype)
        v = np.empty(N, transmat.dtype)
        for s in range(bounds[c], bounds[c + 1]):
            a, b = offsets[s], offsets[s + 1]
            if b == a:
                out[s] = 0.0
                continue
            ll = _forward_one(X, a, b, startprob, transmat, emit_t, lat, tmp)
            out[s] = ll
            if ll == -np.inf:
                continue
            _backward_one(X, a, b, transmat, emit_t, lat, lat, beta, u, v, st[c], tr[c], ob[c],
                          True)
    for c in range(C):
        for i in range(N):
            start_acc[i] += st[c, i]
            for j in range(N):
                trans_acc[i, j] += tr[c, i, j] * transmat[i, j]
        for k in range(M):
            for j in range(N):
                obs_acc[k, j] += ob[c, k, j]
    return out


VIT_LANES = 64  # sequences advanced in lockstep by the Viterbi kernel (lanes innermost)
VIT_LANES_MAX_N = 48  # from this many states on, one sequence at a time (axpy over states)
VIT_BLOCK_BYTES = 1 << 23  # cap on one thread's lockstep δ history (T, N, lanes) float64


@njit(nogil=True, cache=True, inline="always")
def _viterbi_step_one(delta, best, arg, log_transmat, em, Bt):
    """δ ← max-plus(δ, log A) + em for one sequence, backpointers into ``Bt``.

    Axpy form (row i of log A contiguous); ``>=`` in increasing i keeps the largest maximising
    state, so an all -inf column points to N-1, as hmmlearn.
    """
    N = delta.shape[0]
    for j in range(N):
        best[j] = -np.inf
        arg[j] = 0
    for i in range(N):
        di = delta[i]
        row = log_transmat[i]
        for j in range(N):
            w = di + row[j]
            if w >= best[j]:
                best[j] = w
                arg[j] = i
    for j in range(N):
        delta[j] = best[j] + em[j]
        Bt[j] = arg[j]


@njit(nogil=True, cache=True)
def _viterbi_tail(X, a, b, t0, log_startprob, log_transmat, log_emit_t, delta, best, arg, B,
                  states):
    """Viterbi over X[a:b] from step ``t0`` on (``delta`` holds δ of step t0-1, unless t0 is 0),
    backpointers of steps t0.. in ``B[t]``.  Writes the path's states from step max(t0-1, 0)
    on and returns (log prob, state at step max(t0-1, 0))."""
    N = delta.shape[0]
    if t0 == 0:
        em = log_emit_t[X[a]]
        for j in range(N):
            delta[j] = log_startprob[j] + em[j]
        t0 = 1
    for t in range(t0, b - a):
        _viterbi_step_one(delta, best, arg, log_transmat, log_emit_t[X[a + t]], B[t])
    k = 0  # the smallest maximising final state, as hmmlearn
    m = delta[0]
    for j in range(1, N):
        if delta[j] > m:
            m = delta[j]
            k = j
    states[b - 1] = k
    for t in range(b - a - 1, t0 - 1, -1):
        k = B[t, k]
        states[a + t - 1] = k
    return m, k


@njit(nogil=True, cache=True)
def _viterbi_lanes(X, offsets, order, s0, L, log_startprob, log_transmat, log_emit_t,
                   log_emit, D, P, best, sym, pos, kk, nk, bb, g, B, vec, bvec, avec, states, out):
    """Viterbi of the sequences ``order[s0:s0+L]`` advanced in lockstep, lanes innermost.

    The forward pass keeps no backpointers: it stores δ of every step in ``D`` (T, N, W), one
    column per sequence, and its max over i is a run of plain maxima over W contiguous lanes
    (i four at a time, one read-modify-write of ``best`` per four), which vectorises even at
    N = 2 or 3.  The argmax is needed only along the path: the backtrack recomputes it at each
    step for the one state the path is in, from the same δ and log A values, hence the same
    floats and the same ties (the largest maximising state) as a stored backpointer.
    Lockstep runs over the shortest length, at most D.shape[0] steps; a longer lane finishes
    alone (``_viterbi_tail``, backpointers in ``B``) before all lanes backtrack together.
    Idle lanes (L < W, up to a multiple of 8) repeat the last sequence.  ``log_emit`` is (N, M), the transpose of
    ``log_emit_t``.
    """
    N = log_startprob.shape[0]
    W = min(D.shape[2], (L + 7) // 8 * 8)  # lanes computed: a small last block costs less
    Tl = D.shape[0]
    for l in range(L):
        s = order[s0 + l]
        Tl = min(Tl, offsets[s + 1] - offsets[s])
    for l in range(W):
        pos[l] = offsets[order[s0 + min(l, L - 1)]]
    for t in range(Tl):
        for l in range(W):
            sym[l] = X[pos[l] + t]
        cur = D[t]
        if t == 0:
            for j in range(N):
                pj = log_startprob[j]
                ej = log_emit[j]
                cj = cur[j]
                for l in range(W):
                    cj[l] = pj + ej[sym[l]]
            continue
        prev = D[t - 1]
        for j in range(N):
            for l in range(W):
                best[l] = -np.inf
            i = 0
            while i + 4 <= N:
                a0, a1 = log_transmat[i, j], log_transmat[i + 1, j]
                a2, a3 = log_transmat[i + 2, j], log_transmat[i + 3, j]
                d0, d1, d2, d3 = prev[i], prev[i + 1], prev[i + 2], prev[i + 3]
                for l in range(W):
                    best[l] = max(max(max(d0[l] + a0, d1[l] + a1),
                                      max(d2[l] + a2, d3[l] + a3)), best[l])
                i += 4
            if i + 2 <= N:
                a0, a1 = log_transmat[i, j], log_transmat[i + 1, j]
                d0, d1 = prev[i], prev[i + 1]
                for l in range(W):
                    best[l] = max(max(d0[l] + a0, d1[l] + a1), best[l])
                i += 2
            if i < N:
                aij = log_transmat[i, j]
                di = prev[i]
                for l in range(W):
                    best[l] = max(di[l] + aij, best[l])
            ej = log_emit[j]
            cj = cur[j]
            for l in range(W):
                cj[l] = best[l] + ej[sym[l]]
    # kk[l]: the state of lane l's path at step Tl-1
    for l in range(L):
        s = order[s0 + l]
        a, b = offsets[s], offsets[s + 1]
        if b == a:
            out[s] = 0.0
            kk[l] = 0
            continue
        if Tl > 0:
            for j in range(N):
                vec[j] = D[Tl - 1, j, l]
        out[s], kk[l] = _viterbi_tail(X, a, b, Tl, log_startprob, log_transmat, log_emit_t, vec,
                                      bvec, avec, B, states)
    # The path before step Tl-1 goes to P (T, W) a step at a time (contiguous), then to
    # ``states`` a lane at a time: storing straight into ``states`` scatters W writes per step
    # across W sequences.  Steps Tl-1.. were written by ``_viterbi_tail``.
    for t in range(Tl - 1, 0, -1):
        prev = D[t - 1]
        for l in range(L):
            bb[l] = -np.inf
        for i in range(N):
            ai = log_transmat[i]
            if N <= 4:  # selects among the few entries of row i beat a gather
                c0, c1 = ai[0], ai[min(1, N - 1)]
                c2, c3 = ai[min(2, N - 1)], ai[min(3, N - 1)]
                for l in range(L):
                    kl = kk[l]
                    g[l] = c0 if kl == 0 else c1 if kl == 1 else c2 if kl == 2 else c3
            else:
                for l in range(L):
                    g[l] = ai[kk[l]]
            di = prev[i]
            for l in range(L):
                v = di[l] + g[l]
                ge = v >= bb[l]
                bb[l] = v if ge else bb[l]
                nk[l] = i if ge else nk[l]
        Pt = P[t - 1]
        for l in range(L):
            k = nk[l]
            kk[l] = k
            Pt[l] = k
    for l in range(L):
        a = pos[l]
        for t in range(Tl - 1):
            states[a + t] = P[t, l]


@njit(nogil=True, cache=True, parallel=True)
def viterbi(X, offsets, log_startprob, log_transmat, log_emit_t, bp, states, out):
    """Most likely state path of every sequence (``states``, int64, len(X)) and its log
    probability (``out``, float64 per sequence), in log space (float64).

    ``bp`` is a small-integer scratch array (int8/int16/int32 for N up to 127/32767/...) of
    shape (n_chunks, maxlen, N) allocated by the caller; chunk ``c`` uses ``bp[c]``.
    Below VIT_LANES_MAX_N states the sequences, sorted by length, go VIT_LANES at a time in
    lockstep (``_viterbi_lanes``), the blocks dealt round-robin to the chunks; from there on,
    one at a time.  Ties: the backpointer is the largest maximising state, the final state the
    smallest (as hmmlearn).  δ is never renormalised: its floats are hmmlearn's bit for bit,
    which is what makes the paths identical (a shift by max δ would round differently and
    could flip near-ties; float64 keeps ~1e-13 relative precision even at |δ| ~ 1e7).
    """
    N = log_startprob.shape[0]
    S = offsets.shape[0] - 1
    C = bp.shape[0]
    if N < VIT_LANES_MAX_N:
        W = VIT_LANES
        order = np.argsort(offsets[1:] - offsets[:-1], kind="mergesort")
        log_emit = np.ascontiguousarray(log_emit_t.T)
        n_blocks = (S + W - 1) // W
        Tb = min(bp.shape[1], max(1, VIT_BLOCK_BYTES // (N * W * 8)))
        for c in prange(C):
            D = np.empty((Tb, N, W), np.float64)
            best = np.empty(W, np.float64)
            sym = np.empty(W, np.int64)
            pos = np.empty(W, np.int64)
            kk = np.empty(W, np.int64)
            nk = np.zeros(W, np.int64)
            bb = np.empty(W, np.float64)
            g = np.empty(W, np.float64)
            P = np.empty((Tb, W), np.int8)  # N < VIT_LANES_MAX_N <= 127
            vec = np.empty(N, np.float64)
            bvec = np.empty(N, np.float64)
            avec = np.empty(N, bp.dtype)
            for blk in range(c, n_blocks, C):
                s0 = blk * W
                _viterbi_lanes(X, offsets, order, s0, min(W, S - s0), log_startprob,
                               log_transmat, log_emit_t, log_emit, D, P, best, sym, pos, kk, nk,
                               bb, g, bp[c], vec, bvec, avec, states, out)
        return out
    bounds = _chunks(offsets, C)
    for c in prange(bounds.shape[0] - 1):
        B = bp[c]
        delta = np.empty(N, np.float64)
        best = np.empty(N, np.float64)
        arg = np.empty(N, B.dtype)
        for s in range(bounds[c], bounds[c + 1]):
            a, b = offsets[s], offsets[s + 1]
            if b == a:
                out[s] = 0.0
                continue
            em = log_emit_t[X[a]]
            for j in range(N):
                delta[j] = log_startprob[j] + em[j]
            for t in range(1, b - a):
                _viterbi_step_one(delta, best, arg, log_transmat, log_emit_t[X[a + t]], B[t])
            k = 0
            m = delta[0]
            for j in range(1, N):
                if delta[j] > m:
                    m = delta[j]
                    k = j
            out[s] = m
            states[b - 1] = k
            for t in range(b - a - 1, 0, -1):
                k = B[t, k]
                states[a + t - 1] = k
    return out


@njit(nogil=True, cache=True)
def sample_chain(u, start_cdf, trans_cdf, emit_cdf, states, symbols):
    """Draw a state path and its symbols from uniforms ``u`` (2 per step, in hmmlearn's order:
    state, symbol, state, symbol, ...): the first index whose cdf exceeds u (0 if none)."""
    n = states.shape[0]
    N = start_cdf.shape[0]
    M = emit_cdf.shape[1]
    cur = 0
    for t in range(n):
        us = u[2 * t]
        cdf = start_cdf if t == 0 else trans_cdf[cur]
        nxt = 0
        for j in range(N):
            if cdf[j] > us:
                nxt = j
                break
        cur = nxt
        states[t] = cur
        ue = u[2 * t + 1]
        ec = emit_cdf[cur]
        sym = 0
        for k in range(M):
            if ec[k] > ue:
                sym = k
                break
        symbols[t] = sym
    return states


def n_threads():
    """Threads a parallel kernel of this backend runs on now."""
    return numba.get_num_threads()
