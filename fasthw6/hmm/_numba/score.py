"""Scoring: per-sequence log-likelihoods (``forward_loglik``), the forward pass of blocks of
sequences in lockstep, with exact power-of-two scaling and the symbols range-checked as read.

``forward_loglik_frames`` runs the same kernels on a table of emission *log*-likelihoods (the
framewise engine, ``frames.py``; the symbol of frame t is t): each row read is turned into the
frame's likelihoods scaled by their maximum as it is used (``_scale_lanes`` on the lockstep
tiles of N <= 8, in the GEMM lanes' own loop above, each lane's rows fetched ahead, and
``_log_row`` row by row for a lane finishing alone), and the maxima are added to the
sequence's log-likelihood, so no scaled copy of the table is written and read back.
``forward_loglik_diag`` goes one step further for diagonal Gaussians: each step computes its
lanes' log-likelihoods from the data (``_diag_step``) and scales them in place, so no table
exists at all (``forward_loglik_diag_lanes`` likewise in the unrolled small-N lanes).  The four
kernels come from one factory (``_make_forward``), the emission mode a compile-time constant.
"""
from __future__ import annotations

import functools

import numpy as np
from numba import njit

from ..._jit import njit_variant
from ._common import (
    DIAG_SMALL_MAX_N, FRAMES_GEMM_LANES, GEMM_LANES, GEMM_RESCALE_STEPS, LANES, SMALL_MAX_N,
    TILE, TILE_BYTES, _exp_le0, _loglik_pow2, _pow2_scale, _prefetch_row, _span_range)
from .emissions import _diag_lanes


# Framewise GEMM lanes fetch each lane's row this many steps ahead (``_prefetch_row``): one
# lane's rows follow one another, but 32 lanes are more streams than the hardware prefetcher
# follows.  numba, one thread, score_frames, 2000 ragged sequences (~1.1 M frames), no hint
# -> 1, 2, 4 steps ahead: N=16 100-107 -> 101, 72, 78 ms; N=64 398-422 -> 381, 357, 360.
# (Viterbi's lanes read the frames table as well, but fetching ahead there measured no faster:
# N=16 110-120 ms either way.)
PREFETCH_STEPS = 2
_KEY_SIGN = np.int64(0x7FFFFFFFFFFFFFFF)


@njit(nogil=True, cache=True, inline="always")
def _order_key(v):
    """An int64 that orders as the float64 ``v`` does (-0 just below +0; NaN outside
    [-inf, inf]): its bits, the magnitude bits flipped for negative numbers.  A maximum over
    these keys is an integer reduction, which vectorises; a float maximum does not (its
    NaN semantics hold LLVM to one compare after another)."""
    i = np.float64(v).view(np.int64)
    return i ^ ((i >> 63) & _KEY_SIGN)


@njit(nogil=True, cache=True, inline="always")
def _key_value(key, n, N):
    """The float64 of the maximum key ``key`` of a row of N entries of which ``n`` are below
    +inf (as ``_row_max``: NaN when one is NaN or +inf, 0 when every entry is -inf)."""
    if n != N:
        return np.nan
    m = np.int64(key ^ ((key >> 63) & _KEY_SIGN)).view(np.float64)
    return m if m > -np.inf else 0.0


@njit(nogil=True, cache=True, inline="always")
def _row_max(row):
    """max_j row[j] (0 when every entry is -inf), or NaN when an entry is NaN or +inf
    (``_row_max_at`` of the row)."""
    return _row_max_at(row.reshape((1, row.shape[0])), 0)


@njit(nogil=True, cache=True, inline="always")
def _row_max_at(tab, p):
    """max_j tab[p, j] (0 when every entry is -inf), or NaN when an entry is NaN or +inf: the
    maximum of the entries' order keys (``_order_key``) and a count of the entries below +inf,
    both vector loops (N=64: 43 -> 26 ns a row, against eight running float maxima).  Indexed
    in place: a row view would cost numba two atomic reference counts."""
    N = tab.shape[1]
    km = np.int64(-9223372036854775807 - 1)
    n = 0
    for j in range(N):
        v = tab[p, j]
        key = _order_key(v)
        km = key if key > km else km
        n += v < np.inf
    return _key_value(km, n, N)


@njit(nogil=True, cache=True)
def _scale_row(row, e):
    """e = exp(row - m), m = ``_row_max(row)``; returns m.  Not inlined: one compiled copy
    serves every caller (inlined into each, it doubled the kernels' first-call compile)."""
    m = _row_max(row)
    for j in range(row.shape[0]):
        e[j] = _exp_le0(row[j] - m)
    return m


@njit(nogil=True, cache=True, inline="always")
def _table_row(emit_t, p, e):
    """(row, shift) of a table of emission likelihoods: symbol p's row, shift 0."""
    return emit_t[p], 0.0


@njit(nogil=True, cache=True, inline="always")
def _log_row(emit_t, p, e):
    """(row, shift) of a table of log-likelihoods: exp(row - m) written into ``e``, shift m =
    ``_row_max`` (``_scale_row``); a row holding NaN or +inf gives shift NaN, which the
    caller's score carries."""
    return e, _scale_row(emit_t[p], e)


@njit(nogil=True, cache=True)
def _no_bad_symbol(X, offsets, idx, M):
    """The framewise kernels' symbols are 0..n-1, made by the API: nothing to check."""
    return -1


@njit(nogil=True, cache=True, inline="always")
def _keep_tile(em, nt, N, W, mx, sh):
    """A tile of emission likelihoods is used as gathered."""
    return


@njit(nogil=True, cache=True)
def _diag_step(g, pos, t, em, N, W, y):
    """Step t of the W lanes' diagonal-Gaussian log-likelihoods computed into ``em`` (N*W,),
    lanes innermost: em[j*W + l] = const[j] + Σ_d y_d (lin[j, d] + y_d quad[j, d]) with
    y = data[pos[l] + t] - center (``g``, see ``_diag_row``): the arithmetic of
    ``emissions.diag_frames`` operation for operation, so the values are its bits, and every
    loop a vector loop over the lanes.  ``y``: scratch of D*W values.  Frame q is data row q
    (the diag kernels' frames are 0..n-1), so no index array is read: one stream less per lane
    (GaussianHMM diag N=16 score, 2000 x 500: D=16 123-126 -> 114-117 ms, D=4 83-84 -> 79-81)."""
    data, c, lin, quad, const = g
    D = data.shape[1]
    if D >= 8:  # lane by lane: each reads its frame's contiguous row
        for l in range(W):
            row = data[pos[l] + t]
            for d in range(D):
                y[d * W + l] = row[d] - c[d]
    else:
        for d in range(D):
            cd = c[d]
            for l in range(W):
                y[d * W + l] = data[pos[l] + t, d] - cd
    for j in range(N):
        cj = const[j]
        r = em[j * W:(j + 1) * W]
        for l in range(W):
            r[l] = cj
        _diag_lanes(r, y, lin, quad, j, W)


@njit(nogil=True, cache=True)
def _diag_logrow(g, p, e):
    """Frame p's log-likelihoods under the diagonal-Gaussian emissions ``g`` = (data (n, D),
    center (D,), lin (N, D), quad (N, D), const (N,)), all float64, into ``e`` (returned):
    the operations of ``_diag_step``, so its bits."""
    data, c, lin, quad, const = g
    D = data.shape[1]
    for j in range(e.shape[0]):
        r = const[j]
        for d in range(D):
            v = data[p, d] - c[d]
            r += v * (lin[j, d] + v * quad[j, d])
        e[j] = r
    return e


@njit(nogil=True, cache=True)
def _diag_row(g, p, e):
    """(row, shift) of frame p of the diagonal-Gaussian emissions ``g``: its log-likelihoods
    (``_diag_logrow``) scaled by their maximum into ``e`` (``_scale_row``)."""
    return e, _scale_row(_diag_logrow(g, p, e), e)


@njit(nogil=True, cache=True, inline="always")
def _table_rows(emit_t):
    """Rows of an emission table (the range the symbols are checked against)."""
    return emit_t.shape[0]


@njit(nogil=True, cache=True, inline="always")
def _data_rows(g):
    """Frames of diagonal-Gaussian emissions (the symbols are 0..n-1, made by the API)."""
    return g[0].shape[0]


@njit(nogil=True, cache=True)
def _scale_tile(em, nt, N, W, mx, sh):
    """Steps 0..nt-1 of a tile of log-likelihoods scaled in place (``_scale_lanes``)."""
    for tt in range(nt):
        _scale_lanes(em[tt], N, W, mx, sh)


@njit(nogil=True, cache=True, inline="always")
def _scale_lanes(e, N, W, mx, sh):
    """Framewise, one step of W lanes: the log-likelihoods ``e[j*W + l]`` replaced by
    exp(e - m_l), m_l the lane's maximum as ``_row_max`` gives it (0 if all -inf, NaN if one
    is NaN or +inf), added to ``sh[l]``.  Lanes innermost: every loop is a vector loop, where
    a row at a time (``_log_row``) would run N = 3 scalar exponentials.  Inlined into
    ``_scale_tile``, which is not: one compiled copy serves the eight lane kernels."""
    for l in range(W):
        mx[l] = e[l]
    for j in range(1, N):
        for l in range(W):
            v = e[j * W + l]
            mx[l] = v if v > mx[l] else mx[l]
    for j in range(N):
        for l in range(W):
            mx[l] = mx[l] if e[j * W + l] < np.inf else np.nan
    for l in range(W):
        m = mx[l]
        m = 0.0 if m == -np.inf else m
        mx[l] = m
        sh[l] += m
    for j in range(N):
        for l in range(W):
            e[j * W + l] = _exp_le0(e[j * W + l] - mx[l])


@functools.lru_cache(maxsize=None)
def _make_lane_step(N, W):
    """One lane's forward step for N states and W lanes, written out: α read whole into named
    locals before the new α is written over it, its sum (in order) scaled by a power of two
    counted into ``k``, and α_j = (Σ_i α_i A_ij) (e_j r), every sum in index order (the bits of
    ``finish_one`` and the Cython kernel).  Locals that the compiler holds in registers let
    the step write α in place, where loops over i and j could not: they wrote into the
    emission tile and copied back (N=3 kernel: 2.5-2.7 -> 2.1-2.3 ms per 10^6 symbols).
    Written as source (a loop cannot name locals) and compiled straight-line, so the first
    call compiles about as long as the loops did (N=3 score, empty cache: 8.8 -> 9.4 s).
    Made once per N, for both emission modes' kernels."""
    a = [f"a{i}" for i in range(N)]
    src = [f"def lane_step_{N}(A, v, e, l, k):"]
    src += [f"    {a[i]} = v[{i * W} + l]" for i in range(N)]
    src += ["    s = np.float64(a0)"] + [f"    s += {a[i]}" for i in range(1, N)]
    src += ["    r, kk = _pow2_scale(s)", "    k[l] += kk"]
    for j in range(N):
        col = " + ".join(f"A[{i * N + j}] * {a[i]}" for i in range(N))
        src.append(f"    n{j} = ({col}) * (e[{j * W} + l] * r)")
    src += [f"    v[{j * W} + l] = n{j}" for j in range(N)]
    # compiled as this module's code (its file, its name): the cache keys a kernel's callees by
    # module, name and bytecode (``fasthw6._jit._stable_closure_keys``)
    space = {"np": np, "_pow2_scale": _pow2_scale, "__name__": __name__}
    exec(compile("\n".join(src), __file__, "exec"), space)
    return njit(nogil=True, inline="always")(space[f"lane_step_{N}"])


@njit(nogil=True, cache=True, inline="always")
def _gather_rows(X, pos, t0, nt, emit_t, em, N, W, y):
    """Steps t0..t0+nt-1 of the W lanes' emission rows into the tile ``em`` (TILE, N*W), lanes
    innermost, gathered from the table by each lane's symbol."""
    for tt in range(nt):
        for l in range(W):
            # unsigned: no negative-index fix-up per read (symbols are checked first)
            x = np.uint64(X[pos[l] + t0 + tt])
            for j in range(N):
                em[tt, j * W + l] = emit_t[x, j]


@njit(nogil=True, cache=True, inline="always")
def _gather_diag(X, pos, t0, nt, emit_t, em, N, W, y):
    """``_gather_rows`` for diagonal Gaussians: each step's log-likelihoods computed from the
    data (``_diag_step``), the bits of the table ``emissions.diag_frames`` would hold."""
    for tt in range(nt):
        _diag_step(emit_t, pos, t0 + tt, em[tt], N, W, y)


@njit(nogil=True, cache=True, inline="always")
def _no_scratch(emit_t, W):
    return np.empty(0)


@njit(nogil=True, cache=True, inline="always")
def _diag_scratch(emit_t, W):
    return np.empty(emit_t[0].shape[1] * W)


def _make_lanes_small(N, mode):
    """The lockstep kernel for a fixed small N, over LANES lanes.

    With N and the lane count compile-time constants, the loops over states unroll and every
    array access sits at a constant offset from one of a few base pointers, so LLVM vectorises
    the loop over lanes whole (α sums, power-of-two scale, the N x N product, the emission
    factor), with a handful of runtime alias checks.  Two things keep those checks few enough
    for it to try: flat arrays (row j of α is ``alpha[j*W:(j+1)*W]``) and no second α buffer:
    a lane's step (``_make_lane_step``) reads its α into locals and writes the new α in place.
    The gather of emissions does not vectorise; it runs apart, TILE steps at a time.
    Operands: ``transmat`` flat (N*N,), ``em`` (TILE, N*W), ``alpha`` (N*W,), ``k`` (W,)
    counts of factors 2 so far, ``sh`` (W,) sums of emission shifts.  Framewise (``mode``
    "frames", a compile-time constant), each gathered step is scaled in place, lanes innermost
    (``_scale_lanes``); "diag" computes each step's log-likelihoods from the data instead of
    gathering them (``_gather_diag``), then scales them likewise: the same bits as "frames" on
    the table of those log-likelihoods.
    """
    W = LANES
    TT = max(2, min(TILE, TILE_BYTES // (8 * N * W)))
    logs = mode in ("frames", "diag")
    # chosen here: the others are not compiled
    scale_tile = _scale_tile if logs else _keep_tile
    gather = _gather_diag if mode == "diag" else _gather_rows
    scratch = _diag_scratch if mode == "diag" else _no_scratch
    step = _make_lane_step(N, W)

    @njit_variant(f"n{N}" + ("" if mode == "rows" else "_" + mode), nogil=True)
    def lanes(X, pos, T, startprob, transmat, emit_t, em, alpha, k, sh):
        mx = np.empty(W)
        y = scratch(emit_t, W)
        for t0 in range(0, T, TT):
            nt = min(TT, T - t0)
            gather(X, pos, t0, nt, emit_t, em, N, W, y)
            scale_tile(em, nt, N, W, mx, sh)
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
                    step(transmat, alpha, e, l, k)

    return lanes


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


@njit(nogil=True, cache=True, inline="always")
def _rescale_every(logs, alpha):
    """(steps between the GEMM lanes' rescalings, the α sum below which a lane is zeroed at
    one): GEMM_RESCALE_STEPS and the smallest normal double for symbols in float64, else every
    step and nothing zeroed (see ``_sizes``)."""
    if not logs and alpha.itemsize == 8:
        return GEMM_RESCALE_STEPS, 2.2250738585072014e-308
    return 1, 0.0


def _make_forward(mode):
    """The scoring kernels over a table of emission rows (``mode`` "rows": ``forward_loglik``),
    of log-likelihood frames ("frames": ``forward_loglik_frames``) or of frames of data under
    diagonal Gaussians, for more than SMALL_MAX_N states by GEMM ("diag":
    ``forward_loglik_diag``, ``emit_t`` the tuple of ``_diag_row``) or for at most
    DIAG_SMALL_MAX_N in the unrolled small-N lanes ("diag_lanes": ``forward_loglik_diag_lanes``;
    two kernels, so that neither compiles the other's steps: one took the first call of an
    N=16 score from 8.0 to 19.5 s).  ``mode`` is a compile-time constant: each kernel compiles
    only its own branch (a runtime flag cost the categorical kernel's first call 7.3 -> 11.4 s
    of compiling code it never runs).  Returns the kernels by name (every one renamed by its
    variant tag, so the cache keeps them apart)."""
    tag = mode
    diag = mode in ("diag", "diag_lanes")
    logs = mode == "frames"
    # chosen here: the others are not compiled
    row_of = _diag_row if diag else {"rows": _table_row, "frames": _log_row}[mode]
    bad_symbol = _first_bad_symbol if mode == "rows" else _no_bad_symbol
    n_rows = _data_rows if diag else _table_rows
    small_max = {"diag": 0, "diag_lanes": DIAG_SMALL_MAX_N}.get(mode, SMALL_MAX_N)
    small = [_make_lanes_small(n, "diag" if diag else mode) for n in range(1, small_max + 1)]
    gemm_lanes = GEMM_LANES if mode == "rows" else FRAMES_GEMM_LANES  # see _sizes

    if mode == "diag":
        @njit_variant(tag, nogil=True)
        def lanes_small(X, pos, T, startprob, a_flat, emit_t, em, alpha, k, sh):
            """Not reached: every N steps by GEMM here."""
            return
    else:
        # "diag_lanes" has DIAG_SMALL_MAX_N kernels: its last stands in for the N above, which
        # its ``forward`` refuses before any block runs
        pad = [small[-1]] * (SMALL_MAX_N - len(small))
        lanes_1, lanes_2, lanes_3, lanes_4, lanes_5, lanes_6, lanes_7, lanes_8 = small + pad

        @njit_variant(tag, nogil=True)
        def lanes_small(X, pos, T, startprob, a_flat, emit_t, em, alpha, k, sh):
            """The lane kernel compiled for this N (<= small_max): numba cannot index a
            tuple of functions at run time, so each has its own call."""
            N = startprob.shape[0]
            if N == 1:
                lanes_1(X, pos, T, startprob, a_flat, emit_t, em, alpha, k, sh)
            elif N == 2:
                lanes_2(X, pos, T, startprob, a_flat, emit_t, em, alpha, k, sh)
            elif N == 3:
                lanes_3(X, pos, T, startprob, a_flat, emit_t, em, alpha, k, sh)
            elif N == 4:
                lanes_4(X, pos, T, startprob, a_flat, emit_t, em, alpha, k, sh)
            elif N == 5:
                lanes_5(X, pos, T, startprob, a_flat, emit_t, em, alpha, k, sh)
            elif N == 6:
                lanes_6(X, pos, T, startprob, a_flat, emit_t, em, alpha, k, sh)
            elif N == 7:
                lanes_7(X, pos, T, startprob, a_flat, emit_t, em, alpha, k, sh)
            else:
                lanes_8(X, pos, T, startprob, a_flat, emit_t, em, alpha, k, sh)

    @njit_variant(tag, nogil=True)
    def finish_one(X, a, b, transmat_t, emit_t, cur, nxt, k, sh, e):
        """Carry one sequence alone over X[a:b] from α in ``cur`` (unscaled, k factors 2 and
        emission shifts summing to ``sh`` so far) and return log P.  For N <= SMALL_MAX_N (8)
        the arithmetic is the unrolled lanes' own, operation for operation, so a score does not
        depend on which sequences shared its block.  Above that the lanes step by a BLAS GEMM
        (``lanes_gemm``), whose summation order differs from this loop's, so a score can change
        in the last bits with the block it was scored in (how many of its steps ran in
        lockstep: the block's shortest length)."""
        N = cur.shape[0]
        for t in range(a, b):
            s = np.float64(cur[0])
            for i in range(1, N):
                s += cur[i]
            r, kk = _pow2_scale(s)
            k += kk
            row, m = row_of(emit_t, X[t], e)
            sh += m
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
        return _loglik_pow2(s, k) + sh

    @njit_variant(tag, nogil=True)
    def lanes_gemm_rows(X, pos, T, startprob, transmat, emit_t, alpha, nxt, k, sh, e, em):
        """The lockstep kernel for N > SMALL_MAX_N, lane-major: α is (W, N), one row per
        lane, so a step is the BLAS GEMM α A, and each lane's emission row multiplies its
        contiguous row of the product directly (no gather).  Framewise, each lane's row of
        log-likelihoods is scaled in that loop (``_log_row``'s operations, inline) and its row
        PREFETCH_STEPS steps ahead fetched.  Symbols in float64 rescale α every
        GEMM_RESCALE_STEPS steps and at the last (``_rescale_every``), zeroing a lane whose
        sum fell below the smallest normal double.  Returns the array holding the last α."""
        N = startprob.shape[0]
        W = alpha.shape[0]
        every, tiny = _rescale_every(logs, alpha)
        for l in range(W):
            row, m = row_of(emit_t, X[pos[l]], e)
            sh[l] += m
            for j in range(N):
                alpha[l, j] = startprob[j] * row[j]
        for t in range(1, T):
            np.dot(alpha, transmat, nxt)
            if t % every != 0 and t != T - 1:  # (symbols, float64) the emissions alone
                for l in range(W):
                    row, _ = row_of(emit_t, X[pos[l] + t], e)  # (shift 0)
                    o = nxt[l]
                    for j in range(N):
                        o[j] *= row[j]
            else:
                for l in range(W):
                    s = _sum4(alpha[l])
                    r, kk = _pow2_scale(s)
                    if s < tiny:  # (never for tiny 0, nor for a NaN sum: as the Cython kernel)
                        r = 0.0
                    k[l] += kk
                    if logs:  # row_of's arithmetic (``_log_row``) inline: no call, no row view
                        # frame q is row q (X is 0..n-1 here): X is not read, one stream less
                        # per lane
                        p = pos[l] + t
                        if t + PREFETCH_STEPS < T:
                            _prefetch_row(emit_t, p + PREFETCH_STEPS)
                        m = _row_max_at(emit_t, p)
                        sh[l] += m
                        for j in range(N):
                            nxt[l, j] *= _exp_le0(emit_t[p, j] - m) * r
                    else:
                        row, m = row_of(emit_t, X[pos[l] + t], e)
                        sh[l] += m
                        o = nxt[l]
                        for j in range(N):
                            o[j] *= row[j] * r
            alpha, nxt = nxt, alpha
        return alpha

    @njit_variant(tag, nogil=True)
    def lanes_gemm_tile(X, pos, T, startprob, transmat, emit_t, alpha, nxt, k, sh, e, em):
        """``lanes_gemm_rows`` with each step's emissions computed for all W lanes at once
        into ``em`` (1, N*W), lanes innermost (``_diag_step``), and scaled there
        (``_scale_lanes``): vector loops over the lanes, where a row at a time would run
        scalar.  The factors are the rows' own bits, so the scores are those of
        ``lanes_gemm_rows`` on a table of the same log-likelihoods."""
        N = startprob.shape[0]
        W = alpha.shape[0]
        mx = np.empty(W)
        y = np.empty(emit_t[0].shape[1] * W)
        f = em[0]
        _diag_step(emit_t, pos, 0, f, N, W, y)
        _scale_tile(em, 1, N, W, mx, sh)
        for l in range(W):
            for j in range(N):
                alpha[l, j] = startprob[j] * f[j * W + l]
        for t in range(1, T):
            np.dot(alpha, transmat, nxt)
            _diag_step(emit_t, pos, t, f, N, W, y)
            _scale_tile(em, 1, N, W, mx, sh)
            for l in range(W):
                r, kk = _pow2_scale(_sum4(alpha[l]))
                k[l] += kk
                o = nxt[l]
                for j in range(N):
                    o[j] *= f[j * W + l] * r
            alpha, nxt = nxt, alpha
        return alpha

    @njit_variant(tag, nogil=True)
    def lanes_gemm_none(X, pos, T, startprob, transmat, emit_t, alpha, nxt, k, sh, e, em):
        """Not reached: every N takes the small-N lanes here."""
        return alpha

    # chosen here: the others are not compiled
    lanes_gemm = {"diag": lanes_gemm_tile, "diag_lanes": lanes_gemm_none}.get(mode,
                                                                            lanes_gemm_rows)
    gemm_tile = 1 if diag else 0  # steps of emissions lanes_gemm keeps
    lanes_only = mode == "diag_lanes"

    @njit_variant(tag, nogil=True)
    def score_block(X, offsets, idx, startprob, transmat, transmat_t, emit_t, em, alpha, nxt,
                    k, sh, e, out):
        """Score the sequences ``idx`` (1 to W of them, non-empty, shortest first) in lockstep
        over the shortest one's length; the lanes past it finish alone (``finish_one``).
        Spare lanes repeat the last sequence and are discarded."""
        N = startprob.shape[0]
        W = k.shape[0]
        L = idx.shape[0]
        T = offsets[idx[0] + 1] - offsets[idx[0]]
        pos = np.empty(W, np.int64)
        for l in range(W):
            pos[l] = offsets[idx[min(l, L - 1)]]
            k[l] = 0
            sh[l] = 0.0
        cur = alpha
        if N <= small_max:
            lanes_small(X, pos, T, startprob, transmat.reshape(N * N), emit_t, em, alpha, k,
                        sh)
        else:
            cur = lanes_gemm(X, pos, T, startprob, transmat, emit_t, alpha.reshape((W, N)),
                             nxt.reshape((W, N)), k, sh, e, em).ravel()
        one = np.empty(N, alpha.dtype)
        two = np.empty(N, alpha.dtype)
        for l in range(L):
            a, b = offsets[idx[l]], offsets[idx[l] + 1]
            for j in range(N):
                one[j] = cur[j * W + l] if N <= small_max else cur[l * N + j]
            out[idx[l]] = finish_one(X, a + T, b, transmat_t, emit_t, one, two, k[l], sh[l], e)

    @njit_variant(tag, nogil=True)
    def forward(X, offsets, order, startprob, transmat, emit_t, out):
        S = order.shape[0]
        N = startprob.shape[0]
        if lanes_only and N > small_max:  # its lanes would run past the tiles
            raise ValueError("forward_loglik_diag_lanes: too many states for its lanes")
        W = LANES if N <= small_max else gemm_lanes
        transmat_t = np.ascontiguousarray(transmat.T)
        M = n_rows(emit_t)
        em = np.empty((TILE, N * W) if N <= small_max else (gemm_tile, gemm_tile * N * W),
                      transmat.dtype)
        alpha = np.empty(N * W, transmat.dtype)
        nxt = np.empty(N * W, transmat.dtype)
        k = np.empty(W, np.int64)
        sh = np.empty(W, np.float64)
        e = np.empty(N, transmat.dtype)
        bad = -1
        for s0 in range(0, S, W):
            idx = order[s0:min(s0 + W, S)]
            p = bad_symbol(X, offsets, idx, M)
            if p >= 0:
                bad = p
                continue
            score_block(X, offsets, idx, startprob, transmat, transmat_t, emit_t, em, alpha,
                        nxt, k, sh, e, out)
        return bad

    return dict(forward=forward, score_block=score_block, lanes_gemm=lanes_gemm,
                lanes_small=lanes_small,
                finish_one=finish_one, **{f"lanes_{n}": f for n, f in enumerate(small, 1)})


_ROWS = _make_forward("rows")
_FRAMES = _make_forward("frames")
_DIAG = _make_forward("diag")
_DIAG_LANES = _make_forward("diag_lanes")

# The kernels themselves, no wrapper (a layer of call costs its own compile on the first call)
forward_loglik = _ROWS["forward"]
forward_loglik.__doc__ = """Log-likelihoods of the sequences ``order`` (non-empty, shortest first)
    into ``out`` (float64, indexed by sequence); O(N) memory per sequence.  Blocks of LANES
    consecutive entries of ``order`` advance in lockstep (``score_block``); the caller cuts a
    batch's order into pieces at multiples of LANES, so blocks are the same whatever the pieces.

    The symbols are range-checked here, block by block before use (``_first_bad_symbol``):
    returns -1 if all lie in [0, M), else the position of one that does not, and the blocks
    holding such a symbol are not scored (their ``out`` entries are left unset)."""

forward_loglik_frames = _FRAMES["forward"]
forward_loglik_frames.__doc__ = """As ``forward_loglik`` with ``X`` = 0, 1, ..., n-1 and
    ``emit_t`` (n, N) float64 the frames' emission log-likelihoods (-inf allowed): each row is
    scaled by its maximum as it is read, and the maxima go into the score.  A sequence with a
    NaN or +inf entry scores NaN; returns -1.  ``X`` must be that sequence: the GEMM lanes
    (above SMALL_MAX_N states) take frame q's row as row q without reading it."""

forward_loglik_diag = _DIAG["forward"]
forward_loglik_diag.__doc__ = """As ``forward_loglik_frames`` with the frames' log-likelihoods
    computed as they are used, from the data under diagonal Gaussians: ``emit_t`` = (data
    (n, D), center (D,), lin (N, D), quad (N, D), const (N,)), float64, log N(x_t | state j) =
    const[j] + Σ_d y_d (lin[j, d] + y_d quad[j, d]), y = x_t - center (``_gaussian.diag_terms``).
    No table of n x N values is written or read: the same bits as ``forward_loglik_frames`` on
    the table of these log-likelihoods.  Returns -1.  Every N steps by GEMM (for more than
    SMALL_MAX_N states: below, ``forward_loglik_diag_lanes``)."""

forward_loglik_diag_lanes = _DIAG_LANES["forward"]
forward_loglik_diag_lanes.__doc__ = """``forward_loglik_diag`` for at most DIAG_SMALL_MAX_N states
    (the caller's to guarantee), in the unrolled small-N lanes of ``forward_loglik_frames``,
    each step's log-likelihoods computed from the data for all lanes (``_diag_step``) and
    scaled there: the same bits as ``forward_loglik_frames`` on the table of those
    log-likelihoods."""
