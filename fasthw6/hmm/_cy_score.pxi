# Scoring: forward_loglik and its lockstep forward (as _numba/score.py).
# Included by _cython.pyx (one extension: the fused types and helpers are shared, and one
# module builds and loads once); see its docstring for the conventions.

cdef inline double pow2_scale(double s, int64_t* k) noexcept nogil:
    """r = 2^-e, the exact power of two bringing ``s`` into [1, 2), read from its exponent bits;
    k += e (as ``_numba._pow2_scale``)."""
    cdef int64_t bits, ex
    memcpy(&bits, &s, 8)
    ex = (bits >> 52) & 0x7FF
    k[0] += ex - 1023
    bits = (2046 - ex) << 52
    memcpy(&s, &bits, 8)
    return s


cdef inline double loglik_pow2(double s, int64_t k) noexcept nogil:
    if s > 0:
        return log(s) + k * LN2
    return -INFINITY


cdef inline double sum4(const real* a, Py_ssize_t N) noexcept nogil:
    cdef double p0 = 0, p1 = 0, p2 = 0, p3 = 0
    cdef Py_ssize_t j = 0
    while j + 4 <= N:
        p0 = p0 + a[j]
        p1 = p1 + a[j + 1]
        p2 = p2 + a[j + 2]
        p3 = p3 + a[j + 3]
        j += 4
    while j < N:
        p0 = p0 + a[j]
        j += 1
    return (p0 + p1) + (p2 + p3)


cdef inline void gemm_rows(int W, int N, const real* a, const real* A, real* c) noexcept nogil:
    """c (W, N) = a (W, N) @ A (N, N), all row-major."""
    cdef char no = b'N'
    cdef float one_f = 1, zero_f = 0
    cdef double one_d = 1, zero_d = 0
    if real is float:
        sgemm(&no, &no, &N, &W, &N, &one_f, <float*>A, &N, <float*>a, &N, &zero_f, <float*>c, &N)
    else:
        dgemm(&no, &no, &N, &W, &N, &one_d, <double*>A, &N, <double*>a, &N, &zero_d, <double*>c,
              &N)


cdef inline double fmax_(double a, double b) noexcept nogil:
    return b if b > a else a


cdef inline double row_max(const real* row, Py_ssize_t N) noexcept nogil:
    """As _numba.score._row_max: the row's maximum (0 if all -inf), NaN if it holds NaN or
    +inf."""
    cdef double m0 = -INFINITY, m1 = -INFINITY, m2 = -INFINITY, m3 = -INFINITY
    cdef double m4 = -INFINITY, m5 = -INFINITY, m6 = -INFINITY, m7 = -INFINITY, m
    cdef bint ok = True
    cdef Py_ssize_t j = 0, i
    while j + 8 <= N:
        for i in range(8):
            ok = ok & (row[j + i] < INFINITY)
        m0 = fmax_(m0, row[j])
        m1 = fmax_(m1, row[j + 1])
        m2 = fmax_(m2, row[j + 2])
        m3 = fmax_(m3, row[j + 3])
        m4 = fmax_(m4, row[j + 4])
        m5 = fmax_(m5, row[j + 5])
        m6 = fmax_(m6, row[j + 6])
        m7 = fmax_(m7, row[j + 7])
        j += 8
    while j < N:
        ok = ok & (row[j] < INFINITY)
        m0 = fmax_(m0, row[j])
        j += 1
    m = fmax_(fmax_(fmax_(m0, m1), fmax_(m2, m3)), fmax_(fmax_(m4, m5), fmax_(m6, m7)))
    if not ok:
        return NAN
    return m if m > -INFINITY else 0.0


cdef struct DiagG:
    # frames of data under diagonal Gaussians (_numba.score._diag_row's tuple), C order
    const double* data  # (n, D)
    const double* c  # (D,)
    const double* lin  # (N, D)
    const double* quad  # (N, D)
    const double* cst  # (N,)
    double* y  # scratch, D * LANES
    Py_ssize_t D


cdef inline void diag_step(const DiagG* g, const int64_t* pos, Py_ssize_t t, real* em,
                           Py_ssize_t N, Py_ssize_t W) noexcept nogil:
    """As _numba.score._diag_step: step t of the W lanes' log-likelihoods into em[j*W + l]
    (here the symbols are the frames, X[p] = p)."""
    cdef Py_ssize_t D = g.D, d, j, l
    cdef double cd, lj, qj, v
    cdef double* y = g.y
    for d in range(D):
        cd = g.c[d]
        for l in range(W):
            y[d * W + l] = g.data[(pos[l] + t) * D + d] - cd
    for j in range(N):
        cd = g.cst[j]
        for l in range(W):
            em[j * W + l] = <real>cd
        for d in range(D):
            lj = g.lin[j * D + d]
            qj = g.quad[j * D + d]
            for l in range(W):
                v = y[d * W + l]
                em[j * W + l] = <real>(em[j * W + l] + v * (lj + v * qj))


cdef inline void diag_logrow(const DiagG* g, Py_ssize_t p, real* e,
                             Py_ssize_t N) noexcept nogil:
    """As _numba.score._diag_logrow: frame p's log-likelihoods under ``g`` into e (N,)."""
    cdef Py_ssize_t j, d, D = g.D
    cdef double r, v
    for j in range(N):
        r = g.cst[j]
        for d in range(D):
            v = g.data[p * D + d] - g.c[d]
            r = r + v * (g.lin[j * D + d] + v * g.quad[j * D + d])
        e[j] = <real>r


cdef inline const real* emission_row(const real[:, ::1] emit_t, int64_t p, bint logs, real* e,
                                     double* sh, const DiagG* g) noexcept nogil:
    """The emission factors of symbol p (_numba.score._table_row); framewise (``logs``,
    _numba.score._log_row), exp(row - m) written into ``e``, and m added to ``sh[0]``; with
    ``g`` (_numba.score._diag_row), the row's log-likelihoods computed from frame p first."""
    cdef const real* row
    cdef Py_ssize_t j, N = emit_t.shape[1]
    cdef double m
    if g != NULL:
        diag_logrow(g, p, e, N)
        row = e
    else:
        row = &emit_t[p, 0]
        if not logs:
            return row
    m = row_max(row, N)
    for j in range(N):
        e[j] = <real>exp_le0(row[j] - m)
    sh[0] = sh[0] + m
    return e


cdef inline void scale_lanes(real* e, Py_ssize_t N, Py_ssize_t W, double* mx,
                             double* sh) noexcept nogil:
    """As _numba.score._scale_lanes: one step's W lanes of log-likelihoods e[j*W + l] scaled
    in place by each lane's maximum, the maxima added to sh."""
    cdef Py_ssize_t j, l
    cdef double v, m
    for l in range(W):
        mx[l] = e[l]
    for j in range(1, N):
        for l in range(W):
            v = e[j * W + l]
            mx[l] = v if v > mx[l] else mx[l]
    for j in range(N):
        for l in range(W):
            mx[l] = mx[l] if e[j * W + l] < INFINITY else NAN
    for l in range(W):
        m = mx[l]
        m = 0.0 if m == -INFINITY else m
        mx[l] = m
        sh[l] = sh[l] + m
    for j in range(N):
        for l in range(W):
            e[j * W + l] = <real>exp_le0(e[j * W + l] - mx[l])


cdef double finish_one(const sym_t[::1] X, Py_ssize_t a, Py_ssize_t b, const real* at,
                       const real[:, ::1] emit_t, real* cur, real* nxt, int64_t k, double sh,
                       bint logs, real* e, Py_ssize_t N, const DiagG* g) noexcept nogil:
    """One sequence alone over X[a:b] from unscaled α in ``cur`` (``finish_one`` of
    ``_numba.score._make_forward``)."""
    cdef Py_ssize_t t, i, j
    cdef double s, r
    cdef real acc
    cdef real* sw
    cdef const real* row
    cdef const real* arow
    for t in range(a, b):
        s = cur[0]
        for i in range(1, N):
            s = s + cur[i]
        r = pow2_scale(s, &k)
        row = emission_row(emit_t, X[t], logs, e, &sh, g)
        for j in range(N):
            arow = at + j * N
            acc = arow[0] * cur[0]
            for i in range(1, N):
                acc = acc + arow[i] * cur[i]
            nxt[j] = <real>(acc * (row[j] * r))
        sw = cur
        cur = nxt
        nxt = sw
    s = cur[0]
    for i in range(1, N):
        s = s + cur[i]
    return loglik_pow2(s, k) + sh


cdef void lanes_small(const sym_t[::1] X, const int64_t* pos, Py_ssize_t T,
                      const real[::1] startprob, const real* A, const real[:, ::1] emit_t,
                      real* em, real* alpha, real* acc, double* r, int64_t* k, double* sh,
                      bint logs, Py_ssize_t N, const DiagG* g) noexcept nogil:
    """LANES sequences in lockstep, α state-major (N, LANES), lanes innermost
    (``_numba._make_lanes_small``; here N is a run-time value and each pass runs over lanes);
    with ``g``, each step's log-likelihoods computed from the data (``diag_step``, the "diag"
    mode there) instead of gathered from ``emit_t``."""
    cdef Py_ssize_t W = LANES, t, i, j, l
    cdef const real* row
    cdef double s
    for t in range(T):
        if g != NULL:
            diag_step(g, pos, t, em, N, W)
        else:
            for l in range(W):
                row = &emit_t[X[pos[l] + t], 0]
                for j in range(N):
                    em[j * W + l] = row[j]
        if logs:
            scale_lanes(em, N, W, r, sh)
        if t == 0:
            for j in range(N):
                for l in range(W):
                    alpha[j * W + l] = startprob[j] * em[j * W + l]
            continue
        for l in range(W):
            r[l] = alpha[l]
        for i in range(1, N):
            for l in range(W):
                r[l] = r[l] + alpha[i * W + l]
        for l in range(W):
            r[l] = pow2_scale(r[l], &k[l])
        for j in range(N):
            for l in range(W):
                acc[l] = A[j] * alpha[l]
            for i in range(1, N):
                for l in range(W):
                    acc[l] = acc[l] + A[i * N + j] * alpha[i * W + l]
            for l in range(W):
                em[j * W + l] = <real>(acc[l] * (em[j * W + l] * r[l]))
        memcpy(alpha, em, N * W * sizeof(real))


cdef real* lanes_gemm(const sym_t[::1] X, const int64_t* pos, Py_ssize_t T,
                      const real[::1] startprob, const real* A, const real[:, ::1] emit_t,
                      real* alpha, real* nxt, int64_t* k, double* sh, bint logs, real* e,
                      Py_ssize_t N, const DiagG* g, real* em, double* mx,
                      Py_ssize_t W) noexcept nogil:
    """W sequences in lockstep, α lane-major (W, N), each step one GEMM α A
    (``lanes_gemm_rows`` of ``_numba.score._make_forward``); with ``g``, each step's
    emissions computed for all lanes into ``em`` (N*W) and scaled there (``lanes_gemm_tile``).
    Symbols in float64 rescale every GEMM_RESCALE_STEPS steps and at the last, zeroing a lane
    whose α sum fell below the smallest normal double (as numba's ``_rescale_every``).
    Returns the buffer holding the last α."""
    cdef Py_ssize_t t, j, l, every = 1
    cdef const real* row
    cdef real* o
    cdef real* sw
    cdef double rl, s, tiny = 0.0
    if real is double and not logs and g == NULL:
        every = GEMM_RESCALE_STEPS
        tiny = 2.2250738585072014e-308
    if g != NULL:
        diag_step(g, pos, 0, em, N, W)
        scale_lanes(em, N, W, mx, sh)
        for l in range(W):
            for j in range(N):
                alpha[l * N + j] = startprob[j] * em[j * W + l]
    else:
        for l in range(W):
            row = emission_row(emit_t, X[pos[l]], logs, e, &sh[l], g)
            for j in range(N):
                alpha[l * N + j] = startprob[j] * row[j]
    for t in range(1, T):
        gemm_rows(<int>W, <int>N, alpha, A, nxt)
        if g != NULL:
            diag_step(g, pos, t, em, N, W)
            scale_lanes(em, N, W, mx, sh)
            for l in range(W):
                rl = pow2_scale(sum4(alpha + l * N, N), &k[l])
                o = nxt + l * N
                for j in range(N):
                    o[j] = <real>(o[j] * (em[j * W + l] * rl))
        elif t % every != 0 and t != T - 1:  # (symbols, float64) the emissions alone
            for l in range(W):
                row = &emit_t[X[pos[l] + t], 0]
                o = nxt + l * N
                for j in range(N):
                    o[j] = o[j] * row[j]
        else:
            for l in range(W):
                s = sum4(alpha + l * N, N)
                rl = pow2_scale(s, &k[l])
                if s < tiny:
                    rl = 0.0
                row = emission_row(emit_t, X[pos[l] + t], logs, e, &sh[l], g)
                o = nxt + l * N
                for j in range(N):
                    o[j] = <real>(o[j] * (row[j] * rl))
        sw = alpha
        alpha = nxt
        nxt = sw
    return alpha


cdef void score_block(const sym_t[::1] X, const int64_t[::1] offsets, const int64_t* idx,
                      Py_ssize_t L, const real[::1] startprob, const real* A, const real* At,
                      const real[:, ::1] emit_t, real* buf, double* r, int64_t* k,
                      int64_t* pos, double* sh, bint logs, double[::1] out,
                      const DiagG* g, Py_ssize_t W, Py_ssize_t small_max) noexcept nogil:
    """Sequences ``idx`` (non-empty, shortest first) in lockstep over the shortest one's
    length, then each alone (``score_block`` of ``_numba.score._make_forward``): in the
    small-N lanes up to ``small_max`` states, else by GEMM.  W: the forward's lanes."""
    cdef Py_ssize_t N = startprob.shape[0], T, l, j, a, b
    cdef real* em = buf
    cdef real* alpha = buf + N * W
    cdef real* nxt = buf + 2 * N * W
    cdef real* one = buf + 3 * N * W
    cdef real* two = one + N
    cdef real* e = two + N
    cdef real* cur
    T = offsets[idx[0] + 1] - offsets[idx[0]]
    for l in range(W):
        pos[l] = offsets[idx[l if l < L else L - 1]]
        k[l] = 0
        sh[l] = 0
    cdef bint small = N <= small_max
    if small:
        lanes_small(X, pos, T, startprob, A, emit_t, em, alpha, nxt, r, k, sh, logs, N, g)
        cur = alpha
    else:
        cur = lanes_gemm(X, pos, T, startprob, A, emit_t, alpha, nxt, k, sh, logs, e, N, g,
                         em, r, W)  # em and r are the small lanes' scratch, free here
    for l in range(L):
        a = offsets[idx[l]]
        b = offsets[idx[l] + 1]
        for j in range(N):
            one[j] = cur[j * W + l] if small else cur[l * N + j]
        out[idx[l]] = finish_one(X, a + T, b, At, emit_t, one, two, k[l], sh[l], logs, e, N,
                                 g)


cdef inline int64_t first_bad_symbol(const sym_t[::1] X, const int64_t[::1] offsets,
                                     const int64_t* idx, Py_ssize_t L, int64_t M) noexcept nogil:
    """As _numba._first_bad_symbol: a position in the sequences idx[0:L] whose symbol lies
    outside [0, M), or -1."""
    cdef Py_ssize_t l, p, a, b
    cdef int64_t v
    cdef (int64_t, int64_t) r
    for l in range(L):
        a = offsets[idx[l]]
        b = offsets[idx[l] + 1]
        r = span_range(X, a, b, 0, 0)
        if r[0] < 0 or r[1] >= M:
            for p in range(a, b):
                v = X[p]
                if v < 0 or v >= M:
                    return p
    return -1


cdef int64_t forward(const sym_t[::1] X, const int64_t[::1] offsets, const int64_t[::1] order,
                     const real[::1] startprob, const real[:, ::1] transmat,
                     const real[:, ::1] emit_t, double[::1] out, bint logs,
                     DiagG* g, Py_ssize_t small_max) except -2:
    """forward_loglik (``logs`` False), forward_loglik_frames (True) or, with ``g``,
    forward_loglik_diag (``small_max`` 0) or forward_loglik_diag_lanes (DIAG_SMALL_MAX_N), as
    the ``forward`` of _numba.score._make_forward: LANES lanes for the small-N kernels (up to
    ``small_max`` states), else GEMM_LANES (symbols) or FRAMES_GEMM_LANES (frames)."""
    cdef Py_ssize_t N = startprob.shape[0], S = order.shape[0], s0, L
    cdef Py_ssize_t W = LANES if N <= small_max else (FRAMES_GEMM_LANES if logs else GEMM_LANES)
    cdef int64_t M = emit_t.shape[0], p, bad = -1
    if S == 0:
        return -1
    tt_arr = np.ascontiguousarray(np.asarray(transmat).T)
    cdef const real[:, ::1] transmat_t = tt_arr
    cdef const real* A = &transmat[0, 0]
    cdef const real* At = &transmat_t[0, 0]
    cdef real* buf
    cdef double* r
    cdef int64_t* k
    with nogil:
        buf = <real*>malloc((3 * N * W + 3 * N) * sizeof(real))
        r = <double*>malloc(2 * W * sizeof(double))
        k = <int64_t*>malloc(2 * W * sizeof(int64_t))
        if buf == NULL or r == NULL or k == NULL:
            free(buf)
            free(r)
            free(k)
            with gil:
                raise MemoryError("forward_loglik: no memory for the block scratch")
        s0 = 0
        while s0 < S:
            L = min(W, S - s0)
            p = -1 if logs else first_bad_symbol(X, offsets, &order[s0], L, M)
            if p >= 0:
                bad = p
            else:
                score_block(X, offsets, &order[s0], L, startprob, A, At, emit_t, buf, r, k,
                            k + W, r + W, logs, out, g, W, small_max)
            s0 = s0 + W
        free(buf)
        free(r)
        free(k)
    return bad


def forward_loglik(const sym_t[::1] X, const int64_t[::1] offsets, const int64_t[::1] order,
                   const real[::1] startprob, const real[:, ::1] transmat,
                   const real[:, ::1] emit_t, double[::1] out):
    """As _numba.forward_loglik: scores of the sequences ``order`` into ``out``, blocks of LANES
    consecutive entries; returns -1, or the position of a symbol outside [0, M) (the blocks
    holding one are not scored)."""
    return forward(X, offsets, order, startprob, transmat, emit_t, out, False, NULL, SMALL_MAX_N)


def forward_loglik_frames(const int64_t[::1] X, const int64_t[::1] offsets,
                          const int64_t[::1] order, const double[::1] startprob,
                          const double[:, ::1] transmat, const double[:, ::1] flp,
                          double[::1] out):
    """As _numba.forward_loglik_frames: scores from the frames' emission log-likelihoods
    ``flp`` (X = 0..n-1), each row scaled by its maximum as it is read; returns -1."""
    return forward(X, offsets, order, startprob, transmat, flp, out, True, NULL, SMALL_MAX_N)


def forward_loglik_diag(const int64_t[::1] X, const int64_t[::1] offsets,
                        const int64_t[::1] order, const double[::1] startprob,
                        const double[:, ::1] transmat, tuple emissions, double[::1] out):
    """As _numba.forward_loglik_diag: scores with the frames' log-likelihoods computed from
    ``emissions`` = (data (n, D), center, lin (N, D), quad (N, D), const (N,)), float64 C
    order, as they are used (here the symbols are the frames: X = 0..n-1), every N by GEMM;
    returns -1."""
    return forward_diag(X, offsets, order, startprob, transmat, emissions, out, 0)


def forward_loglik_diag_lanes(const int64_t[::1] X, const int64_t[::1] offsets,
                              const int64_t[::1] order, const double[::1] startprob,
                              const double[:, ::1] transmat, tuple emissions, double[::1] out):
    """As _numba.forward_loglik_diag_lanes: ``forward_loglik_diag`` in the small-N lanes, for
    at most DIAG_SMALL_MAX_N states; returns -1."""
    if startprob.shape[0] > DIAG_SMALL_MAX_N:
        raise ValueError("forward_loglik_diag_lanes: too many states for its lanes")
    return forward_diag(X, offsets, order, startprob, transmat, emissions, out,
                        DIAG_SMALL_MAX_N)


cdef int64_t forward_diag(const int64_t[::1] X, const int64_t[::1] offsets,
                          const int64_t[::1] order, const double[::1] startprob,
                          const double[:, ::1] transmat, tuple emissions, double[::1] out,
                          Py_ssize_t small_max) except -2:
    """The diagonal-Gaussian forward of ``forward_loglik_diag`` and ``_lanes``: the emission
    terms checked and pointed at, then ``forward`` with them."""
    cdef const double[:, ::1] data = emissions[0]
    cdef const double[::1] c = emissions[1]
    cdef const double[:, ::1] lin = emissions[2]
    cdef const double[:, ::1] quad = emissions[3]
    cdef const double[::1] cst = emissions[4]
    cdef DiagG g
    cdef int64_t bad
    cdef Py_ssize_t D = data.shape[1], N = startprob.shape[0]
    if lin.shape[0] != N or lin.shape[1] != D or quad.shape[0] != N or quad.shape[1] != D \
            or cst.shape[0] != N or c.shape[0] != D:
        raise ValueError("forward_loglik_diag: emission terms of mismatched shapes")
    if order.shape[0] == 0:
        return -1
    # the table forward's emit_t is not read with g: any (., N) view will do
    y = np.empty(max(1, D * LANES))
    cdef double[::1] yv = y
    g.data = &data[0, 0] if data.shape[0] > 0 and D > 0 else NULL
    g.c = &c[0] if D > 0 else NULL
    g.lin = &lin[0, 0] if D > 0 else NULL
    g.quad = &quad[0, 0] if D > 0 else NULL
    g.cst = &cst[0]
    g.y = &yv[0]
    g.D = D
    bad = forward(X, offsets, order, startprob, transmat, transmat, out, True, &g,
                  small_max)
    return bad
