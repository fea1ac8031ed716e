# Posteriors and the E-step: lockstep_plan, lockstep_run (as _numba/estep.py and estep_small.py).
# Over 500 lines: lockstep_block (about 240) is one pass whose phases share scratch and indices.
# Included by _cython.pyx (one extension: the fused types and helpers are shared, and one
# module builds and loads once); see its docstring for the conventions.

cdef double forward_seq(const sym_t[::1] X, Py_ssize_t a, Py_ssize_t b,
                        const real[::1] startprob, const real[:, ::1] transmat,
                        const real[:, ::1] emit_t, real* alpha, Py_ssize_t stride,
                        real* tmp) noexcept nogil:
    """Scaled forward over X[a:b]; α̂_t at alpha + t*stride (stride 0: keep only the current).

    As ``_numba._forward_one``, operation for operation and type for type, so that the backends
    agree bit for bit: the sum ``s`` and its reciprocal ``r`` are double (numba's ``s = 0.0``
    makes them float64), the products and α̂ are ``real``."""
    cdef Py_ssize_t N = startprob.shape[0], t, i, j
    cdef LL acc
    cdef double s, r
    cdef real v, ai
    cdef real* prev
    cdef real* cur
    cdef const real* row
    cdef const real* em
    acc.p = 1.0
    acc.e = 0.0
    acc.extra = 0.0
    em = &emit_t[X[a], 0]
    s = 0
    for j in range(N):
        v = startprob[j] * em[j]
        alpha[j] = v
        s = s + v
    ll_push(&acc, s)
    if s == 0:
        return -INFINITY
    r = 1.0 / s
    for j in range(N):
        alpha[j] = <real>(alpha[j] * r)
    for t in range(1, b - a):
        prev = alpha + (t - 1) * stride
        cur = alpha + t * stride
        for j in range(N):
            tmp[j] = 0
        for i in range(N):
            ai = prev[i]
            if ai != 0:
                row = &transmat[i, 0]
                for j in range(N):
                    tmp[j] = tmp[j] + ai * row[j]
        em = &emit_t[X[a + t], 0]
        s = 0
        for j in range(N):
            v = tmp[j] * em[j]
            cur[j] = v
            s = s + v
        ll_push(&acc, s)
        if s == 0:
            return -INFINITY
        r = 1.0 / s
        for j in range(N):
            cur[j] = <real>(cur[j] * r)
    return ll_value(&acc)


cdef void backward_seq(const sym_t[::1] X, Py_ssize_t a, Py_ssize_t b,
                       const real[:, ::1] transmat, const real[:, ::1] emit_t, real* alpha,
                       real* beta, real* u, real* v, double* start_acc, double* trans_raw,
                       double* obs_acc, bint want_stats) noexcept nogil:
    """Backward pass over X[a:b] given α̂ rows at ``alpha`` (T×N), overwriting them with γ and,
    if ``want_stats``, adding the E-step sums (trans_raw without the factor A).

    As ``_numba._backward_one``, type for type (the backends must agree bit for bit): the
    products A(e∘β) in ``real``, as the lockstep's; the sums z, Σv, their reciprocals and the
    ξ weight ``w`` in double."""
    cdef Py_ssize_t N = transmat.shape[0], T = b - a, t, i, j
    cdef double z, sv, iz, isv, w
    cdef real acc
    cdef real* at
    cdef const real* row
    cdef const real* em
    cdef double* ob
    cdef double* tr
    for j in range(N):
        beta[j] = 1.0 / N
    if want_stats and obs_acc != NULL:  # (NULL: γ goes to ``gamma`` rows only)
        at = alpha + (T - 1) * N
        ob = obs_acc + X[b - 1] * N
        for j in range(N):
            ob[j] += at[j]
    for t in range(T - 2, -1, -1):
        em = &emit_t[X[a + t + 1], 0]
        for j in range(N):
            u[j] = em[j] * beta[j]
        at = alpha + t * N
        z = 0.0
        sv = 0.0
        for i in range(N):
            row = &transmat[i, 0]
            acc = row[0] * u[0]
            for j in range(1, N):
                acc = acc + row[j] * u[j]
            v[i] = acc
            z = z + <real>(at[i] * acc)
            sv = sv + acc
        iz = 1.0 / z if z > 0.0 else 0.0
        isv = 1.0 / sv if sv > 0.0 else 0.0
        if want_stats:
            for i in range(N):
                w = at[i] * iz
                if w != 0:
                    tr = trans_raw + i * N
                    for j in range(N):
                        tr[j] += w * u[j]
        for i in range(N):
            beta[i] = <real>(v[i] * isv)
            at[i] = <real>(<real>(at[i] * v[i]) * iz)
        if want_stats and obs_acc != NULL:
            ob = obs_acc + X[a + t] * N
            for i in range(N):
                ob[i] += at[i]
    if want_stats:
        for i in range(N):
            start_acc[i] += alpha[i]


def lockstep_plan(const int64_t[::1] offsets, Py_ssize_t N, Py_ssize_t n_chunks,
                   int64_t block_elems, Py_ssize_t max_lanes):
    """Sequences sorted by length cut into lockstep blocks, blocks into chunks, and each
    chunk's scratch sizes (``_numba.lockstep_plan``): (order, bstart, cbound, sizes)."""
    cdef Py_ssize_t S = offsets.shape[0] - 1, n, p, q, nb, k, c, C, L, lanes
    cdef int64_t T0, limit, total, acc, Tmax
    lens_arr = np.ascontiguousarray(np.diff(np.asarray(offsets)), dtype=np.int64)
    first = int(np.count_nonzero(lens_arr == 0))
    order_arr = np.ascontiguousarray(np.argsort(lens_arr, kind="stable")[first:], dtype=np.int64)
    cdef const int64_t[::1] lens = lens_arr
    cdef const int64_t[::1] order = order_arr
    n = order.shape[0]
    bstart_arr = np.empty(n + 1, np.int64)
    cdef int64_t[::1] bstart = bstart_arr
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
    bstart_arr = bstart_arr[:nb + 1].copy()
    bstart = bstart_arr
    C = max(1, min(n_chunks, nb))
    total = 0
    for k in range(n):
        total += lens[order[k]]
    cbound_arr = np.empty(C + 1, np.int64)
    cdef int64_t[::1] cbound = cbound_arr
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
    sizes_arr = np.zeros((C, 3), np.int64)
    cdef int64_t[:, ::1] sizes = sizes_arr
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
    return order_arr, bstart_arr, cbound_arr, sizes_arr


cdef inline double lazy_scale_bits(size_t itemsize) noexcept nogil:
    """Bits K of the lockstep passes' power-of-two rescaling (``_numba._lazy_scale_bits``)."""
    return 24.0 if itemsize == 4 else 256.0


cdef inline void lanes_matmul(const real* m, const real* x, real* y, Py_ssize_t N,
                              Py_ssize_t L) noexcept nogil:
    """y (N, L) = m (N, N) x (N, L), row-major, lanes innermost (``_numba._lanes_matmul``)."""
    cdef Py_ssize_t i, j, l
    cdef real mij
    cdef real* yi
    cdef const real* xj
    for i in range(N):
        yi = y + i * L
        for l in range(L):
            yi[l] = 0
        for j in range(N):
            mij = m[i * N + j]
            xj = x + j * L
            for l in range(L):
                yi[l] = yi[l] + mij * xj[l]


cdef inline void gemm_nn(int m, int n, int k, const real* A, int lda, const real* B, int ldb,
                         real* C, int ldc) noexcept nogil:
    """C (m, n) = A (m, k) @ B (k, n), all row-major (BLAS sees the transposes, column-major)."""
    cdef char no = b'N'
    cdef float one_f = 1, zero_f = 0
    cdef double one_d = 1, zero_d = 0
    if real is float:
        sgemm(&no, &no, &n, &m, &k, &one_f, <float*>B, &ldb, <float*>A, &lda, &zero_f,
              <float*>C, &ldc)
    else:
        dgemm(&no, &no, &n, &m, &k, &one_d, <double*>B, &ldb, <double*>A, &lda, &zero_d,
              <double*>C, &ldc)


cdef void lockstep_forward(const sym_t[::1] X, const int64_t[::1] offsets, const int64_t* seqs,
                           Py_ssize_t T0, Py_ssize_t L, const real[::1] startprob, const real* A,
                           const real* At, const real* E, int64_t* xs, real* alpha, double* p,
                           double* e, double* extra, double* sv, real* f,
                           Py_ssize_t N, bint far) noexcept nogil:
    """Forward of the L sequences ``seqs`` over their first T0 steps in lockstep
    (``_numba._lockstep_forward``): ``xs`` (T0, L) the symbols, ``alpha`` (T0, N, L) every α_t
    unnormalised, a lane rescaled by 2^K when its sum falls below 2^-K; on return p[l] is the
    sum of α_{T0-1} and log P(first T0 symbols) = log p - e K ln 2 + extra.  ``far``: the
    emission table is too large for cache, so each lane's row is fetched
    ESTEP_PREFETCH_STEPS steps ahead."""
    cdef Py_ssize_t t, t0, t1, j, l, a, nlow, nbad, NL = N * L
    cdef double K2 = lazy_scale_bits(sizeof(real)), up, low, tiny, v
    cdef real pj
    cdef real* cur
    cdef real* cj
    cdef int64_t* xt
    cdef bint lw
    cdef Py_ssize_t last = X.shape[0] - 1
    t0 = 0
    while t0 < T0:  # tiles of steps (``_numba.ESTEP_XS_STEPS``)
        t1 = min(T0, t0 + ESTEP_XS_STEPS)
        for l in range(L):
            a = offsets[seqs[l]]
            # the symbols one tile ahead (as numba): L streams outrun the hardware prefetcher
            # (clamped to X: a pointer past an array is undefined in C, if harmless in numba)
            fh6_prefetch(&X[min(a + t1 + ESTEP_XS_STEPS, last)])
            fh6_prefetch(&X[min(a + t1 + 2 * ESTEP_XS_STEPS - 1, last)])
            for t in range(t0, t1):
                xs[t * L + l] = X[a + t]
        t0 = t1
    for l in range(L):
        e[l] = 0.0
        extra[l] = 0.0
    up = ldexp(1.0, <int>K2)
    low = 1.0 / up
    tiny = low * low
    for t in range(T0):
        xt = xs + t * L
        cur = alpha + t * NL
        if far and t + ESTEP_PREFETCH_STEPS < T0:
            for l in range(L):
                prefetch_row(E + xt[ESTEP_PREFETCH_STEPS * L + l] * N, N * sizeof(real))
        if t == 0:
            for j in range(N):
                pj = startprob[j]
                for l in range(L):
                    cur[j * L + l] = pj * E[xt[l] * N + j]
        else:
            if N >= ESTEP_GEMM_MIN_N:
                gemm_nn(<int>N, <int>L, <int>N, At, <int>N, alpha + (t - 1) * NL, <int>L, cur,
                        <int>L)
            else:
                lanes_matmul(At, alpha + (t - 1) * NL, cur, N, L)
            for j in range(N):
                for l in range(L):
                    cur[j * L + l] = cur[j * L + l] * E[xt[l] * N + j]
        for l in range(L):
            sv[l] = 0.0
        for j in range(N):
            cj = cur + j * L
            for l in range(L):
                sv[l] += cj[l]
        nlow = 0
        nbad = 0
        for l in range(L):
            v = sv[l]
            lw = v < low
            f[l] = <real>(up if lw else 1.0)
            e[l] += 1.0 if lw else 0.0
            nlow += 1 if lw else 0
            nbad += 1 if v < tiny else 0
        if nlow > 0:
            for j in range(N):
                for l in range(L):
                    cur[j * L + l] = cur[j * L + l] * f[l]
        if nbad > 0:  # rare: a sum too small for one rescaling, or zero
            for l in range(L):
                v = sv[l]
                if v < tiny:
                    e[l] -= 1.0
                    if v > 0.0:
                        extra[l] += log(v)
                        for j in range(N):
                            cur[j * L + l] = <real>(cur[j * L + l] / up / v)
                    else:
                        extra[l] = -INFINITY
                        for j in range(N):
                            cur[j * L + l] = 0
    cur = alpha + (T0 - 1) * NL
    for l in range(L):
        p[l] = 0.0
    for j in range(N):
        for l in range(L):
            p[l] += cur[j * L + l]


cdef inline Py_ssize_t xi_steps(Py_ssize_t N, Py_ssize_t L) noexcept nogil:
    """Steps gathered per Σξ GEMM ((N, K·L) x (K·L, N)) with L lanes (``_numba._xi_steps``)."""
    return max(1, min(<Py_ssize_t>ESTEP_XI_COLS, ESTEP_GEMM_MAX_MADDS // (N * N)) // L)


cdef inline void xi_flush(const double* pbuf, const double* ubuf, Py_ssize_t cols, double* tnn,
                          double* tr, Py_ssize_t N) noexcept nogil:
    """Σξ raw (N, N) += P Uᵀ over P, U (N, cols), row-major: one GEMM into ``tnn``, then added.
    The very BLAS call numba's ``np.dot(pbuf, ubuf.T, tnn)`` makes in ``_numba._xi_flush``
    (same k, leading dimensions, alpha, beta), so that both round alike: OpenBLAS rounds a
    product padded with zero columns differently (odd N), and a BLAS may add C into the sums
    (beta = 1) between blocks of k."""
    cdef char tn = b'T', no = b'N'
    cdef int n = <int>N, kc = <int>cols
    cdef double one = 1, zero = 0
    cdef Py_ssize_t i
    # column-major: tnnᵀ = U Pᵀ
    dgemm(&tn, &no, &n, &n, &kc, &one, <double*>ubuf, &kc, <double*>pbuf, &kc, &zero, tnn, &n)
    for i in range(N * N):
        tr[i] += tnn[i]


cdef void lockstep_block(const sym_t[::1] X, const int64_t[::1] offsets, const int64_t* seqs,
                         Py_ssize_t L, const real[::1] startprob, const real[:, ::1] transmat,
                         const real* At, const real[:, ::1] emit_t, real* abuf, int64_t* xbuf,
                         real* tail, real* fbuf, double* dbuf, double* st, double* tr,
                         double* ob, real[:, ::1] gamma, double[::1] out, bint want_stats,
                         bint want_gamma) noexcept nogil:
    """Forward and backward of the L sequences ``seqs`` of one block, shortest first
    (``_numba._lockstep_block``): the first T0 steps in lockstep, lanes innermost; a longer
    lane goes forward alone from its α̂ at T0-1 and backward alone (``backward_seq``) down to
    T0-1, handing its β to the lockstep backward.  Σξ per lane below ESTEP_GEMM_MIN_N states,
    from it on gathered as columns into one GEMM per K steps."""
    cdef Py_ssize_t N = transmat.shape[0], T0, NL, K, kg, t, i, j, l, k, R, a, b, s, kcol, c0
    cdef bint gemm = N >= ESTEP_GEMM_MIN_N, far
    cdef const real* A = &transmat[0, 0]
    cdef const real* E = &emit_t[0, 0]
    cdef const real* erow
    cdef real* alpha
    cdef real* at
    cdef real* u
    cdef real* v
    cdef real* beta
    cdef real* tmp
    cdef real* bb
    cdef real* bu
    cdef real* bv
    cdef real* rows
    cdef real* prev
    cdef real* grow
    cdef real* ai_
    cdef real* vi
    cdef real* uj
    cdef real* bi
    cdef double* gi
    cdef double* xr
    cdef int64_t* xs
    cdef int64_t* xt
    cdef double* g
    cdef double* p
    cdef double* e
    cdef double* extra
    cdef double* live
    cdef double* z
    cdef double* sv
    cdef double* start_discard
    cdef double* pbuf
    cdef double* ubuf
    cdef double* xacc
    cdef double* tnn
    cdef double* orow
    cdef double K2, up, low, ssum, rs, sk, rk, w, zl, sl, ll, acc
    cdef real ai, wr
    cdef bint okz
    cdef LL lla
    T0 = offsets[seqs[0] + 1] - offsets[seqs[0]]
    NL = N * L
    alpha = abuf
    xs = xbuf
    u = fbuf
    v = fbuf + NL
    beta = fbuf + 2 * NL
    tmp = fbuf + 3 * NL
    bb = tmp + N
    bu = tmp + 2 * N
    bv = tmp + 3 * N
    g = dbuf
    p = dbuf + NL
    e = p + L
    extra = p + 2 * L
    live = p + 3 * L
    z = p + 4 * L
    sv = p + 5 * L
    start_discard = p + 6 * L
    # Σξ columns: the T0-1 lockstep backward steps go in groups of K (the last one shorter), P
    # and U of a group (N, kg·L) row-major: exactly the columns its GEMM reads (as numba)
    K = xi_steps(N, L) if gemm else 1
    kg = min(K, T0 - 1)
    pbuf = start_discard + N
    ubuf = pbuf + N * K * L
    xacc = ubuf + N * K * L
    tnn = xacc  # (N, N): with a GEMM, xacc (N, N, L) is unused
    if want_stats and not gemm:
        for k in range(N * N * L):
            xacc[k] = 0.0

    # f (real, L) lives in u, unused until the backward
    far = emit_t.shape[0] * N * sizeof(real) > ESTEP_FAR_TABLE_BYTES
    lockstep_forward(X, offsets, seqs, T0, L, startprob, A, At, E, xs, alpha, p, e, extra, z,
                     u, N, far)

    # step T0-1: lanes longer than T0 go forward alone, then backward alone down to T0-1
    K2 = lazy_scale_bits(sizeof(real))
    at = alpha + (T0 - 1) * NL
    for l in range(L):
        s = seqs[l]
        a = offsets[s]
        b = offsets[s + 1]
        R = b - a - T0 + 1
        ssum = p[l]
        lla.p = 1.0
        lla.e = 0.0
        lla.extra = -INFINITY
        if extra[l] != -INFINITY and ssum > 0.0:
            lla.extra = log(ssum) - e[l] * K2 * LN2 + extra[l]
        rows = &gamma[a + T0 - 1, 0] if want_gamma else tail
        if R > 1 and lla.extra != -INFINITY:
            rs = 1.0 / ssum
            for j in range(N):
                rows[j] = <real>(at[j * L + l] * rs)
            for k in range(1, R):
                prev = rows + (k - 1) * N
                for j in range(N):
                    tmp[j] = 0
                for i in range(N):
                    ai = prev[i]
                    if ai != 0:
                        erow = A + i * N
                        for j in range(N):
                            tmp[j] = tmp[j] + ai * erow[j]
                erow = E + X[a + T0 - 1 + k] * N
                sk = 0.0
                for j in range(N):
                    wr = tmp[j] * erow[j]
                    rows[k * N + j] = wr
                    sk += wr
                ll_push(&lla, sk)
                if sk == 0.0:
                    break
                rk = 1.0 / sk
                for j in range(N):
                    rows[k * N + j] = <real>(rows[k * N + j] * rk)
        ll = ll_value(&lla)
        out[s] = ll
        live[l] = 0.0 if ll == -INFINITY else 1.0
        if R > 1 and ll != -INFINITY:
            backward_seq(X, a + T0 - 1, b, transmat, emit_t, rows, bb, bu, bv, start_discard,
                         tr, ob, want_stats)
            for j in range(N):
                g[j * L + l] = rows[j]
                beta[j * L + l] = bb[j]
        else:
            if want_gamma and R > 1:
                grow = &gamma[a + T0, 0]
                for k in range((R - 1) * N):
                    grow[k] = 0
            w = live[l] / ssum if live[l] != 0.0 else 0.0
            for j in range(N):
                g[j * L + l] = at[j * L + l] * w
                beta[j * L + l] = <real>(1.0 / N)
            if want_stats and ob != NULL:
                orow = ob + xs[(T0 - 1) * L + l] * N
                for j in range(N):
                    orow[j] += g[j * L + l]
            if want_gamma:
                grow = &gamma[a + T0 - 1, 0]
                for j in range(N):
                    grow[j] = <real>g[j * L + l]

    # steps T0-2 .. 0 in lockstep; β is kept as A(e∘β) rescaled by powers of two only
    up = ldexp(1.0, <int>K2)
    low = 1.0 / up
    kcol = 0
    for t in range(T0 - 2, -1, -1):
        xt = xs + (t + 1) * L
        if far and t + 1 >= ESTEP_PREFETCH_STEPS:
            for l in range(L):
                prefetch_row(E + xt[l - ESTEP_PREFETCH_STEPS * L] * N, N * sizeof(real))
                if want_gamma and t >= ESTEP_PREFETCH_STEPS:
                    prefetch_row(&gamma[offsets[seqs[l]] + t - ESTEP_PREFETCH_STEPS, 0],
                                 N * sizeof(real))
        for j in range(N):
            for l in range(L):
                u[j * L + l] = E[xt[l] * N + j] * beta[j * L + l]
        if gemm:
            gemm_nn(<int>N, <int>L, <int>N, A, <int>N, u, <int>L, v, <int>L)
        else:
            lanes_matmul(A, u, v, N, L)
        at = alpha + t * NL
        for l in range(L):
            z[l] = 0.0
            sv[l] = 0.0
        for i in range(N):
            ai_ = at + i * L
            vi = v + i * L
            for l in range(L):
                z[l] += ai_[l] * vi[l]
                sv[l] += vi[l]
        for l in range(L):
            zl = z[l]
            okz = zl > 0.0
            z[l] = (live[l] if okz else 0.0) / (zl if okz else 1.0)  # now 1/Z (0: no weight)
            sl = sv[l]  # now the factor taking Σβ back into [2^-K, 2^K]
            sv[l] = up if sl < low else (low if sl > up else 1.0)
        if want_stats:
            if gemm:
                c0 = kcol * L
                for i in range(N):
                    for l in range(L):
                        pbuf[i * kg * L + c0 + l] = at[i * L + l] * z[l]
                        ubuf[i * kg * L + c0 + l] = u[i * L + l]
                kcol += 1
                if kcol == kg:
                    xi_flush(pbuf, ubuf, kg * L, tnn, tr, N)
                    kg = min(K, t)  # steps left: t-1 .. 0
                    kcol = 0
            else:
                for i in range(N):
                    ai_ = at + i * L
                    gi = g + i * L
                    for l in range(L):
                        gi[l] = ai_[l] * z[l]
                    for j in range(N):
                        xr = xacc + (i * N + j) * L
                        uj = u + j * L
                        for l in range(L):
                            xr[l] += gi[l] * uj[l]
        for i in range(N):
            ai_ = at + i * L
            vi = v + i * L
            gi = g + i * L
            bi = beta + i * L
            for l in range(L):
                gi[l] = ai_[l] * vi[l] * z[l]
                bi[l] = <real>(vi[l] * sv[l])
        if want_stats and ob != NULL:
            xt = xs + t * L
            for l in range(L):
                orow = ob + xt[l] * N
                for i in range(N):
                    orow[i] += g[i * L + l]
        if want_gamma:
            for l in range(L):
                grow = &gamma[offsets[seqs[l]] + t, 0]
                for i in range(N):
                    grow[i] = <real>g[i * L + l]
    if want_stats:
        if not gemm:  # (with a GEMM, the last group was flushed in the loop)
            for i in range(N):
                for j in range(N):
                    acc = 0.0
                    for l in range(L):
                        acc += xacc[(i * N + j) * L + l]
                    tr[i * N + j] += acc
        for i in range(N):
            acc = 0.0
            for l in range(L):
                acc += g[i * L + l]
            st[i] += acc


def lockstep_run(const sym_t[::1] X, const int64_t[::1] offsets, const real[::1] startprob,
                 const real[:, ::1] transmat, const real[:, ::1] emit_t,
                 const int64_t[::1] order, const int64_t[::1] bstart, Py_ssize_t k0,
                 Py_ssize_t k1, const int64_t[::1] sizes, double[::1] st, double[:, ::1] tr,
                 double[:, ::1] ob, real[:, ::1] gamma, double[::1] out, bint want_stats,
                 bint want_gamma):
    """Blocks ``k0:k1`` of a ``lockstep_plan`` through ``lockstep_block``; a block of one
    sequence runs ``forward_seq`` + ``backward_seq`` (``_numba.lockstep_run``).  Results are
    in the arguments."""
    cdef Py_ssize_t N = startprob.shape[0], LM = ESTEP_LANES
    cdef Py_ssize_t s, k, a, b, i, XC, n_f, n_d
    cdef double ll
    tt_arr = np.ascontiguousarray(np.asarray(transmat).T)
    cdef const real[:, ::1] transmat_t = tt_arr
    cdef const real* At = &transmat_t[0, 0]
    cdef real* abuf
    cdef int64_t* xbuf
    cdef real* tail
    cdef real* fbuf
    cdef real* one
    cdef double* dbuf
    cdef double* stc = &st[0]
    cdef double* trc = &tr[0, 0]
    cdef double* obc = &ob[0, 0] if ob.shape[0] > 0 else NULL  # none: γ to ``gamma`` only
    # a block of L lanes gathers K·L <= max(L, ESTEP_XI_COLS) Σξ columns
    XC = max(LM, min(<Py_ssize_t>ESTEP_XI_COLS, ESTEP_GEMM_MAX_MADDS // (N * N)))
    n_f = 3 * N * LM + 4 * N
    # xacc (N, N, L) only without a GEMM; with one, its place holds tnn (N, N): scratch sized
    # to the work (N=3000 would otherwise ask 4.6 GB per thread)
    n_d = N * LM + 6 * LM + N + 2 * N * XC + N * N * (LM if N < ESTEP_GEMM_MIN_N else 1)
    with nogil:
        abuf = <real*>malloc(max(1, sizes[0]) * sizeof(real))
        xbuf = <int64_t*>malloc(max(1, sizes[1]) * sizeof(int64_t))
        tail = <real*>malloc(max(1, sizes[2]) * N * sizeof(real))
        fbuf = <real*>malloc(n_f * sizeof(real))
        dbuf = <double*>malloc(n_d * sizeof(double))
        if abuf == NULL or xbuf == NULL or tail == NULL or fbuf == NULL or dbuf == NULL:
            free(abuf)
            free(xbuf)
            free(tail)
            free(fbuf)
            free(dbuf)
            with gil:
                raise MemoryError("lockstep_run: no memory for the block scratch")
        for k in range(k0, k1):
            if bstart[k + 1] - bstart[k] > 1:
                lockstep_block(X, offsets, &order[bstart[k]], bstart[k + 1] - bstart[k],
                               startprob, transmat, At, emit_t, abuf, xbuf, tail, fbuf,
                               dbuf, stc, trc, obc, gamma, out, want_stats, want_gamma)
                continue
            s = order[bstart[k]]
            a = offsets[s]
            b = offsets[s + 1]
            one = &gamma[a, 0] if want_gamma else tail
            ll = forward_seq(X, a, b, startprob, transmat, emit_t, one, N, fbuf)
            out[s] = ll
            if ll == -INFINITY:
                if want_gamma:
                    for i in range((b - a) * N):
                        one[i] = 0
                continue
            backward_seq(X, a, b, transmat, emit_t, one, fbuf, fbuf + N, fbuf + 2 * N,
                         stc, trc, obc, want_stats)
        free(abuf)
        free(xbuf)
        free(tail)
        free(fbuf)
        free(dbuf)
