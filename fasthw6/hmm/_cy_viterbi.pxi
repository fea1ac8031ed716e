# Viterbi in float64 log space (as _numba/viterbi.py); sample_chain (as _numba/sample.py).
# Included by _cython.pyx (one extension: the fused types and helpers are shared, and one
# module builds and loads once); see its docstring for the conventions.



cdef inline double dmax(double a, double b) noexcept nogil:
    return a if a >= b else b


cdef inline void vit_step_one(double* delta, double* best, double* arg, const double* lA,
                              const double* em, bp_t* Bt, Py_ssize_t N) noexcept nogil:
    """As ``_numba._viterbi_step_one``: axpy form, ``>=`` keeps the largest maximising state.
    The running argmax is a double, moved to i by arithmetic on the compare (exact for these
    small integers), so the inner loop is one loop of doubles and a single select, which gcc
    vectorises at baseline x86-64 (SSE2); with a branch, or two selects on one compare, it
    stayed scalar.  One thread, N=128, 10^5 frames: 1.75-1.97 s -> 0.98 s."""
    cdef Py_ssize_t i, j
    cdef double di, fi, w, bj, m
    cdef const double* row
    for j in range(N):
        best[j] = -INFINITY
        arg[j] = 0.0
    for i in range(N):
        di = delta[i]
        fi = <double>i
        row = lA + i * N
        for j in range(N):
            w = di + row[j]
            bj = best[j]
            m = <double>(w >= bj)
            best[j] = dmax(w, bj)
            arg[j] = arg[j] + m * (fi - arg[j])  # fi where w >= bj, exactly (small integers)
    for j in range(N):
        delta[j] = best[j] + em[j]
        Bt[j] = <bp_t>arg[j]


cdef inline const double* vit_row(const double* lem_t, Py_ssize_t p, Py_ssize_t N,
                                  const DiagG* g, double* e) noexcept nogil:
    """Symbol p's log-emission row: of the table, or with ``g`` frame p's diagonal-Gaussian
    log-likelihoods computed into ``e`` (``diag_logrow``)."""
    if g == NULL:
        return lem_t + p * N
    diag_logrow(g, p, e, N)
    return e


cdef (double, Py_ssize_t) vit_tail(const sym_t[::1] X, Py_ssize_t a, Py_ssize_t b,
                                   Py_ssize_t t0, const double* lsp, const double* lA,
                                   const double* lem_t, Py_ssize_t N, double* delta,
                                   double* best, double* arg, bp_t* B,
                                   int64_t[::1] states, const DiagG* g,
                                   double* e) noexcept nogil:
    """As the ``tail`` of _numba.viterbi._make_viterbi: steps t0.. of X[a:b] with backpointers
    in B (row t at B + t*N); returns (log prob, state at step max(t0-1, 0))."""
    cdef Py_ssize_t t, j, k
    cdef double m
    cdef const double* em
    if t0 == 0:
        em = vit_row(lem_t, <Py_ssize_t>X[a], N, g, e)
        for j in range(N):
            delta[j] = lsp[j] + em[j]
        t0 = 1
    for t in range(t0, b - a):
        vit_step_one(delta, best, arg, lA, vit_row(lem_t, <Py_ssize_t>X[a + t], N, g, e),
                     B + t * N, N)
    k = 0
    m = delta[0]
    for j in range(1, N):
        if delta[j] > m:
            m = delta[j]
            k = j
    states[b - 1] = k
    for t in range(b - a - 1, t0 - 1, -1):
        k = B[t * N + k]
        states[a + t - 1] = k
    return m, k


cdef void vit_lanes(const sym_t[::1] X, const int64_t[::1] offsets, const int64_t[::1] order,
                    Py_ssize_t s0, Py_ssize_t L, const double* lsp, const double* lA,
                    const double* lem_t, Py_ssize_t N,
                    double* D, Py_ssize_t Tb, Py_ssize_t WS, int8_t* P, int64_t* sym,
                    int64_t* pos, int64_t* kk, int64_t* nk, double* bb, double* g, bp_t* B,
                    double* vec, double* bvec, double* avec, int64_t[::1] states,
                    double[::1] out, const DiagG* dg, double* E, double* e) noexcept nogil:
    """As the ``lanes`` of _numba.viterbi._make_viterbi: D is (Tb, N, WS), P (Tb, WS),
    row-major.  With ``dg``, each step's log-emissions are computed into E (N*W, lanes
    innermost) and read as E[j*W + sym[l]], sym[l] = l; else row sym[l]/N of the table."""
    cdef Py_ssize_t W = min(WS, (L + 7) // 8 * 8)
    cdef Py_ssize_t Tl = Tb, l, s, t, i, j, a, b, k, kl
    # lane l's emission of state j: eb[j * es + sym[l]]
    cdef const double* eb = E if dg != NULL else lem_t
    cdef Py_ssize_t es = W if dg != NULL else 1
    cdef double* cur
    cdef double* prev
    cdef double* cj
    cdef const double* ej
    cdef const double* ai
    cdef const double* d0
    cdef const double* d1
    cdef const double* d2
    cdef const double* d3
    cdef double* b0
    cdef double* b1
    cdef const double* e1
    cdef double a0, a1, a2, a3, pj, v, c0, c1, c2, c3
    cdef double a00, a01, a02, a03, a10, a11, a12, a13, x0, x1, x2, x3
    cdef (double, Py_ssize_t) r
    for l in range(L):
        s = order[s0 + l]
        Tl = min(Tl, offsets[s + 1] - offsets[s])
    for l in range(W):
        pos[l] = offsets[order[s0 + min(l, L - 1)]]
    if dg != NULL:
        for l in range(W):
            sym[l] = l
    for t in range(Tl):
        if dg != NULL:
            diag_step(dg, pos, t, E, N, W)
        else:
            for l in range(W):
                sym[l] = <Py_ssize_t>X[pos[l] + t] * N  # the frame's row of log_emit_t
        cur = D + t * N * WS
        if t == 0:
            for j in range(N):
                pj = lsp[j]
                ej = eb + j * es
                cj = cur + j * WS
                for l in range(W):
                    cj[l] = pj + ej[sym[l]]
            continue
        prev = cur - N * WS
        if N <= 4:  # as _numba: one pass per state, the last state repeated to make four
            d0 = prev
            d1 = prev + min(1, N - 1) * WS
            d2 = prev + min(2, N - 1) * WS
            d3 = prev + min(3, N - 1) * WS
            for j in range(N):
                ej = eb + j * es
                cj = cur + j * WS
                for l in range(W):
                    cj[l] = ej[sym[l]]
                a0 = lA[j]
                a1 = lA[min(1, N - 1) * N + j]
                a2 = lA[min(2, N - 1) * N + j]
                a3 = lA[min(3, N - 1) * N + j]
                for l in range(W):
                    cj[l] = dmax(dmax(d0[l] + a0, d1[l] + a1), dmax(d2[l] + a2, d3[l] + a3)) + cj[l]
            continue
        # as _numba: two states at a time, four previous states per pass, into δ_t's rows
        j = 0
        while j + 2 <= N:
            b0 = cur + j * WS
            b1 = b0 + WS
            for l in range(W):
                b0[l] = -INFINITY
                b1[l] = -INFINITY
            i = 0
            while i + 4 <= N:
                a00 = lA[i * N + j]
                a01 = lA[(i + 1) * N + j]
                a02 = lA[(i + 2) * N + j]
                a03 = lA[(i + 3) * N + j]
                a10 = lA[i * N + j + 1]
                a11 = lA[(i + 1) * N + j + 1]
                a12 = lA[(i + 2) * N + j + 1]
                a13 = lA[(i + 3) * N + j + 1]
                d0 = prev + i * WS
                d1 = d0 + WS
                d2 = d1 + WS
                d3 = d2 + WS
                for l in range(W):
                    x0 = d0[l]
                    x1 = d1[l]
                    x2 = d2[l]
                    x3 = d3[l]
                    b0[l] = dmax(dmax(dmax(x0 + a00, x1 + a01), dmax(x2 + a02, x3 + a03)), b0[l])
                    b1[l] = dmax(dmax(dmax(x0 + a10, x1 + a11), dmax(x2 + a12, x3 + a13)), b1[l])
                i = i + 4
            while i < N:
                a0 = lA[i * N + j]
                a1 = lA[i * N + j + 1]
                d0 = prev + i * WS
                for l in range(W):
                    b0[l] = dmax(d0[l] + a0, b0[l])
                    b1[l] = dmax(d0[l] + a1, b1[l])
                i = i + 1
            ej = eb + j * es
            e1 = ej + es
            for l in range(W):
                b0[l] = b0[l] + ej[sym[l]]
                b1[l] = b1[l] + e1[sym[l]]
            j = j + 2
        if j < N:
            b0 = cur + j * WS
            for l in range(W):
                b0[l] = -INFINITY
            for i in range(N):
                a0 = lA[i * N + j]
                d0 = prev + i * WS
                for l in range(W):
                    b0[l] = dmax(d0[l] + a0, b0[l])
            ej = eb + j * es
            for l in range(W):
                b0[l] = b0[l] + ej[sym[l]]
    for l in range(L):
        s = order[s0 + l]
        a = offsets[s]
        b = offsets[s + 1]
        if b == a:
            out[s] = 0.0
            kk[l] = 0
            continue
        if Tl > 0:
            for j in range(N):
                vec[j] = D[((Tl - 1) * N + j) * WS + l]
        r = vit_tail(X, a, b, Tl, lsp, lA, lem_t, N, vec, bvec, avec, B, states, dg, e)
        out[s] = r[0]
        kk[l] = r[1]
    for t in range(Tl - 1, 0, -1):
        prev = D + (t - 1) * N * WS
        for l in range(L):
            bb[l] = -INFINITY
        for i in range(N):
            ai = lA + i * N
            if N <= 4:
                c0 = ai[0]
                c1 = ai[min(1, N - 1)]
                c2 = ai[min(2, N - 1)]
                c3 = ai[min(3, N - 1)]
                for l in range(L):
                    kl = kk[l]
                    g[l] = c0 if kl == 0 else c1 if kl == 1 else c2 if kl == 2 else c3
            else:
                for l in range(L):
                    g[l] = ai[kk[l]]
            d0 = prev + i * WS
            for l in range(L):
                v = d0[l] + g[l]
                if v >= bb[l]:
                    bb[l] = v
                    nk[l] = i
        for l in range(L):
            k = nk[l]
            kk[l] = k
            P[(t - 1) * WS + l] = <int8_t>k
    for l in range(L):
        a = pos[l]
        for t in range(Tl - 1):
            states[a + t] = P[t * WS + l]


cdef vit_run(const sym_t[::1] X, const int64_t[::1] offsets, const double[::1] log_startprob,
             const double[:, ::1] log_transmat, const double* lem_t, bp_t[:, :, ::1] bp,
             int64_t[::1] states, double[::1] out, const DiagG* g, int64_t M):
    """``viterbi`` (``lem_t`` the table of M rows, ``g`` NULL) or ``viterbi_diag`` (``g``, M
    -1: no symbols to check).  Returns -1 or the position of a symbol outside [0, M), found
    as the block (or sequence) holding it is about to be decoded."""
    cdef Py_ssize_t N = log_startprob.shape[0]
    cdef Py_ssize_t S = offsets.shape[0] - 1, C = bp.shape[0]
    cdef Py_ssize_t W = VIT_LANES if N < VIT_LANES_MAX_N else VIT_WIDE_LANES
    cdef Py_ssize_t c, s, a, b, blk, n_blocks, Tb, maxlen = bp.shape[1]
    cdef const double* lsp = &log_startprob[0]
    cdef const double* lA = &log_transmat[0, 0]
    cdef const int64_t[::1] order
    cdef int64_t[::1] bounds
    cdef double* D
    cdef double* dbuf
    cdef int64_t* ibuf
    cdef int8_t* P
    cdef double* arg
    cdef double* E
    cdef int64_t bad = -1
    cdef int64_t one[1]
    if N <= VIT_WIDE_MAX_N:
        order = np.argsort(np.diff(np.asarray(offsets)), kind="stable").astype(np.int64)
        n_blocks = (S + W - 1) // W
        Tb = min(maxlen, max(1, VIT_BLOCK_BYTES // (N * W * 8)))
        with nogil:
            for c in range(C):
                D = <double*>malloc((Tb * N * W + 3 * W + 3 * N + N * W + N) * sizeof(double))
                P = <int8_t*>malloc((Tb * W + 1) * sizeof(int8_t))
                ibuf = <int64_t*>calloc(4 * W, sizeof(int64_t))
                arg = <double*>malloc(N * sizeof(double))
                if D == NULL or P == NULL or ibuf == NULL or arg == NULL:
                    free(D)
                    free(P)
                    free(ibuf)
                    free(arg)
                    with gil:
                        raise MemoryError("viterbi: no memory for the lane scratch")
                dbuf = D + Tb * N * W  # bb, g (W each), vec, bvec (N each)
                E = dbuf + 3 * W + 3 * N  # (N, W) emissions, then a row (N)
                blk = c
                while blk < n_blocks:
                    if M >= 0:
                        bad = first_bad_symbol(X, offsets, &order[blk * W],
                                               min(W, S - blk * W), M)
                        if bad >= 0:
                            break
                    vit_lanes(X, offsets, order, blk * W, min(W, S - blk * W), lsp, lA, lem_t,
                              N, D, Tb, W, P, ibuf, ibuf + W, ibuf + 2 * W,
                              ibuf + 3 * W, dbuf, dbuf + W, &bp[c, 0, 0], dbuf + 2 * W,
                              dbuf + 2 * W + N, arg, states, out, g, E, E + N * W)
                    blk = blk + C
                free(arg)
                free(ibuf)
                free(P)
                free(D)
                if bad >= 0:
                    break
        return bad
    bounds = _bounds(offsets, C)
    C = bounds.shape[0] - 1
    with nogil:
        for c in range(C):
            dbuf = <double*>malloc(3 * N * sizeof(double))
            arg = <double*>malloc(N * sizeof(double))
            if dbuf == NULL or arg == NULL:
                free(dbuf)
                free(arg)
                with gil:
                    raise MemoryError("viterbi: no memory for the state scratch")
            for s in range(bounds[c], bounds[c + 1]):
                a = offsets[s]
                b = offsets[s + 1]
                if b == a:
                    out[s] = 0.0
                    continue
                if M >= 0:
                    one[0] = s
                    bad = first_bad_symbol(X, offsets, one, 1, M)
                    if bad >= 0:
                        break
                out[s] = vit_tail(X, a, b, 0, lsp, lA, lem_t, N, dbuf, dbuf + N, arg,
                                  &bp[c, 0, 0], states, g, dbuf + 2 * N)[0]
            free(arg)
            free(dbuf)
            if bad >= 0:
                break
    return bad


def viterbi(const sym_t[::1] X, const int64_t[::1] offsets, const double[::1] log_startprob,
            const double[:, ::1] log_transmat, const double[:, ::1] log_emit_t,
            bp_t[:, :, ::1] bp, int64_t[::1] states, double[::1] out, int64_t check_m):
    """As ``_numba.viterbi``: up to VIT_WIDE_MAX_N states, blocks of VIT_LANES sequences
    (VIT_WIDE_LANES from VIT_LANES_MAX_N states on) sorted by length in lockstep (dealt
    round-robin to the chunks), else one at a time; returns -1 or the position of a symbol
    outside the table, as it does."""
    return vit_run(X, offsets, log_startprob, log_transmat, &log_emit_t[0, 0], bp, states,
                   out, NULL, check_m)


def viterbi_diag(const int64_t[::1] X, const int64_t[::1] offsets,
                 const double[::1] log_startprob, const double[:, ::1] log_transmat,
                 tuple emissions, bp_t[:, :, ::1] bp, int64_t[::1] states, double[::1] out,
                 int64_t check_m):
    """As ``_numba.viterbi_diag``: ``viterbi`` with the frames' log-emissions computed from
    ``emissions`` = (data (n, D), center, lin (N, D), quad (N, D), const (N,)), float64 C
    order, as each step uses them (X = 0..n-1)."""
    cdef const double[:, ::1] data = emissions[0]
    cdef const double[::1] c = emissions[1]
    cdef const double[:, ::1] lin = emissions[2]
    cdef const double[:, ::1] quad = emissions[3]
    cdef const double[::1] cst = emissions[4]
    cdef DiagG g
    cdef Py_ssize_t D = data.shape[1], N = log_startprob.shape[0]
    if lin.shape[0] != N or lin.shape[1] != D or quad.shape[0] != N or quad.shape[1] != D \
            or cst.shape[0] != N or c.shape[0] != D or X.shape[0] != data.shape[0]:
        raise ValueError("viterbi_diag: emission terms of mismatched shapes")
    y = np.empty(max(1, D * VIT_LANES))  # diag_step's scratch (VIT_LANES >= every W)
    cdef double[::1] yv = y
    g.data = &data[0, 0] if data.shape[0] > 0 and D > 0 else NULL
    g.c = &c[0] if D > 0 else NULL
    g.lin = &lin[0, 0] if D > 0 else NULL
    g.quad = &quad[0, 0] if D > 0 else NULL
    g.cst = &cst[0]
    g.y = &yv[0]
    g.D = D
    return vit_run(X, offsets, log_startprob, log_transmat, NULL, bp, states, out, &g, -1)


def sample_chain(const double[::1] u, const double[::1] start_cdf, const double[:, ::1] trans_cdf,
                 const double[:, ::1] emit_cdf, int64_t[::1] states, int64_t[::1] symbols):
    cdef Py_ssize_t n = states.shape[0], N = start_cdf.shape[0], M = emit_cdf.shape[1]
    cdef Py_ssize_t t, j, cur = 0, nxt
    cdef const double* cdf
    with nogil:
        for t in range(n):
            cdf = &start_cdf[0] if t == 0 else &trans_cdf[cur, 0]
            nxt = 0
            for j in range(N):
                if cdf[j] > u[2 * t]:
                    nxt = j
                    break
            cur = nxt
            states[t] = cur
            nxt = 0
            for j in range(M):
                if emit_cdf[cur, j] > u[2 * t + 1]:
                    nxt = j
                    break
            symbols[t] = nxt
    return np.asarray(states)
