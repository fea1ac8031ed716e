# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython HMM kernels (backend ``"cython"``): the algorithms of ``_numba.py``, same names and
signatures (see its docstring for the conventions: concatenated symbols + offsets, transposed
emissions, α̂ normalised every step with the log-likelihood kept as a float64 mantissa and a
count of 2^512 factors, backward messages normalised to sum 1, Σξ accumulated as outer
products and multiplied by A once).  Loops run without the GIL; each call is one piece of a
batch, and the pieces run on Python threads (``fasthw6._parallel``); nothing is checked here, ``fasthw6.hmm.api`` validated it all,
except the symbols' range in ``forward_loglik``, which checks each block before scoring it
(as the numba kernel; see there).
"""
import numpy as np

cimport cython
from libc.math cimport INFINITY, ldexp, log
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy
from scipy.linalg.cython_blas cimport dgemm, sgemm

cimport openmp

ctypedef fused sym_t:  # the two symbol types of fasthw6.hmm._checks._CANON
    uint8_t
    int64_t

ctypedef fused real:
    float
    double

ctypedef fused bp_t:
    int8_t
    int16_t
    int32_t

cdef double TWO_M512 = 2.0 ** -512
cdef double TWO_P512 = 2.0 ** 512
cdef double SMALL = 2.0 ** -400
cdef double LN2_512 = 512.0 * 0.6931471805599453
cdef double LN2 = 0.6931471805599453
cdef enum:
    LANES = 64  # as _numba.LANES and GEMM_LANES
    SMALL_MAX_N = 8  # as _numba.SMALL_MAX_N: above it a step is one GEMM, lane-major


def n_threads():
    """Threads a parallel kernel of this backend runs on now."""
    return openmp.omp_get_max_threads()


cdef inline (int64_t, int64_t) span_range(const sym_t[::1] X, Py_ssize_t a, Py_ssize_t b,
                                          int64_t mn, int64_t mx) noexcept nogil:
    """As _numba._span_range: (min, max) of mn, mx and X[a:b] in one pass."""
    cdef Py_ssize_t i
    cdef int64_t v
    for i in range(a, b):
        v = X[i]
        mn = v if v < mn else mn
        mx = v if v > mx else mx
    return mn, mx


def symbol_range(const sym_t[::1] X, Py_ssize_t n_chunks, int64_t[::1] out):
    """Smallest and largest symbol of X (non-empty) into out[0], out[1]: one pass, chunks in
    parallel (``n_chunks`` <= len(X), so no chunk is empty)."""
    cdef Py_ssize_t n = X.shape[0], c, a, b
    cdef (int64_t, int64_t) r
    lo = np.empty(n_chunks, np.int64)
    hi = np.empty(n_chunks, np.int64)
    cdef int64_t[::1] lo_v = lo, hi_v = hi
    with nogil:
        for c in range(n_chunks):
            a = c * n // n_chunks
            b = (c + 1) * n // n_chunks
            r = span_range(X, a, b, X[a], X[a])
            lo_v[c] = r[0]
            hi_v[c] = r[1]
    out[0] = lo.min()
    out[1] = hi.max()
    return out


cdef struct LL:
    double p
    double e
    double extra


cdef inline void ll_push(LL* a, double s) noexcept nogil:
    if s >= SMALL:
        a.p *= s
        if a.p < TWO_M512:
            a.p *= TWO_P512
            a.e += 1.0
    elif s > 0.0:
        a.extra += log(s)
    else:
        a.extra = -INFINITY


cdef inline double ll_value(LL* a) noexcept nogil:
    if a.extra == -INFINITY:
        return -INFINITY
    return log(a.p) - a.e * LN2_512 + a.extra


def _bounds(const int64_t[::1] offsets, Py_ssize_t n_chunks):
    """Chunk boundaries over sequences with about equal symbol counts (as ``_numba._chunks``)."""
    cdef Py_ssize_t S = offsets.shape[0] - 1
    n_chunks = max(1, min(n_chunks, S))
    total = offsets[S]
    off = np.asarray(offsets)
    bounds = np.empty(n_chunks + 1, np.int64)
    bounds[0] = 0
    for c in range(1, n_chunks):
        b = int(np.searchsorted(off, (total * c) // n_chunks))
        bounds[c] = max(bounds[c - 1], min(b, S))
    bounds[n_chunks] = S
    return bounds


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
    if want_stats:
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
        if want_stats:
            ob = obs_acc + X[a + t] * N
            for i in range(N):
                ob[i] += at[i]
    if want_stats:
        for i in range(N):
            start_acc[i] += alpha[i]


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


cdef double finish_one(const sym_t[::1] X, Py_ssize_t a, Py_ssize_t b, const real* at,
                       const real[:, ::1] emit_t, real* cur, real* nxt, int64_t k,
                       Py_ssize_t N) noexcept nogil:
    """One sequence alone over X[a:b] from unscaled α in ``cur`` (``_numba._finish_one``)."""
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
        row = &emit_t[X[t], 0]
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
    return loglik_pow2(s, k)


cdef void lanes_small(const sym_t[::1] X, const int64_t* pos, Py_ssize_t T,
                      const real[::1] startprob, const real* A, const real[:, ::1] emit_t,
                      real* em, real* alpha, real* acc, double* r, int64_t* k,
                      Py_ssize_t N) noexcept nogil:
    """LANES sequences in lockstep, α state-major (N, LANES), lanes innermost
    (``_numba._make_lanes_small``; here N is a run-time value and each pass runs over lanes)."""
    cdef Py_ssize_t W = LANES, t, i, j, l
    cdef const real* row
    cdef double s
    for t in range(T):
        for l in range(W):
            row = &emit_t[X[pos[l] + t], 0]
            for j in range(N):
                em[j * W + l] = row[j]
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
                      real* alpha, real* nxt, int64_t* k, Py_ssize_t N) noexcept nogil:
    """LANES sequences in lockstep, α lane-major (LANES, N), each step one GEMM α A
    (``_numba._lanes_gemm``); returns the buffer holding the last α."""
    cdef Py_ssize_t W = LANES, t, j, l
    cdef const real* row
    cdef real* o
    cdef real* sw
    cdef double rl
    for l in range(W):
        row = &emit_t[X[pos[l]], 0]
        for j in range(N):
            alpha[l * N + j] = startprob[j] * row[j]
    for t in range(1, T):
        gemm_rows(<int>W, <int>N, alpha, A, nxt)
        for l in range(W):
            rl = pow2_scale(sum4(alpha + l * N, N), &k[l])
            row = &emit_t[X[pos[l] + t], 0]
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
                      int64_t* pos, double[::1] out) noexcept nogil:
    """Sequences ``idx`` (non-empty, shortest first) in lockstep over the shortest one's
    length, then each alone (``_numba._score_block``)."""
    cdef Py_ssize_t N = startprob.shape[0], W = LANES, T, l, j, a, b
    cdef real* em = buf
    cdef real* alpha = buf + N * W
    cdef real* nxt = buf + 2 * N * W
    cdef real* one = buf + 3 * N * W
    cdef real* two = one + N
    cdef real* cur
    T = offsets[idx[0] + 1] - offsets[idx[0]]
    for l in range(W):
        pos[l] = offsets[idx[l if l < L else L - 1]]
        k[l] = 0
    if N <= SMALL_MAX_N:
        lanes_small(X, pos, T, startprob, A, emit_t, em, alpha, nxt, r, k, N)
        cur = alpha
    else:
        cur = lanes_gemm(X, pos, T, startprob, A, emit_t, alpha, nxt, k, N)
    for l in range(L):
        a = offsets[idx[l]]
        b = offsets[idx[l] + 1]
        for j in range(N):
            one[j] = cur[j * W + l] if N <= SMALL_MAX_N else cur[l * N + j]
        out[idx[l]] = finish_one(X, a + T, b, At, emit_t, one, two, k[l], N)


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


def forward_loglik(const sym_t[::1] X, const int64_t[::1] offsets, const int64_t[::1] order,
                   const real[::1] startprob, const real[:, ::1] transmat,
                   const real[:, ::1] emit_t, double[::1] out):
    """As _numba.forward_loglik: scores of the sequences ``order`` into ``out``, blocks of LANES
    consecutive entries; returns -1, or the position of a symbol outside [0, M) (the blocks
    holding one are not scored)."""
    cdef Py_ssize_t N = startprob.shape[0], S = order.shape[0], W = LANES, s0, L
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
        buf = <real*>malloc((3 * N * W + 2 * N) * sizeof(real))
        r = <double*>malloc(W * sizeof(double))
        k = <int64_t*>malloc(2 * W * sizeof(int64_t))
        s0 = 0
        while s0 < S:
            L = min(W, S - s0)
            p = first_bad_symbol(X, offsets, &order[s0], L, M)
            if p >= 0:
                bad = p
            else:
                score_block(X, offsets, &order[s0], L, startprob, A, At, emit_t, buf, r, k,
                            k + W, out)
            s0 = s0 + W
        free(buf)
        free(r)
        free(k)
    return bad


cdef enum:
    ESTEP_LANES = 64  # as _numba.ESTEP_LANES: most sequences one E-step block advances in lockstep
    ESTEP_GEMM_MIN_N = 12  # as _numba: from this many states on, a block's steps are BLAS GEMMs
    ESTEP_XI_COLS = 256  # as _numba: most (step, lane) columns gathered per Σξ GEMM
    ESTEP_XS_STEPS = 16  # as _numba: steps per tile of the symbol transposition
    ESTEP_GEMM_MAX_MADDS = 1 << 18  # as _numba: OpenBLAS threads GEMMs above this size


def lockstep_plan(const int64_t[::1] offsets, Py_ssize_t N, Py_ssize_t n_chunks,
                   int64_t block_elems):
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
        lanes = min(<Py_ssize_t>ESTEP_LANES, max(1, block_elems // (T0 * N)))
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
                           Py_ssize_t N) noexcept nogil:
    """Forward of the L sequences ``seqs`` over their first T0 steps in lockstep
    (``_numba._lockstep_forward``): ``xs`` (T0, L) the symbols, ``alpha`` (T0, N, L) every α_t
    unnormalised, a lane rescaled by 2^K when its sum falls below 2^-K; on return p[l] is the
    sum of α_{T0-1} and log P(first T0 symbols) = log p - e K ln 2 + extra."""
    cdef Py_ssize_t t, t0, t1, j, l, a, nlow, nbad, NL = N * L
    cdef double K2 = lazy_scale_bits(sizeof(real)), up, low, tiny, v
    cdef real pj
    cdef real* cur
    cdef real* cj
    cdef int64_t* xt
    cdef bint lw
    t0 = 0
    while t0 < T0:  # tiles of steps (``_numba.ESTEP_XS_STEPS``)
        t1 = min(T0, t0 + ESTEP_XS_STEPS)
        for l in range(L):
            a = offsets[seqs[l]]
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
    cdef bint gemm = N >= ESTEP_GEMM_MIN_N
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
    lockstep_forward(X, offsets, seqs, T0, L, startprob, A, At, E, xs, alpha, p, e, extra, z,
                     u, N)

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
            if want_stats:
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
        if want_stats:
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
    cdef double* obc = &ob[0, 0]
    # a block of L lanes gathers K·L <= max(L, ESTEP_XI_COLS) Σξ columns
    XC = max(LM, min(<Py_ssize_t>ESTEP_XI_COLS, ESTEP_GEMM_MAX_MADDS // (N * N)))
    n_f = 3 * N * LM + 4 * N
    n_d = N * LM + 6 * LM + N + 2 * N * XC + N * N * LM
    with nogil:
        abuf = <real*>malloc(max(1, sizes[0]) * sizeof(real))
        xbuf = <int64_t*>malloc(max(1, sizes[1]) * sizeof(int64_t))
        tail = <real*>malloc(max(1, sizes[2]) * N * sizeof(real))
        fbuf = <real*>malloc(n_f * sizeof(real))
        dbuf = <double*>malloc(n_d * sizeof(double))
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


cdef Py_ssize_t VIT_LANES = 64  # as _numba: sequences in lockstep, lanes innermost
cdef Py_ssize_t VIT_LANES_MAX_N = 48  # from this many states on, one sequence at a time
cdef Py_ssize_t VIT_BLOCK_BYTES = 1 << 23  # cap on one thread's δ history (T, N, lanes)


cdef inline double dmax(double a, double b) noexcept nogil:
    return a if a >= b else b


cdef inline void vit_step_one(double* delta, double* best, bp_t* arg, const double* lA,
                              const double* em, bp_t* Bt, Py_ssize_t N) noexcept nogil:
    """As ``_numba._viterbi_step_one``: axpy form, ``>=`` keeps the largest maximising state."""
    cdef Py_ssize_t i, j
    cdef double di, w
    cdef const double* row
    for j in range(N):
        best[j] = -INFINITY
        arg[j] = 0
    for i in range(N):
        di = delta[i]
        row = lA + i * N
        for j in range(N):
            w = di + row[j]
            if w >= best[j]:
                best[j] = w
                arg[j] = <bp_t>i
    for j in range(N):
        delta[j] = best[j] + em[j]
        Bt[j] = arg[j]


cdef (double, Py_ssize_t) vit_tail(const sym_t[::1] X, Py_ssize_t a, Py_ssize_t b,
                                   Py_ssize_t t0, const double* lsp, const double* lA,
                                   const double* lem_t, Py_ssize_t N, double* delta,
                                   double* best, bp_t* arg, bp_t* B,
                                   int64_t[::1] states) noexcept nogil:
    """As ``_numba._viterbi_tail``: steps t0.. of X[a:b] with backpointers in B (row t at
    B + t*N); returns (log prob, state at step max(t0-1, 0))."""
    cdef Py_ssize_t t, j, k
    cdef double m
    cdef const double* em
    if t0 == 0:
        em = lem_t + <Py_ssize_t>X[a] * N
        for j in range(N):
            delta[j] = lsp[j] + em[j]
        t0 = 1
    for t in range(t0, b - a):
        vit_step_one(delta, best, arg, lA, lem_t + <Py_ssize_t>X[a + t] * N, B + t * N, N)
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
                    const double* lem_t, const double* lem, Py_ssize_t N, Py_ssize_t M,
                    double* D, Py_ssize_t Tb, int8_t* P, double* best, int64_t* sym,
                    int64_t* pos, int64_t* kk, int64_t* nk, double* bb, double* g, bp_t* B,
                    double* vec, double* bvec, bp_t* avec, int64_t[::1] states,
                    double[::1] out) noexcept nogil:
    """As ``_numba._viterbi_lanes``: D is (Tb, N, VIT_LANES), P (Tb, VIT_LANES), row-major."""
    cdef Py_ssize_t WS = VIT_LANES
    cdef Py_ssize_t W = min(WS, (L + 7) // 8 * 8)
    cdef Py_ssize_t Tl = Tb, l, s, t, i, j, a, b, k, kl
    cdef double* cur
    cdef double* prev
    cdef double* cj
    cdef const double* ej
    cdef const double* ai
    cdef const double* d0
    cdef const double* d1
    cdef const double* d2
    cdef const double* d3
    cdef double a0, a1, a2, a3, pj, v, c0, c1, c2, c3
    cdef (double, Py_ssize_t) r
    for l in range(L):
        s = order[s0 + l]
        Tl = min(Tl, offsets[s + 1] - offsets[s])
    for l in range(W):
        pos[l] = offsets[order[s0 + min(l, L - 1)]]
    for t in range(Tl):
        for l in range(W):
            sym[l] = X[pos[l] + t]
        cur = D + t * N * WS
        if t == 0:
            for j in range(N):
                pj = lsp[j]
                ej = lem + j * M
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
                ej = lem + j * M
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
        for j in range(N):
            for l in range(W):
                best[l] = -INFINITY
            i = 0
            while i + 4 <= N:
                a0 = lA[i * N + j]
                a1 = lA[(i + 1) * N + j]
                a2 = lA[(i + 2) * N + j]
                a3 = lA[(i + 3) * N + j]
                d0 = prev + i * WS
                d1 = d0 + WS
                d2 = d1 + WS
                d3 = d2 + WS
                for l in range(W):
                    best[l] = dmax(dmax(dmax(d0[l] + a0, d1[l] + a1),
                                        dmax(d2[l] + a2, d3[l] + a3)), best[l])
                i = i + 4
            if i + 2 <= N:
                a0 = lA[i * N + j]
                a1 = lA[(i + 1) * N + j]
                d0 = prev + i * WS
                d1 = d0 + WS
                for l in range(W):
                    best[l] = dmax(dmax(d0[l] + a0, d1[l] + a1), best[l])
                i = i + 2
            if i < N:
                a0 = lA[i * N + j]
                d0 = prev + i * WS
                for l in range(W):
                    best[l] = dmax(d0[l] + a0, best[l])
            ej = lem + j * M
            cj = cur + j * WS
            for l in range(W):
                cj[l] = best[l] + ej[sym[l]]
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
        r = vit_tail(X, a, b, Tl, lsp, lA, lem_t, N, vec, bvec, avec, B, states)
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


def viterbi(const sym_t[::1] X, const int64_t[::1] offsets, const double[::1] log_startprob,
            const double[:, ::1] log_transmat, const double[:, ::1] log_emit_t,
            bp_t[:, :, ::1] bp, int64_t[::1] states, double[::1] out):
    """As ``_numba.viterbi``: below VIT_LANES_MAX_N states, blocks of VIT_LANES sequences
    sorted by length in lockstep (dealt round-robin to the chunks), else one at a time."""
    cdef Py_ssize_t N = log_startprob.shape[0], M = log_emit_t.shape[0]
    cdef Py_ssize_t S = offsets.shape[0] - 1, C = bp.shape[0], W = VIT_LANES
    cdef Py_ssize_t c, s, a, b, blk, n_blocks, Tb, maxlen = bp.shape[1]
    cdef const double* lsp = &log_startprob[0]
    cdef const double* lA = &log_transmat[0, 0]
    cdef const double* lem_t = &log_emit_t[0, 0]
    cdef const double* lem
    cdef const int64_t[::1] order
    cdef const double[:, ::1] lem_view
    cdef int64_t[::1] bounds
    cdef double* D
    cdef double* dbuf
    cdef int64_t* ibuf
    cdef int8_t* P
    cdef bp_t* arg
    if N < VIT_LANES_MAX_N:
        order = np.argsort(np.diff(np.asarray(offsets)), kind="stable").astype(np.int64)
        lem_view = np.ascontiguousarray(np.asarray(log_emit_t).T)
        lem = &lem_view[0, 0]
        n_blocks = (S + W - 1) // W
        Tb = min(maxlen, max(1, VIT_BLOCK_BYTES // (N * W * 8)))
        with nogil:
            for c in range(C):
                D = <double*>malloc((Tb * N * W + 3 * W + 3 * N) * sizeof(double))
                P = <int8_t*>malloc((Tb * W + 1) * sizeof(int8_t))
                ibuf = <int64_t*>calloc(4 * W, sizeof(int64_t))
                arg = <bp_t*>malloc(N * sizeof(bp_t))
                dbuf = D + Tb * N * W  # best, bb, g (W each), vec, bvec (N each)
                blk = c
                while blk < n_blocks:
                    vit_lanes(X, offsets, order, blk * W, min(W, S - blk * W), lsp, lA, lem_t,
                              lem, N, M, D, Tb, P, dbuf, ibuf, ibuf + W, ibuf + 2 * W,
                              ibuf + 3 * W, dbuf + W, dbuf + 2 * W, &bp[c, 0, 0], dbuf + 3 * W,
                              dbuf + 3 * W + N, arg, states, out)
                    blk = blk + C
                free(arg)
                free(ibuf)
                free(P)
                free(D)
        return np.asarray(out)
    bounds = _bounds(offsets, C)
    C = bounds.shape[0] - 1
    with nogil:
        for c in range(C):
            dbuf = <double*>malloc(2 * N * sizeof(double))
            arg = <bp_t*>malloc(N * sizeof(bp_t))
            for s in range(bounds[c], bounds[c + 1]):
                a = offsets[s]
                b = offsets[s + 1]
                if b == a:
                    out[s] = 0.0
                    continue
                out[s] = vit_tail(X, a, b, 0, lsp, lA, lem_t, N, dbuf, dbuf + N, arg,
                                  &bp[c, 0, 0], states)[0]
            free(arg)
            free(dbuf)
    return np.asarray(out)


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


# The size switches this module shares with ``_numba`` (same names there; GEMM_LANES is LANES
# here): the two backends give the same bits only if they cut work the same way, so
# tests/test_hmm_bitidentity.py checks that these agree.
SHARED_CONSTANTS = dict(
    LANES=LANES, GEMM_LANES=LANES, SMALL_MAX_N=SMALL_MAX_N,
    ESTEP_LANES=ESTEP_LANES, ESTEP_GEMM_MIN_N=ESTEP_GEMM_MIN_N, ESTEP_XI_COLS=ESTEP_XI_COLS,
    ESTEP_XS_STEPS=ESTEP_XS_STEPS, ESTEP_GEMM_MAX_MADDS=ESTEP_GEMM_MAX_MADDS,
    VIT_LANES=VIT_LANES, VIT_LANES_MAX_N=VIT_LANES_MAX_N, VIT_BLOCK_BYTES=VIT_BLOCK_BYTES,
)
