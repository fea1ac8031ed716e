"""Viterbi decoding in float64 log space: lockstep lanes up to ``VIT_WIDE_MAX_N`` states
(``VIT_LANES`` of them below ``VIT_LANES_MAX_N``, ``VIT_WIDE_LANES`` from there), one sequence at
a time above, paths identical to hmmlearn's (ties broken as it does).

Two kernels from one factory (``_make_viterbi``), the emission mode a compile-time constant:
``viterbi`` reads each step's log-emissions from a table indexed by symbol (the categorical
model's small one, or the framewise engine's n x N table, frame t being symbol t);
``viterbi_diag`` computes them from the data under diagonal Gaussians as each step uses them
(``score._diag_step``, the bits of ``emissions.diag_frames``), so no n x N table is written and
read back: the same paths and log-probabilities as ``viterbi`` on that table."""
from __future__ import annotations

import numpy as np
from numba import njit

from ..._jit import njit_variant
from ._common import (VIT_BLOCK_BYTES, VIT_LANES, VIT_LANES_MAX_N, VIT_WIDE_LANES, VIT_WIDE_MAX_N,
                      _chunks)
from .score import _diag_logrow, _diag_step, _first_bad_symbol


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


# ------------------------------------------------------------------ the two emission modes
# Chosen by the factory, so each kernel compiles only its own.  ``ops``: what the lane loops
# read (the table flattened, or the diagonal-Gaussian terms); ``prep`` readies step t's
# emissions, ``at`` gives lane l's under state j; ``row_of`` gives one frame's log-emission
# row.
@njit(nogil=True, cache=True, inline="always")
def _table_ops(emit):
    """The table flattened: a view, no copy of a frames table (a transposed copy of 10^6
    rows cost more than the whole decode)."""
    return emit.reshape(-1)


@njit(nogil=True, cache=True, inline="always")
def _diag_ops(emit):
    return emit


@njit(nogil=True, cache=True, inline="always")
def _table_bad(X, offsets, idx, M):
    """A position in the sequences ``idx`` whose symbol lies outside [0, M), or -1 (always
    with M < 0: the framewise callers' symbols are 0..n-1 by construction).  Each block is
    checked as its symbols are first read, so no pass over X of its own (as the scoring
    kernels)."""
    return _first_bad_symbol(X, offsets, idx, M) if M >= 0 else np.int64(-1)


@njit(nogil=True, cache=True, inline="always")
def _diag_bad(X, offsets, idx, M):
    """Frame q is data row q: no symbol to check."""
    return np.int64(-1)


@njit(nogil=True, cache=True, inline="always")
def _table_dims(emit):
    """Features per frame the lane loops compute emissions from (none: they read a table)."""
    return 0


@njit(nogil=True, cache=True, inline="always")
def _diag_dims(emit):
    return emit[0].shape[1]


@njit(nogil=True, cache=True, inline="always")
def _table_prep(ops, X, pos, t, sym, E, N, W, y):
    """sym[l]: the offset of lane l's symbol's row in the flattened table."""
    for l in range(W):
        sym[l] = X[pos[l] + t] * N


@njit(nogil=True, cache=True, inline="always")
def _diag_prep(ops, X, pos, t, sym, E, N, W, y):
    """E[j*W + l]: lane l's log-density under state j (``score._diag_step``)."""
    _diag_step(ops, pos, t, E, N, W, y)


@njit(nogil=True, cache=True, inline="always")
def _table_at(ops, E, sym, j, W, l):
    """Lane l's emission under state j: its symbol's row of the flattened table, entry j."""
    return ops[sym[l] + j]


@njit(nogil=True, cache=True, inline="always")
def _diag_at(ops, E, sym, j, W, l):
    return E[j * W + l]


@njit(nogil=True, cache=True, inline="always")
def _table_row(emit, p, e):
    return emit[p]


def _make_viterbi(mode):
    """The Viterbi kernels of one emission mode ("table" or "diag"; see the module
    docstring), renamed by it (``njit_variant``) so the cache keeps them apart."""
    diag = mode == "diag"
    ops_of = _diag_ops if diag else _table_ops
    dims = _diag_dims if diag else _table_dims
    prep = _diag_prep if diag else _table_prep
    at = _diag_at if diag else _table_at
    row_of = _diag_logrow if diag else _table_row
    bad_in = _diag_bad if diag else _table_bad

    @njit_variant(mode, nogil=True)
    def tail(X, a, b, t0, log_startprob, log_transmat, emit, delta, best, arg, B, e, states):
        """Viterbi over X[a:b] from step ``t0`` on (``delta`` holds δ of step t0-1, unless t0
        is 0), backpointers of steps t0.. in ``B[t]``; ``e``: scratch for an emission row.
        Writes the path's states from step max(t0-1, 0) on and returns (log prob, state at
        step max(t0-1, 0))."""
        N = delta.shape[0]
        if t0 == 0:
            em = row_of(emit, X[a], e)
            for j in range(N):
                delta[j] = log_startprob[j] + em[j]
            t0 = 1
        for t in range(t0, b - a):
            _viterbi_step_one(delta, best, arg, log_transmat, row_of(emit, X[a + t], e), B[t])
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

    @njit_variant(mode, nogil=True)
    def lanes(X, offsets, order, s0, L, log_startprob, log_transmat, emit, ops, D, P, sym,
              pos, kk, nk, bb, g, B, vec, bvec, avec, E, y, e, states, out):
        """Viterbi of the sequences ``order[s0:s0+L]`` advanced in lockstep, lanes innermost.

        The forward pass keeps no backpointers: it stores δ of every step in ``D`` (T, N, W),
        one column per sequence, and its max over i is a run of plain maxima over W contiguous
        lanes (i four at a time, j two at a time, straight into δ_t's rows), which vectorises
        even at N = 2 or 3.  The argmax is needed only along the path: the backtrack recomputes
        it at each step for the one state the path is in, from the same δ and log A values,
        hence the same floats and the same ties (the largest maximising state) as a stored
        backpointer.  Lockstep runs over the shortest length, at most D.shape[0] steps; a
        longer lane finishes alone (``tail``, backpointers in ``B``) before all lanes
        backtrack together.  Idle lanes (L < W, up to a multiple of 8) repeat the last
        sequence.  Each step's emissions: ``prep``, then ``at`` (the mode's).
        """
        N = log_startprob.shape[0]
        W = min(D.shape[2], (L + 7) // 8 * 8)  # lanes computed: a small last block costs less
        Tl = D.shape[0]
        for l in range(L):
            s = order[s0 + l]
            Tl = min(Tl, offsets[s + 1] - offsets[s])
        for l in range(W):
            pos[l] = offsets[order[s0 + min(l, L - 1)]]
        # δ_t(j) is row t*N + j of ``R`` (a view of D made once): a view per step or per state
        # costs two atomic reference counts each, a third of the whole decode at N=3
        R = D.reshape((D.shape[0] * N, D.shape[2]))
        for t in range(Tl):
            prep(ops, X, pos, t, sym, E, N, W, y)
            c = t * N
            if t == 0:
                for j in range(N):
                    pj = log_startprob[j]
                    for l in range(W):
                        R[j, l] = pj + at(ops, E, sym, j, W, l)
                continue
            p = c - N
            if N <= 4:
                # one pass per state: the emission terms are gathered first (a gather would
                # keep the max loop from vectorising), then the max over the N (padded to four
                # by repeating the last: max(v, v) = v, and a max is exact in any grouping, so
                # δ is bit for bit the generic loop's) is added to them
                q1, q2, q3 = min(1, N - 1), min(2, N - 1), min(3, N - 1)
                p1, p2, p3 = p + q1, p + q2, p + q3
                for j in range(N):
                    cj = c + j
                    for l in range(W):
                        R[cj, l] = at(ops, E, sym, j, W, l)
                    a0, a1 = log_transmat[0, j], log_transmat[q1, j]
                    a2, a3 = log_transmat[q2, j], log_transmat[q3, j]
                    for l in range(W):
                        R[cj, l] = max(max(R[p, l] + a0, R[p1, l] + a1),
                                       max(R[p2, l] + a2, R[p3, l] + a3)) + R[cj, l]
                continue
            # two states at a time: each δ_{t-1} row loaded serves both (half the loads per
            # max), four previous states per pass, 14 vector registers (AVX2 has 16); a max is
            # exact in any grouping, so δ is the same floats as one state at a time
            j = 0
            while j + 2 <= N:
                r0 = c + j
                r1 = r0 + 1
                for l in range(W):
                    R[r0, l] = -np.inf
                    R[r1, l] = -np.inf
                i = 0
                while i + 4 <= N:
                    a00, a01 = log_transmat[i, j], log_transmat[i + 1, j]
                    a02, a03 = log_transmat[i + 2, j], log_transmat[i + 3, j]
                    a10, a11 = log_transmat[i, j + 1], log_transmat[i + 1, j + 1]
                    a12, a13 = log_transmat[i + 2, j + 1], log_transmat[i + 3, j + 1]
                    q = p + i
                    for l in range(W):
                        x0, x1, x2, x3 = R[q, l], R[q + 1, l], R[q + 2, l], R[q + 3, l]
                        R[r0, l] = max(max(max(x0 + a00, x1 + a01), max(x2 + a02, x3 + a03)),
                                       R[r0, l])
                        R[r1, l] = max(max(max(x0 + a10, x1 + a11), max(x2 + a12, x3 + a13)),
                                       R[r1, l])
                    i += 4
                while i < N:
                    a0, a1 = log_transmat[i, j], log_transmat[i, j + 1]
                    q = p + i
                    for l in range(W):
                        R[r0, l] = max(R[q, l] + a0, R[r0, l])
                        R[r1, l] = max(R[q, l] + a1, R[r1, l])
                    i += 1
                for l in range(W):
                    R[r0, l] += at(ops, E, sym, j, W, l)
                    R[r1, l] += at(ops, E, sym, j + 1, W, l)
                j += 2
            if j < N:  # odd N: the last state alone
                r0 = c + j
                for l in range(W):
                    R[r0, l] = -np.inf
                for i in range(N):
                    a0 = log_transmat[i, j]
                    q = p + i
                    for l in range(W):
                        R[r0, l] = max(R[q, l] + a0, R[r0, l])
                for l in range(W):
                    R[r0, l] += at(ops, E, sym, j, W, l)
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
                    vec[j] = R[(Tl - 1) * N + j, l]
            out[s], kk[l] = tail(X, a, b, Tl, log_startprob, log_transmat, emit, vec, bvec,
                                 avec, B, e, states)
        # The path before step Tl-1 goes to P (T, W) a step at a time (contiguous), then to
        # ``states`` a lane at a time: storing straight into ``states`` scatters W writes per
        # step across W sequences.  Steps Tl-1.. were written by ``tail``.
        for t in range(Tl - 1, 0, -1):
            p = (t - 1) * N
            for l in range(L):
                bb[l] = -np.inf
            for i in range(N):
                if N <= 4:  # selects among the few entries of row i beat a gather
                    c0, c1 = log_transmat[i, 0], log_transmat[i, min(1, N - 1)]
                    c2, c3 = log_transmat[i, min(2, N - 1)], log_transmat[i, min(3, N - 1)]
                    for l in range(L):
                        kl = kk[l]
                        g[l] = c0 if kl == 0 else c1 if kl == 1 else c2 if kl == 2 else c3
                else:
                    for l in range(L):
                        g[l] = log_transmat[i, kk[l]]
                q = p + i
                for l in range(L):
                    v = R[q, l] + g[l]
                    ge = v >= bb[l]
                    bb[l] = v if ge else bb[l]
                    nk[l] = i if ge else nk[l]
            for l in range(L):
                k = nk[l]
                kk[l] = k
                P[t - 1, l] = k
        for l in range(L):
            a = pos[l]
            for t in range(Tl - 1):
                states[a + t] = P[t, l]

    @njit_variant(mode, nogil=True)
    def viterbi(X, offsets, log_startprob, log_transmat, emit, bp, states, out, check_m):
        N = log_startprob.shape[0]
        S = offsets.shape[0] - 1
        C = bp.shape[0]
        e = np.empty(N, np.float64)
        if N <= VIT_WIDE_MAX_N:
            W = VIT_LANES if N < VIT_LANES_MAX_N else VIT_WIDE_LANES
            order = np.argsort(offsets[1:] - offsets[:-1], kind="mergesort")
            ops = ops_of(emit)
            n_blocks = (S + W - 1) // W
            Tb = min(bp.shape[1], max(1, VIT_BLOCK_BYTES // (N * W * 8)))
            for c in range(C):
                D = np.empty((Tb, N, W), np.float64)
                sym = np.empty(W, np.int64)
                pos = np.empty(W, np.int64)
                kk = np.empty(W, np.int64)
                nk = np.zeros(W, np.int64)
                bb = np.empty(W, np.float64)
                g = np.empty(W, np.float64)
                P = np.empty((Tb, W), np.int8)  # N <= VIT_WIDE_MAX_N = 127
                vec = np.empty(N, np.float64)
                bvec = np.empty(N, np.float64)
                avec = np.empty(N, bp.dtype)
                E = np.empty(N * W if dims(emit) > 0 else 1, np.float64)
                y = np.empty(max(1, dims(emit) * W), np.float64)
                for blk in range(c, n_blocks, C):
                    s0 = blk * W
                    w = min(W, S - s0)
                    p = bad_in(X, offsets, order[s0:s0 + w], check_m)
                    if p >= 0:
                        return p
                    lanes(X, offsets, order, s0, w, log_startprob, log_transmat, emit, ops, D,
                          P, sym, pos, kk, nk, bb, g, bp[c], vec, bvec, avec, E, y, e, states,
                          out)
            return np.int64(-1)
        bounds = _chunks(offsets, C)
        one = np.empty(1, np.int64)
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
                one[0] = s
                p = bad_in(X, offsets, one, check_m)
                if p >= 0:
                    return p
                out[s] = tail(X, a, b, 0, log_startprob, log_transmat, emit, delta, best, arg,
                              B, e, states)[0]
        return np.int64(-1)

    return dict(viterbi=viterbi, lanes=lanes, tail=tail)


_TABLE = _make_viterbi("table")
_DIAG = _make_viterbi("diag")

viterbi = _TABLE["viterbi"]
viterbi.__doc__ = """Most likely state path of every sequence (``states``, int64, len(X)) and
    its log probability (``out``, float64 per sequence), in log space (float64), from the
    log-emission rows ``emit`` (M, N) of the symbols X.  Returns -1, or the position of a
    symbol outside [0, ``check_m``) (``check_m`` = M; -1 checks nothing, for callers whose
    symbols are in range by construction): each block's symbols are checked as they are first
    read, and the call stops at the first block holding one (its paths and those after it
    unwritten).

    ``bp`` is a small-integer scratch array (int8/int16/int32 for N up to 127/32767/...) of
    shape (n_chunks, maxlen, N) allocated by the caller; chunk ``c`` uses ``bp[c]``.
    Up to VIT_WIDE_MAX_N states the sequences, sorted by length, go VIT_LANES at a time in
    lockstep (``lanes``; VIT_WIDE_LANES from VIT_LANES_MAX_N states on), the blocks dealt
    round-robin to the chunks; above, one at a time.  Ties: the backpointer is the largest
    maximising state, the final state the smallest (as hmmlearn).  δ is never renormalised:
    its floats are hmmlearn's bit for bit, which is what makes the paths identical (a shift by
    max δ would round differently and could flip near-ties; float64 keeps ~1e-13 relative
    precision even at |δ| ~ 1e7)."""

viterbi_diag = _DIAG["viterbi"]
viterbi_diag.__doc__ = """As ``viterbi`` with X = 0..n-1 and the frames' log-emissions
    computed as each step uses them, from the data under diagonal Gaussians: ``emit`` = (data
    (n, D), center (D,), lin (N, D), quad (N, D), const (N,)), float64 C order (see
    ``score.forward_loglik_diag``).  The same paths and log-probabilities as ``viterbi`` on the
    table of those log-likelihoods (``emissions.diag_frames``)."""
