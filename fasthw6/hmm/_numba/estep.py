"""Posteriors and the E-step: ``lockstep_plan`` cuts a batch into lockstep blocks, and
``lockstep_run`` runs a chunk of them (forward, backward, γ, Σξ as outer products, emission
counts) without ever building a T×N×N array.

Over 500 lines: ``_lockstep_block`` (about 210) is one pass over a block's steps whose phases
share their scratch and indices; split, they would pass two dozen arguments each."""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._common import (
    ESTEP_GEMM_MAX_MADDS, ESTEP_GEMM_MIN_N, ESTEP_LANES, ESTEP_SMALL_MAX_N, ESTEP_XI_COLS,
    ESTEP_XS_STEPS, _far_rows, _fetch_ahead, _fetch_back, _lazy_scale_bits, _ll_push,
    _ll_value, _prefetch_at)
from .estep_small import _estep_backward_small, _estep_forward_small, _forward_rare


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
    want_obs = want_stats and obs_acc.shape[0] > 0  # (none: γ goes to ``gamma`` rows only)
    if want_obs:
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
        if want_obs:
            ob = obs_acc[X[a + t]]
            for i in range(N):
                ob[i] += g[i]
    if want_stats:
        g = gamma[0]
        for i in range(N):
            start_acc[i] += g[i]


@njit(nogil=True, cache=True)
def lockstep_plan(offsets, N, n_chunks, block_elems, max_lanes):
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
        lanes = min(max_lanes, max(1, block_elems // (T0 * N)))
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
            # the symbols one tile ahead: 64 lanes' streams outrun the hardware prefetcher
            # (N=3 fit, one thread, 2000 x 500: 12.3-14.9 -> 10.2-12.8 ms, six processes each)
            _prefetch_at(X, a + t1 + ESTEP_XS_STEPS)
            _prefetch_at(X, a + t1 + 2 * ESTEP_XS_STEPS - 1)
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
    far = _far_rows(emit_t)
    for t in range(1 if small else T0):  # compiled steps: after step 0, the sweep does the rest
        xt = xs[t]
        cur = alpha[t]
        if far:
            _fetch_ahead(emit_t, xs, t)
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
    XR = 0 if gemm else R  # the per-lane Σξ accumulators, only without a GEMM
    xacc = dbuf[o:o + N * N * XR].reshape((N, N, XR))
    o += N * N * XR
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
    want_obs = want_stats and ob.shape[0] > 0  # (none: γ goes to ``gamma`` rows only)

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
            if want_obs:
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
    far = _far_rows(emit_t)
    for t in range(first, -1, -1):
        at = alpha[t]
        xt = xs[t + 1]
        if far:
            _fetch_back(emit_t, xs, t, gamma, offsets, seqs, want_gamma)
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
        if want_obs:
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
    gemm = N >= ESTEP_GEMM_MIN_N
    # a block of l <= L lanes gathers K(l)·l <= max(L, cols) Σξ columns (as the Cython mirror)
    XC = max(L, min(ESTEP_XI_COLS, ESTEP_GEMM_MAX_MADDS // (N * N))) if gemm else L
    XR = 0 if gemm else L  # xacc (N, N, L) only without a GEMM: scratch sized to the work
    fbuf = np.empty(3 * N * L + 4 * N, dtype_like.dtype)
    dbuf = np.empty(N * L + 6 * L + N + 2 * N * XC + N * N + N * N * XR, np.float64)
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
    # the block's symbols, unsigned: an int64 index costs every gather of an emission a
    # negative-index fix-up (N=16 one fit iteration, one thread: 88.6-94.6 -> 84.4-88.5 ms)
    xbuf = np.empty(max(1, sizes[1]), np.uint64)
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
