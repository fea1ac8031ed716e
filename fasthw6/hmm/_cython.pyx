# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython HMM kernels (backend ``"cython"``): the algorithms of ``_numba.py``, same names and
signatures (see its docstring for the conventions: concatenated symbols + offsets, transposed
emissions, α̂ normalised every step with the log-likelihood kept as a float64 mantissa and a
count of 2^512 factors, backward messages normalised to sum 1, Σξ accumulated as outer
products and multiplied by A once).  Loops run without the GIL, in parallel over chunks of
sequences (OpenMP ``prange``); nothing is checked here: ``fasthw6.hmm.api`` validated it all.
"""
import numpy as np

cimport cython
from cython.parallel cimport prange
from libc.math cimport INFINITY, log
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy
from scipy.linalg.cython_blas cimport dgemm, sgemm

cimport openmp

ctypedef fused sym_t:
    uint8_t
    uint16_t
    int32_t
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
    """Scaled forward over X[a:b]; α̂_t at alpha + t*stride (stride 0: keep only the current)."""
    cdef Py_ssize_t N = startprob.shape[0], t, i, j
    cdef LL acc
    cdef real s, v, r, ai
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
    r = 1 / s
    for j in range(N):
        alpha[j] = alpha[j] * r
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
        r = 1 / s
        for j in range(N):
            cur[j] = cur[j] * r
    return ll_value(&acc)


cdef void backward_seq(const sym_t[::1] X, Py_ssize_t a, Py_ssize_t b,
                       const real[:, ::1] transmat, const real[:, ::1] emit_t, real* alpha,
                       real* beta, real* u, real* v, double* start_acc, double* trans_raw,
                       double* obs_acc, bint want_stats) noexcept nogil:
    """Backward pass over X[a:b] given α̂ rows at ``alpha`` (T×N), overwriting them with γ and,
    if ``want_stats``, adding the E-step sums (trans_raw without the factor A)."""
    cdef Py_ssize_t N = transmat.shape[0], T = b - a, t, i, j
    cdef real z, sv, iz, isv, acc, w
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
        z = 0
        sv = 0
        for i in range(N):
            row = &transmat[i, 0]
            acc = 0
            for j in range(N):
                acc = acc + row[j] * u[j]
            v[i] = acc
            z = z + at[i] * acc
            sv = sv + acc
        iz = 1 / z if z > 0 else 0
        isv = 1 / sv if sv > 0 else 0
        if want_stats:
            for i in range(N):
                w = at[i] * iz
                if w != 0:
                    tr = trans_raw + i * N
                    for j in range(N):
                        tr[j] += w * u[j]
        for i in range(N):
            beta[i] = v[i] * isv
            at[i] = at[i] * v[i] * iz
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


def forward_loglik(const sym_t[::1] X, const int64_t[::1] offsets, const real[::1] startprob,
                   const real[:, ::1] transmat, const real[:, ::1] emit_t, Py_ssize_t n_chunks,
                   double[::1] out):
    cdef Py_ssize_t N = startprob.shape[0], S = offsets.shape[0] - 1, W = LANES
    cdef Py_ssize_t z, n_blocks, n_c, c, blk, s0
    lengths = np.diff(np.asarray(offsets))
    order_arr = np.ascontiguousarray(np.argsort(lengths, kind="stable"), dtype=np.int64)
    z = int(np.count_nonzero(lengths == 0))
    np.asarray(out)[order_arr[:z]] = 0.0
    cdef const int64_t[::1] order = order_arr
    tt_arr = np.ascontiguousarray(np.asarray(transmat).T)
    cdef const real[:, ::1] transmat_t = tt_arr
    cdef const real* A = &transmat[0, 0]
    cdef const real* At = &transmat_t[0, 0]
    cdef real* buf
    cdef double* r
    cdef int64_t* k
    cdef int64_t* pos
    n_blocks = (S - z + W - 1) // W
    n_c = max(1, min(n_chunks, n_blocks))
    if n_blocks == 0:
        return np.asarray(out)
    with nogil:
        for c in prange(n_c, schedule="static"):
            buf = <real*>malloc((3 * N * W + 2 * N) * sizeof(real))
            r = <double*>malloc(W * sizeof(double))
            k = <int64_t*>malloc(2 * W * sizeof(int64_t))
            pos = k + W
            blk = c
            while blk < n_blocks:
                s0 = z + blk * W
                score_block(X, offsets, &order[s0], min(W, S - s0), startprob, A, At, emit_t,
                            buf, r, k, pos, out)
                blk = blk + n_c
            free(buf)
            free(r)
            free(k)
    return np.asarray(out)


def forward_backward(const sym_t[::1] X, const int64_t[::1] offsets, const real[::1] startprob,
                     const real[:, ::1] transmat, const real[:, ::1] emit_t, Py_ssize_t n_chunks,
                     real[:, ::1] gamma, double[::1] out):
    cdef Py_ssize_t N = startprob.shape[0], c, s, C, a, b, k
    cdef int64_t[::1] bounds = _bounds(offsets, n_chunks)
    cdef real* buf
    cdef real* lat
    cdef double ll
    C = bounds.shape[0] - 1
    with nogil:
        for c in prange(C, schedule="dynamic"):
            buf = <real*>malloc(4 * N * sizeof(real))
            for s in range(bounds[c], bounds[c + 1]):
                a = offsets[s]
                b = offsets[s + 1]
                if b == a:
                    out[s] = 0.0
                    continue
                lat = &gamma[a, 0]
                ll = forward_seq(X, a, b, startprob, transmat, emit_t, lat, N, buf)
                out[s] = ll
                if ll == -INFINITY:
                    for k in range((b - a) * N):
                        lat[k] = 0
                    continue
                backward_seq(X, a, b, transmat, emit_t, lat, buf, buf + N, buf + 2 * N,
                             NULL, NULL, NULL, False)
            free(buf)
    return np.asarray(out)


def estep(const sym_t[::1] X, const int64_t[::1] offsets, const real[::1] startprob,
          const real[:, ::1] transmat, const real[:, ::1] emit_t, Py_ssize_t n_chunks,
          double[::1] start_acc, double[:, ::1] trans_acc, double[:, ::1] obs_acc,
          double[::1] out):
    cdef Py_ssize_t N = startprob.shape[0], M = emit_t.shape[0], c, s, C, a, b, i, j, maxlen = 0
    cdef int64_t[::1] bounds = _bounds(offsets, n_chunks)
    cdef real* buf
    cdef real* lat
    cdef double ll
    for s in range(offsets.shape[0] - 1):
        maxlen = max(maxlen, offsets[s + 1] - offsets[s])
    C = bounds.shape[0] - 1
    cdef double[:, ::1] st = np.zeros((C, N))
    cdef double[:, :, ::1] tr = np.zeros((C, N, N))
    cdef double[:, :, ::1] ob = np.zeros((C, M, N))
    with nogil:
        for c in prange(C, schedule="static", chunksize=1):
            buf = <real*>malloc((4 + maxlen) * N * sizeof(real))
            lat = buf + 4 * N
            for s in range(bounds[c], bounds[c + 1]):
                a = offsets[s]
                b = offsets[s + 1]
                if b == a:
                    out[s] = 0.0
                    continue
                ll = forward_seq(X, a, b, startprob, transmat, emit_t, lat, N, buf)
                out[s] = ll
                if ll == -INFINITY:
                    continue
                backward_seq(X, a, b, transmat, emit_t, lat, buf, buf + N, buf + 2 * N,
                             &st[c, 0], &tr[c, 0, 0], &ob[c, 0, 0], True)
            free(buf)
    for c in range(C):
        for i in range(N):
            start_acc[i] += st[c, i]
            for j in range(N):
                trans_acc[i, j] += tr[c, i, j] * transmat[i, j]
        for i in range(M):
            for j in range(N):
                obs_acc[i, j] += ob[c, i, j]
    return np.asarray(out)


def viterbi(const sym_t[::1] X, const int64_t[::1] offsets, const double[::1] log_startprob,
            const double[:, ::1] log_transmat, const double[:, ::1] log_emit_t,
            bp_t[:, :, ::1] bp, int64_t[::1] states, double[::1] out):
    cdef Py_ssize_t N = log_startprob.shape[0], c, s, C, a, b, t, i, j
    cdef int64_t[::1] bounds = _bounds(offsets, bp.shape[0])
    cdef double* delta
    cdef double* best
    cdef bp_t* arg
    cdef bp_t* Bt
    cdef const double* em
    cdef const double* row
    cdef double di, w, m
    cdef Py_ssize_t k
    C = bounds.shape[0] - 1
    with nogil:
        for c in prange(C, schedule="static", chunksize=1):
            delta = <double*>malloc(2 * N * sizeof(double))
            best = delta + N
            arg = <bp_t*>malloc(N * sizeof(bp_t))
            for s in range(bounds[c], bounds[c + 1]):
                a = offsets[s]
                b = offsets[s + 1]
                if b == a:
                    out[s] = 0.0
                    continue
                em = &log_emit_t[X[a], 0]
                for j in range(N):
                    delta[j] = log_startprob[j] + em[j]
                for t in range(1, b - a):
                    for j in range(N):
                        best[j] = -INFINITY
                        arg[j] = 0
                    for i in range(N):
                        di = delta[i]
                        row = &log_transmat[i, 0]
                        for j in range(N):
                            w = di + row[j]
                            if w >= best[j]:
                                best[j] = w
                                arg[j] = <bp_t>i
                    em = &log_emit_t[X[a + t], 0]
                    Bt = &bp[c, t, 0]
                    for j in range(N):
                        delta[j] = best[j] + em[j]
                        Bt[j] = arg[j]
                k = 0
                m = delta[0]
                for j in range(1, N):
                    if delta[j] > m:
                        m = delta[j]
                        k = j
                out[s] = m
                states[b - 1] = k
                for t in range(b - a - 1, 0, -1):
                    k = bp[c, t, k]
                    states[a + t - 1] = k
            free(arg)
            free(delta)
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
