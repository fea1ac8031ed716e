"""Scoring: per-sequence log-likelihoods (``forward_loglik``), the forward pass of blocks of
sequences in lockstep, with exact power-of-two scaling and the symbols range-checked as read."""
from __future__ import annotations

import numpy as np
from numba import njit

from ..._jit import njit_variant
from ._common import (
    GEMM_LANES, LANES, SMALL_MAX_N, TILE, TILE_BYTES, _loglik_pow2, _pow2_scale, _span_range)


@njit(nogil=True, cache=True)
def _finish_one(X, a, b, transmat_t, emit_t, cur, nxt, k):
    """Carry one sequence alone over X[a:b] from α in ``cur`` (unscaled, k factors 2 so far)
    and return log P.  For N <= SMALL_MAX_N (8) the arithmetic is the unrolled lanes' own,
    operation for operation, so a score does not depend on which sequences shared its block.
    Above that the lanes step by a BLAS GEMM (``_lanes_gemm``), whose summation order differs
    from this loop's, so a score can change in the last bits with the block it was scored in
    (how many of its steps ran in lockstep: the block's shortest length)."""
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

    @njit_variant(f"n{N}", nogil=True)
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


@njit(nogil=True, cache=True)
def _first_bad_symbol(X, offsets, idx, M):
    """Position of a symbol outside [0, M) in the sequences ``idx``, or -1 if there is none.

    Run on a block just before it is scored: the range check then shares the block's one read
    of its symbols from memory (the scoring that follows finds them in cache), and the parallel
    launch of the kernel, where a separate check would cost a pass over X of its own."""
    for l in range(idx.shape[0]):
        a, b = offsets[idx[l]], offsets[idx[l] + 1]
        mn, mx = _span_range(X, a, b, np.int64(0), np.int64(0))
        if mn < 0 or mx >= M:
            for p in range(a, b):
                if X[p] < 0 or X[p] >= M:
                    return p
    return -1


@njit(nogil=True, cache=True)
def forward_loglik(X, offsets, order, startprob, transmat, emit_t, out):
    """Log-likelihoods of the sequences ``order`` (non-empty, shortest first) into ``out``
    (float64, indexed by sequence); O(N) memory per sequence.  Blocks of LANES consecutive
    entries of ``order`` advance in lockstep (``_score_block``); the caller cuts a batch's order
    into pieces at multiples of LANES, so blocks are the same whatever the pieces.

    The symbols are range-checked here, block by block before use (``_first_bad_symbol``):
    returns -1 if all lie in [0, M), else the position of one that does not, and the blocks
    holding such a symbol are not scored (their ``out`` entries are left unset)."""
    S = order.shape[0]
    N = startprob.shape[0]
    W = LANES if N <= SMALL_MAX_N else GEMM_LANES
    transmat_t = np.ascontiguousarray(transmat.T)
    M = emit_t.shape[0]
    em = np.empty((TILE, N * W) if N <= SMALL_MAX_N else (0, 0), transmat.dtype)
    alpha = np.empty(N * W, transmat.dtype)
    nxt = np.empty(N * W, transmat.dtype)
    k = np.empty(W, np.int64)
    bad = -1
    for s0 in range(0, S, W):
        idx = order[s0:min(s0 + W, S)]
        p = _first_bad_symbol(X, offsets, idx, M)
        if p >= 0:
            bad = p
            continue
        _score_block(X, offsets, idx, startprob, transmat, transmat_t, emit_t, em, alpha, nxt,
                     k, out)
    return bad
