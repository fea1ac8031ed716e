# Scoring under many models at once: forward_loglik_models (as _numba/multi.py, whose docstring
# has the design and the table layouts).  Included by _cython.pyx.  Each (sequence, model) chain
# does forward_loglik's operations in its order, so the scores are numba's and score_sequences'
# bit for bit (N <= SMALL_MAX_N); N is a run-time value here and each pass runs over the lanes.

cdef enum:
    MULTI_LANES = 16  # as _numba/multi.py and fasthw6.hmm.multi


cdef void multi_run(const sym_t[::1] X, const int64_t* pos, Py_ssize_t nslots, Py_ssize_t Kg,
                    Py_ssize_t ta, Py_ssize_t tb, const real* sp, const real* A, const real* E,
                    Py_ssize_t N, real* em, Py_ssize_t TT, real* alpha, real* acc, double* r,
                    int64_t* k) noexcept nogil:
    """Steps ta..tb-1 of the sequences at pos[0:nslots] (``_numba.multi._run``): with one slot
    a step reads its row of ``E`` in place, with several the tile's rows are gathered first."""
    cdef Py_ssize_t W = MULTI_LANES, NW = N * MULTI_LANES, t0, nt, tt, s, lo, hi, j, i, l
    cdef Py_ssize_t first
    cdef const real* row
    cdef const real* e
    cdef double sm
    t0 = ta
    while t0 < tb:
        nt = min(TT, tb - t0)
        if nslots > 1:  # several symbols per step: gather the tile's rows (one slot: in place)
            for tt in range(nt):
                for s in range(nslots):
                    row = E + <Py_ssize_t>X[pos[s] + t0 + tt] * NW
                    lo = s * Kg
                    hi = W if s == nslots - 1 else lo + Kg
                    for j in range(N):
                        for l in range(lo, hi):
                            em[tt * NW + j * W + l] = row[j * W + l]
        first = 0
        if t0 == 0:
            e = em if nslots > 1 else E + <Py_ssize_t>X[pos[0]] * NW
            for j in range(N):
                for l in range(W):
                    alpha[j * W + l] = sp[j * W + l] * e[j * W + l]
            first = 1
        for tt in range(first, nt):
            e = em + tt * NW if nslots > 1 else E + <Py_ssize_t>X[pos[0] + t0 + tt] * NW
            for l in range(W):
                sm = alpha[l]
                for i in range(1, N):
                    sm = sm + alpha[i * W + l]
                r[l] = pow2_scale(sm, &k[l])
            for j in range(N):
                for l in range(W):
                    acc[j * W + l] = A[j * W + l] * alpha[l]
                for i in range(1, N):
                    for l in range(W):
                        acc[j * W + l] = acc[j * W + l] + A[(i * N + j) * W + l] * alpha[i * W + l]
                for l in range(W):
                    acc[j * W + l] = <real>(acc[j * W + l] * (e[j * W + l] * r[l]))
            memcpy(alpha, acc, NW * sizeof(real))
        t0 = t0 + TT


cdef inline double multi_finish(const real* alpha, const int64_t* k, Py_ssize_t l,
                                Py_ssize_t N) noexcept nogil:
    cdef double s = alpha[l]
    cdef Py_ssize_t i
    for i in range(1, N):
        s = s + alpha[i * MULTI_LANES + l]
    return loglik_pow2(s, k[l])


def forward_loglik_models(const sym_t[::1] X, const int64_t[::1] offsets,
                          const int64_t[::1] order, Py_ssize_t Ls, Py_ssize_t Kg,
                          const real[:, ::1] sp_rep, const real[:, ::1] A_rep,
                          const real[:, :, ::1] E_rep, double[:, ::1] out):
    """As _numba.forward_loglik_models: scores of the sequences ``order`` under every model into
    ``out[seq, model]``; returns -1, or the position of a symbol outside [0, M)."""
    cdef Py_ssize_t W = MULTI_LANES, S = order.shape[0], G = sp_rep.shape[0]
    cdef Py_ssize_t N = sp_rep.shape[1] // MULTI_LANES, K = out.shape[1], NW
    cdef Py_ssize_t TT, b0, L, T, s, g, nq, q, j, l, a, b, base, seq
    cdef int64_t M = E_rep.shape[1], p, bad = -1
    cdef real* em
    cdef real* alpha
    cdef real* keep
    cdef real* acc
    cdef double* r
    cdef int64_t* k
    cdef int64_t* kkeep
    cdef int64_t* pos
    cdef int64_t one
    if S == 0:
        return -1
    if sp_rep.shape[1] != N * W:
        raise ValueError(f"forward_loglik_models: tables of {sp_rep.shape[1] // N} lanes, "
                         f"this build has {W}")
    NW = N * W
    TT = max(2, min(16, 16384 // (8 * NW)))  # steps per tile, as numba (TILE, TILE_BYTES)
    with nogil:
        em = <real*>calloc(TT * NW, sizeof(real))
        alpha = <real*>calloc(NW, sizeof(real))
        keep = <real*>calloc(NW, sizeof(real))
        acc = <real*>calloc(NW, sizeof(real))
        r = <double*>malloc(W * sizeof(double))
        k = <int64_t*>calloc(2 * W + Ls, sizeof(int64_t))
        if em == NULL or alpha == NULL or keep == NULL or acc == NULL or r == NULL or k == NULL:
            free(em)
            free(alpha)
            free(keep)
            free(acc)
            free(r)
            free(k)
            with gil:
                raise MemoryError("forward_loglik_models: no memory for the block scratch")
        kkeep = k + W
        pos = k + 2 * W
        b0 = 0
        while b0 < S:
            L = min(Ls, S - b0)
            p = first_bad_symbol(X, offsets, &order[b0], L, M)
            if p >= 0:
                bad = p
                b0 = b0 + Ls
                continue
            T = offsets[order[b0] + 1] - offsets[order[b0]]
            for s in range(Ls):
                pos[s] = offsets[order[b0 + min(s, L - 1)]]
            for g in range(G):
                nq = min(Kg, K - g * Kg)
                for l in range(W):
                    k[l] = 0
                multi_run(X, pos, Ls, Kg, 0, T, &sp_rep[g, 0], &A_rep[g, 0], &E_rep[g, 0, 0],
                          N, em, TT, alpha, acc, r, k)
                memcpy(keep, alpha, NW * sizeof(real))
                memcpy(kkeep, k, W * sizeof(int64_t))
                for s in range(L):
                    seq = order[b0 + s]
                    a = offsets[seq]
                    b = offsets[seq + 1]
                    base = s * Kg
                    if b - a == T:
                        for q in range(nq):
                            out[seq, g * Kg + q] = multi_finish(keep, kkeep, base + q, N)
                        continue
                    for j in range(N):
                        for q in range(Kg):
                            alpha[j * W + q] = keep[j * W + base + q]
                    for q in range(Kg):
                        k[q] = kkeep[base + q]
                    one = a
                    multi_run(X, &one, 1, Kg, T, b - a, &sp_rep[g, 0], &A_rep[g, 0],
                              &E_rep[g, 0, 0], N, em, TT, alpha, acc, r, k)
                    for q in range(nq):
                        out[seq, g * Kg + q] = multi_finish(alpha, k, q, N)
            b0 = b0 + Ls
        free(em)
        free(alpha)
        free(keep)
        free(acc)
        free(r)
        free(k)
    return bad
