"""Numba HMM kernels (backend ``"numba"``).

Everything reaching these functions was validated by ``fasthw6.hmm._checks``: symbols lie in
``[0, M)``, ``offsets`` is non-decreasing from 0 to ``len(X)``, probabilities are finite and
non-negative.  Nothing here checks bounds -- with one exception, made for speed and kept narrow:
the scoring kernel ``forward_loglik`` receives symbols whose range the API has *not* checked,
checks each block's symbols itself before it reads an emission with them, and reports the
position of a bad one, which the API turns into its usual ``ValueError``.  A separate range
pass cost 0.36 ms of 2.9 per 10^6 int64 symbols, the fused check 0.16.

Conventions shared with ``_cython.pyx`` and ``reference.py`` (same names, same signatures):

- ``X`` holds the symbols of every sequence end to end (uint8 or int64: ``_checks._CANON``),
  sequence ``s`` is ``X[offsets[s]:offsets[s+1]]`` (``offsets`` need not start at 0: a batch
  runs as pieces, ``fasthw6._parallel``, each a slice of ``offsets`` over the whole ``X``);
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
from numba import njit

from .._jit import install_cache_locator

install_cache_locator()  # before the first @njit: kernels are cached under fasthw6._jit.cache_dir()

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


@njit(nogil=True, cache=True, inline="always")
def _span_range(X, a, b, mn, mx):
    """(min, max) of mn, mx and the symbols X[a:b], as int64, in one pass."""
    for i in range(a, b):
        v = np.int64(X[i])
        mn = min(mn, v)
        mx = max(mx, v)
    return mn, mx


@njit(nogil=True, cache=True)
def symbol_range(X, n_chunks, out):
    """Smallest and largest symbol of X (non-empty) into out[0], out[1] (int64): one pass
    instead of numpy's two, over ``n_chunks`` chunks (<= len(X): no chunk is empty)."""
    n = X.shape[0]
    lo = np.empty(n_chunks, np.int64)
    hi = np.empty(n_chunks, np.int64)
    for c in range(n_chunks):
        a = c * n // n_chunks
        b = (c + 1) * n // n_chunks
        lo[c], hi[c] = _span_range(X, a, b, np.int64(X[a]), np.int64(X[a]))
    out[0] = lo.min()
    out[1] = hi.max()
    return out


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


@njit(nogil=True, cache=True)
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


@njit(nogil=True, cache=True)
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
        for i in range(N):  # dot form: row i of A times u, in the arithmetic dtype (as the
            row = transmat[i]  # lockstep's A(e∘β)); z, Σv and the weights below are float64
            acc = row[0] * u[0]
            for j in range(1, N):
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


ESTEP_LANES = 64  # most sequences one E-step block advances in lockstep
ESTEP_GEMM_MIN_N = 12  # from this many states on, a block's steps are BLAS GEMMs
# Full blocks of 2 to this many states run sweeps compiled for their N (``_make_estep_small``):
# 1.9x at N=3 (E-step 14.1 -> 7.4 ms).  Every N compiled is JIT time again at every kernel
# signature reaching it (symbol dtype x float dtype x entry point): N = 1..8 made the first
# E-step call 36 s and each later signature 23 s, against 21 s and 16 s with one N.
ESTEP_SMALL_MAX_N = 4
ESTEP_XI_COLS = 256  # most (step, lane) columns gathered per Σξ GEMM
ESTEP_XS_STEPS = 16  # steps per tile when the symbols are transposed to (step, lane) (2.6x)
# OpenBLAS threads a GEMM of more multiply-adds than this (4 x 65536): more threads than the
# caller asked for, fighting over the cores of a parallel E-step.  Every GEMM here stays below.
ESTEP_GEMM_MAX_MADDS = 1 << 18


@njit(nogil=True, cache=True)
def lockstep_plan(offsets, N, n_chunks, block_elems):
    """Sort the sequences by length and cut them into lockstep blocks.

    Returns ``order`` (sequence indexes, shortest first, empty ones left out), ``bstart``
    (block ``k`` is ``order[bstart[k]:bstart[k+1]]``), ``cbound`` (chunk ``c`` owns blocks
    ``cbound[c]:cbound[c+1]``) and, per chunk, the scratch sizes its blocks need: α̂ values,
    symbols, and rows for the lanes that outrun the block's shortest sequence.

    A block's first sequence is its shortest (length T0); others join while their tails beyond
    T0 stay short (those steps run one lane at a time) and T0 x N x lanes fits the α̂ budget, ``block_elems``.
    """
    S = offsets.shape[0] - 1
    lens = offsets[1:] - offsets[:-1]
    order_all = np.argsort(lens, kind="mergesort")
    first = 0
    while first < S and lens[order_all[first]] == 0:
        first += 1
    order = order_all[first:].copy()
    n = order.shape[0]
    bstart = np.empty(n + 1, np.int64)
    nb = 0
    p = 0
    while p < n:
        T0 = lens[order[p]]
        lanes = min(ESTEP_LANES, max(1, block_elems // (T0 * N)))
        limit = T0 + T0 // 8 + 2
        q = p + 1
        while q < n and q - p < lanes and lens[order[q]] <= limit:
            q += 1
        bstart[nb] = p
        nb += 1
        p = q
    bstart[nb] = n
    bstart = bstart[:nb + 1].copy()
    C = max(1, min(n_chunks, nb))
    total = 0
    for k in range(n):
        total += lens[order[k]]
    cbound = np.empty(C + 1, np.int64)
    cbound[0] = 0
    c = 1
    acc = 0
    for k in range(nb):
        for q in range(bstart[k], bstart[k + 1]):
            acc += lens[order[q]]
        while c < C and acc * C >= total * c:
            cbound[c] = k + 1
            c += 1
    while c <= C:
        cbound[c] = nb
        c += 1
    sizes = np.zeros((C, 3), np.int64)
    for c in range(C):
        for k in range(cbound[c], cbound[c + 1]):
            L = bstart[k + 1] - bstart[k]
            T0 = lens[order[bstart[k]]]
            Tmax = lens[order[bstart[k + 1] - 1]]
            if L == 1:
                sizes[c, 2] = max(sizes[c, 2], T0)
            else:
                sizes[c, 0] = max(sizes[c, 0], T0 * N * L)
                sizes[c, 1] = max(sizes[c, 1], T0 * L)
                sizes[c, 2] = max(sizes[c, 2], Tmax - T0 + 1)
    return order, bstart, cbound, sizes


@njit(nogil=True, cache=True, inline="always")
def _lazy_scale_bits(arr):
    """Bits K of the lockstep passes' power-of-two rescaling: a lane's α (or β) sum is kept in
    [2^-K, 1] (β: [2^-K, 2^K]) by exact multiplications by 2^±K, so no step divides.  Small
    enough in float32 that products of α and β values stay far from underflow."""
    return 24.0 if arr.itemsize == 4 else 256.0


@njit(nogil=True, cache=True)
def _forward_rare(cur, sv, e, extra, up, tiny):
    """A lane whose α sum ``sv`` fell below ``tiny`` (after one rescaling by ``up``): normalise it
    exactly, log the sum into ``extra`` (-inf and zeros if it is 0)."""
    N, L = cur.shape
    for l in range(L):
        v = sv[l]
        if v < tiny:
            e[l] -= 1.0
            if v > 0.0:
                extra[l] += math.log(v)
                for j in range(N):
                    cur[j, l] = cur[j, l] / up / v
            else:
                extra[l] = -np.inf
                for j in range(N):
                    cur[j, l] = 0.0


def _make_estep_small(N):
    """The lockstep E-step's forward and backward sweeps for a fixed small N over a full block
    of W = ESTEP_LANES lanes: (forward_sweep, backward_sweep).

    With N and W compile-time constants every access is a constant offset from one of a few
    base pointers (α̂ in ``ab``; the block's scratch ``fb``/``db`` in ``_lockstep_block``'s
    layout), so LLVM proves the loops over lanes free of aliasing and vectorises them, and the
    loops over states unroll: measured at N=3, the backward step ran 3.4x faster than the same
    code with the lane count a run-time value.  Same operations in the same order and types as
    the generic loops of ``_lockstep_forward`` / ``_lockstep_block``.
    """
    W = ESTEP_LANES
    NW = N * W
    U, V, B = 0, NW, 2 * NW  # u, v, β in fb; in db: γ, the lane rows, Σξ terms, ξ weights
    G, E, EXTRA, LIVE, F, SV = 0, NW + W, NW + 2 * W, NW + 3 * W, NW + 4 * W, NW + 5 * W
    XA = NW + 6 * W + N
    P = XA + N * NW + N * N

    @njit(nogil=True, cache=True)
    def forward(prev, cur, xt, emit_t, a_flat, db, up, low, tiny):
        """α_t into ``cur`` from α_{t-1} in ``prev`` (both N x W, flat), lazily rescaled; the
        sums into the lane row ``sv``; returns how many are below ``tiny`` (left to
        ``_forward_rare``).  Indexes are constants plus the lane: numba's wraparound of a
        possibly negative index would hide the access pattern from the vectoriser."""
        for l in range(W):  # the gather apart: in the loop below it stops vectorisation
            row = emit_t[xt[l]]
            for j in range(N):
                cur[j * W + l] = row[j]
        nbad = 0
        nlow = 0
        for l in range(W):
            s = 0.0
            for j in range(N):
                acc = a_flat[j] * prev[l]
                for i in range(1, N):
                    acc += a_flat[i * N + j] * prev[i * W + l]
                w = acc * cur[j * W + l]
                cur[j * W + l] = w
                s += w
            lw = s < low
            db[F + l] = up if lw else 1.0
            db[E + l] += 1.0 if lw else 0.0
            nlow += 1 if lw else 0
            nbad += 1 if s < tiny else 0
            db[SV + l] = s
        if nlow > 0:
            for j in range(N):
                for l in range(W):
                    cur[j * W + l] *= db[F + l]
        return nbad

    @njit(nogil=True, cache=True)
    def backward(at, fb, db, xt, xt1, emit_t, a_flat, up, low, ob, want_stats):
        """One backward step: β_t from β_{t+1} (power-of-two rescaled), γ_t and, if
        ``want_stats``, α̂_t/Z_t ⊗ u_{t+1} added to the Σξ terms; α̂_t is ``at`` (N x W)."""
        for l in range(W):  # the gather apart, as in ``forward``
            row = emit_t[xt1[l]]
            for j in range(N):
                fb[U + j * W + l] = row[j]
        for l in range(W):
            for j in range(N):
                fb[U + j * W + l] = fb[U + j * W + l] * fb[B + j * W + l]
            z = 0.0
            sv = 0.0
            for i in range(N):
                acc = a_flat[i * N] * fb[U + l]
                for j in range(1, N):
                    acc += a_flat[i * N + j] * fb[U + j * W + l]
                fb[V + i * W + l] = acc
                z += at[i * W + l] * acc
                sv += acc
            okz = z > 0.0
            zi = (db[LIVE + l] if okz else 0.0) / (z if okz else 1.0)
            fl = up if sv < low else (low if sv > up else 1.0)
            for i in range(N):
                a = at[i * W + l]
                vi = fb[V + i * W + l]
                db[G + i * W + l] = a * vi * zi
                fb[B + i * W + l] = vi * fl
                db[P + i * W + l] = a * zi
        if want_stats:  # apart: a branch in the loop above stops its vectorisation
            for l in range(W):
                for i in range(N):
                    w = db[P + i * W + l]
                    for j in range(N):
                        db[XA + (i * N + j) * W + l] += w * fb[U + j * W + l]
            for l in range(W):
                orow = ob[xt[l]]
                for i in range(N):
                    orow[i] += db[G + i * W + l]

    @njit(nogil=True, cache=True)
    def forward_sweep(ab, xs, emit_t, a_flat, db, up, low, tiny):
        """Steps 1 .. T0-1 of the lockstep forward (step 0 is the caller's)."""
        e = db[E:E + W]
        extra = db[EXTRA:EXTRA + W]
        sv = db[SV:SV + W]
        for t in range(1, xs.shape[0]):
            cur = ab[t * NW:(t + 1) * NW]
            nbad = forward(ab[(t - 1) * NW:t * NW], cur, xs[t], emit_t, a_flat, db, up, low, tiny)
            if nbad > 0:
                _forward_rare(cur.reshape((N, W)), sv, e, extra, up, tiny)

    @njit(nogil=True, cache=True)
    def backward_sweep(ab, fb, db, xs, emit_t, a_flat, up, low, ob, gamma, offsets, seqs,
                       want_stats, want_gamma):
        """Steps T0-2 .. 0 of the lockstep backward, γ rows into ``gamma`` if ``want_gamma``."""
        for t in range(xs.shape[0] - 2, -1, -1):
            backward(ab[t * NW:(t + 1) * NW], fb, db, xs[t], xs[t + 1], emit_t, a_flat, up, low,
                     ob, want_stats)
            if want_gamma:
                for l in range(W):
                    grow = gamma[offsets[seqs[l]] + t]
                    for i in range(N):
                        grow[i] = db[G + i * W + l]

    return forward_sweep, backward_sweep


_estep_forward_2, _estep_backward_2 = _make_estep_small(2)
_estep_forward_3, _estep_backward_3 = _make_estep_small(3)
_estep_forward_4, _estep_backward_4 = _make_estep_small(4)  # ESTEP_SMALL_MAX_N


@njit(nogil=True, cache=True)
def _estep_forward_small(N, ab, xs, emit_t, a_flat, db, up, low, tiny):
    """``_make_estep_small(N)``'s forward sweep (numba cannot index a tuple of functions at run
    time)."""
    if N == 2:
        _estep_forward_2(ab, xs, emit_t, a_flat, db, up, low, tiny)
    elif N == 3:
        _estep_forward_3(ab, xs, emit_t, a_flat, db, up, low, tiny)
    else:
        _estep_forward_4(ab, xs, emit_t, a_flat, db, up, low, tiny)


@njit(nogil=True, cache=True)
def _estep_backward_small(N, ab, fb, db, xs, emit_t, a_flat, up, low, ob, gamma, offsets, seqs,
                          want_stats, want_gamma):
    """``_make_estep_small(N)``'s backward sweep."""
    if N == 2:
        _estep_backward_2(ab, fb, db, xs, emit_t, a_flat, up, low, ob, gamma, offsets, seqs,
                          want_stats, want_gamma)
    elif N == 3:
        _estep_backward_3(ab, fb, db, xs, emit_t, a_flat, up, low, ob, gamma, offsets, seqs,
                          want_stats, want_gamma)
    else:
        _estep_backward_4(ab, fb, db, xs, emit_t, a_flat, up, low, ob, gamma, offsets, seqs,
                          want_stats, want_gamma)


@njit(nogil=True, cache=True)
def _lockstep_forward(X, offsets, seqs, startprob, transmat, transmat_t, emit_t, xs, alpha,
                      lane, dbuf):
    """Forward of the L sequences ``seqs`` over their first T0 steps, in lockstep.

    ``xs`` (T0, L) receives the symbols (so both passes read them contiguously), ``alpha``
    (T0, N, L) every α_t with one column per lane.  α_t is not normalised: the backward needs
    it only up to a factor per step, so a lane is rescaled by 2^K only when its sum falls
    below 2^-K (see ``_lazy_scale_bits``), counted in ``e``; a sum below 2^-2K is normalised
    exactly and its log added to ``extra`` (-inf if 0: the lane is zeroed).  On return
    ``p[l]`` is the sum of α_{T0-1} and log P(first T0 symbols) = log p - e K ln 2 + extra.
    """
    T0, N, L = alpha.shape
    p, e, extra, f, sv = lane[0], lane[1], lane[2], lane[4], lane[5]
    small = 2 <= N <= ESTEP_SMALL_MAX_N and L == ESTEP_LANES
    ab = alpha.reshape(T0 * N * L)
    for t0 in range(0, T0, ESTEP_XS_STEPS):  # tiles of steps: the rows written stay in L1
        t1 = min(T0, t0 + ESTEP_XS_STEPS)
        for l in range(L):
            a = offsets[seqs[l]]
            for t in range(t0, t1):
                xs[t, l] = X[a + t]
    for l in range(L):
        e[l] = 0.0
        extra[l] = 0.0
    K2 = _lazy_scale_bits(alpha)
    up = 2.0 ** K2
    low = 1.0 / up
    tiny = low * low
    a_flat = transmat.reshape(N * N)
    for t in range(1 if small else T0):  # compiled steps: after step 0, the sweep does the rest
        xt = xs[t]
        cur = alpha[t]
        if t == 0:
            for j in range(N):
                pj = startprob[j]
                for l in range(L):
                    cur[j, l] = pj * emit_t[xt[l], j]
        else:
            if N >= ESTEP_GEMM_MIN_N:
                np.dot(transmat_t, alpha[t - 1], cur)
            else:
                _lanes_matmul(transmat_t, alpha[t - 1], cur, L)
            for j in range(N):
                for l in range(L):
                    cur[j, l] *= emit_t[xt[l], j]
        for l in range(L):
            sv[l] = 0.0
        for j in range(N):
            for l in range(L):
                sv[l] += cur[j, l]
        nlow = 0
        nbad = 0
        for l in range(L):
            v = sv[l]
            lw = v < low
            f[l] = up if lw else 1.0
            e[l] += 1.0 if lw else 0.0
            nlow += 1 if lw else 0
            nbad += 1 if v < tiny else 0
        if nlow > 0:
            for j in range(N):
                for l in range(L):
                    cur[j, l] *= f[l]
        if nbad > 0:  # rare: a sum too small for one rescaling, or zero
            _forward_rare(cur, sv, e, extra, up, tiny)
    if small:
        _estep_forward_small(N, ab, xs, emit_t, a_flat, dbuf, up, low, tiny)
    last = alpha[T0 - 1]
    for l in range(L):
        p[l] = 0.0
    for j in range(N):
        for l in range(L):
            p[l] += last[j, l]


@njit(nogil=True, cache=True)
def _xi_steps(N, L):
    """Steps gathered per Σξ GEMM ((N, K·L) x (K·L, N)) with L lanes."""
    return max(1, min(ESTEP_XI_COLS, ESTEP_GEMM_MAX_MADDS // (N * N)) // L)


@njit(nogil=True, cache=True)
def _xi_flush(pbuf, ubuf, tnn, tr):
    """Σξ raw += P Uᵀ over the steps gathered in P, U (N, k·L): one GEMM into ``tnn``, then
    added.  The Cython mirror makes the same BLAS call (same k, same leading dimensions): the
    bits of a GEMM depend on its shape, and BLAS rounds a product padded with zero columns
    differently from the unpadded one (odd N: 1-ulp differences)."""
    N = pbuf.shape[0]
    np.dot(pbuf, ubuf.T, tnn)
    for i in range(N):
        for j in range(N):
            tr[i, j] += tnn[i, j]


@njit(nogil=True, cache=True)
def _lockstep_block(X, offsets, seqs, startprob, transmat, transmat_t, emit_t, abuf, xbuf,
                    tail, fbuf, dbuf, st, tr, ob, gamma, out, want_stats, want_gamma):
    """Forward and backward of the L = len(seqs) sequences of one block (shortest first).

    The first T0 steps (T0: the shortest length) run in lockstep with lanes innermost; a lane
    that is longer continues forward alone into ``tail`` from its α̂ at T0-1, and its backward
    runs alone (``_backward_one``) down to step T0-1, handing its β to the lockstep backward.
    E-step sums go to (st, tr, ob) if ``want_stats`` (``tr`` without the factor A), γ rows to
    ``gamma`` if ``want_gamma``; ``out`` gets the log-likelihoods.  An impossible lane has
    weight 0 in the backward: it contributes nothing and its γ rows are 0.

    Σξ: below ESTEP_GEMM_MIN_N states each lane accumulates its own outer products (vectorised
    over lanes); from it on, α̂_t/Z_t and u_{t+1} of up to K steps are gathered as columns and
    Σ_t (α̂_t/Z_t) u_{t+1}ᵀ is one (N, k·L) x (k·L, N) GEMM per group of k steps.

    float32 and float64 alike, every operation, its operand types and every BLAS call's shape
    are the Cython mirror's: the two backends return the same bits.
    """
    N = startprob.shape[0]
    L = seqs.shape[0]
    T0 = offsets[seqs[0] + 1] - offsets[seqs[0]]
    gemm = N >= ESTEP_GEMM_MIN_N
    alpha = abuf[:T0 * N * L].reshape((T0, N, L))
    xs = xbuf[:T0 * L].reshape((T0, L))
    R = L if gemm else ESTEP_LANES  # row length of the per-lane arrays (see _block_layout)
    nl = N * R
    u = fbuf[:nl].reshape((N, R))
    v = fbuf[nl:2 * nl].reshape((N, R))
    beta = fbuf[2 * nl:3 * nl].reshape((N, R))
    tmp = fbuf[3 * nl:3 * nl + N]
    bb = fbuf[3 * nl + N:3 * nl + 2 * N]
    bu = fbuf[3 * nl + 2 * N:3 * nl + 3 * N]
    bv = fbuf[3 * nl + 3 * N:3 * nl + 4 * N]
    g = dbuf[:nl].reshape((N, R))
    lane = dbuf[nl:nl + 6 * R].reshape((6, R))
    p, e, extra, live, z, sv = lane[0], lane[1], lane[2], lane[3], lane[4], lane[5]
    o = nl + 6 * R
    start_discard = dbuf[o:o + N]
    o += N
    xacc = dbuf[o:o + N * N * R].reshape((N, N, R))
    o += N * N * R
    tnn = dbuf[o:o + N * N].reshape((N, N))
    o += N * N
    # Σξ columns: the T0-1 lockstep backward steps go in groups of K (the last one shorter),
    # a group's P and U row-major (N, kg·L) at the start of pflat, uflat: exactly the columns
    # its GEMM reads
    K = _xi_steps(N, L) if gemm else 1
    left = T0 - 1
    kg = min(K, left)
    pflat = dbuf[o:o + N * K * L]
    o += N * K * L
    uflat = dbuf[o:o + N * K * L]
    if want_stats and not gemm:
        xacc[:] = 0.0

    _lockstep_forward(X, offsets, seqs, startprob, transmat, transmat_t, emit_t, xs, alpha,
                      lane, dbuf)

    # step T0-1: lanes longer than T0 go forward alone, then backward alone down to T0-1
    K2 = _lazy_scale_bits(alpha)
    for l in range(L):
        s = seqs[l]
        a, b = offsets[s], offsets[s + 1]
        R = b - a - T0 + 1
        ssum = p[l]
        pl, el, xl = 1.0, 0.0, -np.inf
        if extra[l] != -np.inf and ssum > 0.0:
            xl = math.log(ssum) - e[l] * K2 * math.log(2.0) + extra[l]
        rows = tail[:R]
        if R > 1 and xl != -np.inf:
            rs = 1.0 / ssum
            for j in range(N):
                rows[0, j] = alpha[T0 - 1, j, l] * rs
            for k in range(1, R):
                prev = rows[k - 1]
                for j in range(N):
                    tmp[j] = 0.0
                for i in range(N):
                    ai = prev[i]
                    if ai != 0.0:
                        row = transmat[i]
                        for j in range(N):
                            tmp[j] += ai * row[j]
                erow = emit_t[X[a + T0 - 1 + k]]
                sk = 0.0
                for j in range(N):
                    w = tmp[j] * erow[j]
                    rows[k, j] = w
                    sk += w
                pl, el, xl = _ll_push(sk, pl, el, xl)
                if sk == 0.0:
                    break
                rk = 1.0 / sk
                for j in range(N):
                    rows[k, j] *= rk
        ll = _ll_value(pl, el, xl)
        out[s] = ll
        live[l] = 0.0 if ll == -np.inf else 1.0
        if R > 1 and ll != -np.inf:
            gl = gamma[a + T0 - 1:b] if want_gamma else rows
            _backward_one(X, a + T0 - 1, b, transmat, emit_t, rows, gl, bb, bu, bv,
                          start_discard, tr, ob, want_stats)
            for j in range(N):
                g[j, l] = gl[0, j]
                beta[j, l] = bb[j]
        else:
            if want_gamma and R > 1:
                gamma[a + T0:b] = 0.0
            w = live[l] / ssum if live[l] != 0.0 else 0.0
            for j in range(N):
                g[j, l] = alpha[T0 - 1, j, l] * w
                beta[j, l] = 1.0 / N
            if want_stats:
                orow = ob[xs[T0 - 1, l]]
                for j in range(N):
                    orow[j] += g[j, l]
            if want_gamma:
                grow = gamma[a + T0 - 1]
                for j in range(N):
                    grow[j] = g[j, l]

    # steps T0-2 .. 0 in lockstep; β is kept as A(e∘β) rescaled by powers of two only
    up = 2.0 ** K2
    low = 1.0 / up
    kcol = 0
    small = 2 <= N <= ESTEP_SMALL_MAX_N and L == ESTEP_LANES
    a_flat = transmat.reshape(N * N)
    if small:
        _estep_backward_small(N, abuf, fbuf, dbuf, xs, emit_t, a_flat, up, low, ob, gamma, offsets,
                              seqs, want_stats, want_gamma)
    first = -1 if small else T0 - 2  # (none left after the compiled sweep)
    for t in range(first, -1, -1):
        at = alpha[t]
        xt = xs[t + 1]
        for j in range(N):
            for l in range(L):
                u[j, l] = emit_t[xt[l], j] * beta[j, l]
        if gemm:
            np.dot(transmat, u, v)
        else:
            _lanes_matmul(transmat, u, v, L)
        for l in range(L):
            z[l] = 0.0
            sv[l] = 0.0
        for i in range(N):
            for l in range(L):
                z[l] += at[i, l] * v[i, l]
                sv[l] += v[i, l]
        for l in range(L):
            zl = z[l]
            okz = zl > 0.0
            z[l] = (live[l] if okz else 0.0) / (zl if okz else 1.0)  # now 1/Z (0: no weight)
            sl = sv[l]  # now the factor taking Σβ back into [2^-K, 2^K]
            sv[l] = up if sl < low else (low if sl > up else 1.0)
        if want_stats and gemm:
            # this step's columns of the Σξ GEMM, in the same pass as γ and β (E-step at
            # N=16 85 -> 75-77 ms; the Cython kernel keeps two passes: fused, gcc's code was
            # 6-8% slower)
            cw = kg * L
            c0 = kcol * L
            for i in range(N):
                pi = pflat[i * cw + c0:i * cw + c0 + L]
                ui = uflat[i * cw + c0:i * cw + c0 + L]
                for l in range(L):
                    pi[l] = at[i, l] * z[l]
                    ui[l] = u[i, l]
                    g[i, l] = at[i, l] * v[i, l] * z[l]
                    beta[i, l] = v[i, l] * sv[l]
            kcol += 1
            if kcol == kg:
                _xi_flush(pflat[:N * cw].reshape((N, cw)), uflat[:N * cw].reshape((N, cw)),
                          tnn, tr)
                left -= kg
                kg = min(K, left)
                kcol = 0
        else:
            if want_stats:
                for i in range(N):
                    for l in range(L):
                        g[i, l] = at[i, l] * z[l]
                    for j in range(N):
                        for l in range(L):
                            xacc[i, j, l] += g[i, l] * u[j, l]
            for i in range(N):
                for l in range(L):
                    g[i, l] = at[i, l] * v[i, l] * z[l]
                    beta[i, l] = v[i, l] * sv[l]
        if want_stats:
            xt = xs[t]
            for l in range(L):
                orow = ob[xt[l]]
                for i in range(N):
                    orow[i] += g[i, l]
        if want_gamma:
            for l in range(L):
                grow = gamma[offsets[seqs[l]] + t]
                for i in range(N):
                    grow[i] = g[i, l]
    if want_stats:
        if not gemm:  # (with a GEMM, the last group was flushed in the loop)
            for i in range(N):
                for j in range(N):
                    acc = 0.0
                    for l in range(L):
                        acc += xacc[i, j, l]
                    tr[i, j] += acc
        for i in range(N):
            acc = 0.0
            for l in range(L):
                acc += g[i, l]
            st[i] += acc


@njit(nogil=True, cache=True, inline="always")
def _lanes_matmul(m, x, y, L):
    """y[:, :L] = m x[:, :L] with lanes innermost: a lockstep step below ESTEP_GEMM_MIN_N states
    (α_t from α_{t-1} with m = Aᵀ, A(e∘β) with m = A)."""
    N = m.shape[0]
    for i in range(N):
        for l in range(L):
            y[i, l] = 0.0
        for j in range(N):
            mij = m[i, j]
            for l in range(L):
                y[i, l] += mij * x[j, l]


@njit(nogil=True, cache=True)
def _lockstep_scratch(N, L, dtype_like):
    """Per-thread scratch for ``_lockstep_block`` with at most L lanes: (fbuf, dbuf)."""
    K = _xi_steps(N, L) if N >= ESTEP_GEMM_MIN_N else 1
    fbuf = np.empty(3 * N * L + 4 * N, dtype_like.dtype)
    dbuf = np.empty(N * L + 6 * L + N + 2 * N * K * L + N * N + N * N * L, np.float64)
    return fbuf, dbuf


@njit(nogil=True, cache=True)
def lockstep_run(X, offsets, startprob, transmat, emit_t, order, bstart, k0, k1, sizes, st, tr,
                 ob, gamma, out, want_stats, want_gamma):
    """Blocks ``k0:k1`` of a ``lockstep_plan`` (one chunk of it; ``sizes`` its scratch sizes)
    through ``_lockstep_block``; a block of one sequence runs ``_forward_one`` +
    ``_backward_one``.  Per-sequence log P into ``out``; with ``want_gamma`` γ into ``gamma``
    (rows of X); with ``want_stats`` the E-step sums added into ``st`` (N,) Σγ_0, ``tr`` (N, N)
    Σ α̂_t(i) u_{t+1}(j) / Z_t (times A_ij, by the caller, gives Σξ) and ``ob`` (M, N) Σγ_t per
    symbol, all float64.  Empty sequences are not in the plan: the caller sets their ``out``."""
    N = startprob.shape[0]
    transmat_t = np.ascontiguousarray(transmat.T)
    abuf = np.empty(max(1, sizes[0]), transmat.dtype)
    xbuf = np.empty(max(1, sizes[1]), np.int64)
    tail = np.empty((max(1, sizes[2]), N), transmat.dtype)
    fbuf, dbuf = _lockstep_scratch(N, ESTEP_LANES, transmat)
    tmp = fbuf[:N]
    bb = fbuf[N:2 * N]
    bu = fbuf[2 * N:3 * N]
    bv = fbuf[3 * N:4 * N]
    for k in range(k0, k1):
        seqs = order[bstart[k]:bstart[k + 1]]
        if seqs.shape[0] > 1:
            _lockstep_block(X, offsets, seqs, startprob, transmat, transmat_t, emit_t, abuf,
                            xbuf, tail, fbuf, dbuf, st, tr, ob, gamma, out, want_stats,
                            want_gamma)
            continue
        s = seqs[0]
        a, b = offsets[s], offsets[s + 1]
        rows = tail[:b - a]
        ll = _forward_one(X, a, b, startprob, transmat, emit_t, rows, tmp)
        out[s] = ll
        if ll == -np.inf:
            if want_gamma:
                gamma[a:b] = 0.0
            continue
        gl = gamma[a:b] if want_gamma else rows
        _backward_one(X, a, b, transmat, emit_t, rows, gl, bb, bu, bv, st, tr, ob, want_stats)


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
        if N <= 4:
            # one pass per state: the emission terms are gathered first (a gather would keep
            # the max loop from vectorising), then the max over the N (padded to four by
            # repeating the last: max(v, v) = v, and a max is exact in any grouping, so δ is
            # bit for bit the generic loop's) is added to them
            q1, q2, q3 = min(1, N - 1), min(2, N - 1), min(3, N - 1)
            d0, d1, d2, d3 = prev[0], prev[q1], prev[q2], prev[q3]
            for j in range(N):
                ej = log_emit[j]
                cj = cur[j]
                for l in range(W):
                    cj[l] = ej[sym[l]]
                a0, a1 = log_transmat[0, j], log_transmat[q1, j]
                a2, a3 = log_transmat[q2, j], log_transmat[q3, j]
                for l in range(W):
                    cj[l] = max(max(d0[l] + a0, d1[l] + a1), max(d2[l] + a2, d3[l] + a3)) + cj[l]
            continue
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


@njit(nogil=True, cache=True)
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
        for c in range(C):
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
    for c in range(bounds.shape[0] - 1):
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
    """Threads a batch's pieces run on now (``fasthw6._parallel``): numba's thread count, so
    ``numba.set_num_threads`` and ``fasthw6.single_threaded`` set it."""
    return numba.get_num_threads()
