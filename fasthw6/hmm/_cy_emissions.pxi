# Emission kernels of the framewise engine (as _numba/emissions.py, which documents them):
# diagonal-Gaussian log-likelihoods of frames [a, b), fused with their scaling by each frame's
# maximum.  Frames go EM_W at a time, lanes innermost.  Included by _cython.pyx.

cdef enum:
    EM_W = 64


cdef inline void frames_in(const double[:, ::1] X, const double[::1] center, Py_ssize_t t0,
                           Py_ssize_t w, double* xcol) noexcept nogil:
    """As _numba.emissions._frames_in: a full block four frames at a time, features inner."""
    cdef Py_ssize_t D = X.shape[1], l, d
    cdef double cd
    if w == EM_W:
        for l in range(0, EM_W, 4):
            for d in range(D):
                cd = center[d]
                xcol[d * EM_W + l] = X[t0 + l, d] - cd
                xcol[d * EM_W + l + 1] = X[t0 + l + 1, d] - cd
                xcol[d * EM_W + l + 2] = X[t0 + l + 2, d] - cd
                xcol[d * EM_W + l + 3] = X[t0 + l + 3, d] - cd
        return
    for d in range(D):
        for l in range(w):
            xcol[d * EM_W + l] = X[t0 + l, d] - center[d]
        for l in range(w, EM_W):
            xcol[d * EM_W + l] = 0.0


cdef inline Py_ssize_t block_in(const double[:, ::1] X, const double[::1] center, Py_ssize_t t0,
                                Py_ssize_t b, double* xcol, double* mx) noexcept nogil:
    """As _numba.emissions._block_in: frames from t0 (at most EM_W, up to b) into xcol, mx reset
    to -inf; returns the block's frame count."""
    cdef Py_ssize_t w = min(<Py_ssize_t>EM_W, b - t0), l
    frames_in(X, center, t0, w, xcol)
    for l in range(EM_W):
        mx[l] = -INFINITY
    return w


cdef inline void frames_out(double* acc, Py_ssize_t N, Py_ssize_t t0, Py_ssize_t w, double* mx,
                            double[:, ::1] out, double[::1] shift, bint scaled) noexcept nogil:
    """As _numba.emissions._frames_out: a block's log-likelihoods (N, EM_W) to out[t0:t0+w],
    scaled first with ``scaled``."""
    cdef Py_ssize_t l, j
    if scaled:
        for l in range(EM_W):
            if mx[l] == -INFINITY:
                mx[l] = 0.0
        for j in range(N):
            for l in range(EM_W):
                acc[j * EM_W + l] = exp_le0(acc[j * EM_W + l] - mx[l])
        for l in range(w):
            shift[t0 + l] = mx[l]
    for l in range(w):
        for j in range(N):
            out[t0 + l, j] = acc[j * EM_W + l]


def diag_frames(const double[:, ::1] X, const double[::1] center, Py_ssize_t a, Py_ssize_t b, const double[:, ::1] lin,
                const double[:, ::1] quad, const double[::1] const_, double[:, ::1] out,
                double[::1] shift, bint scaled):
    """See ``fasthw6.hmm._numba.emissions.diag_frames``."""
    cdef Py_ssize_t D = X.shape[1], N = lin.shape[0], t0, w, l, d, j
    cdef double v, lj, qj, cj, v0, v1, v2, v3, l0, l1, l2, l3, q0, q1, q2, q3
    cdef double* acc
    cdef double mx[EM_W]
    cdef double* xcol
    with nogil:
        acc = <double*>malloc(max(1, N * EM_W + D * EM_W) * sizeof(double))
        if acc == NULL:
            with gil:
                raise MemoryError("diag_frames: no memory for a block of frames")
        xcol = acc + N * EM_W
        t0 = a
        while t0 < b:
            w = block_in(X, center, t0, b, xcol, mx)
            for j in range(N):
                cj = const_[j]
                for l in range(EM_W):
                    acc[j * EM_W + l] = cj
                d = 0
                while d + 4 <= D:  # four features a pass, added in order (as numba's)
                    l0, l1, l2, l3 = lin[j, d], lin[j, d + 1], lin[j, d + 2], lin[j, d + 3]
                    q0, q1, q2, q3 = quad[j, d], quad[j, d + 1], quad[j, d + 2], quad[j, d + 3]
                    for l in range(EM_W):
                        v0 = xcol[d * EM_W + l]
                        v1 = xcol[(d + 1) * EM_W + l]
                        v2 = xcol[(d + 2) * EM_W + l]
                        v3 = xcol[(d + 3) * EM_W + l]
                        acc[j * EM_W + l] = (((acc[j * EM_W + l] + v0 * (l0 + v0 * q0))
                                              + v1 * (l1 + v1 * q1)) + v2 * (l2 + v2 * q2)) \
                            + v3 * (l3 + v3 * q3)
                    d += 4
                while d < D:
                    lj = lin[j, d]
                    qj = quad[j, d]
                    for l in range(EM_W):
                        v = xcol[d * EM_W + l]
                        acc[j * EM_W + l] += v * (lj + v * qj)
                    d += 1
                for l in range(EM_W):
                    if acc[j * EM_W + l] > mx[l]:
                        mx[l] = acc[j * EM_W + l]
            frames_out(acc, N, t0, w, mx, out, shift, scaled)
            t0 += EM_W
        free(acc)


def full_frames(const double[:, ::1] X, const double[::1] center, Py_ssize_t a, Py_ssize_t b,
                const double[:, ::1] mc, const double[:, :, ::1] linv, const double[::1] const_,
                double[:, ::1] out, double[::1] shift, bint scaled):
    """See ``fasthw6.hmm._numba.emissions.full_frames`` (the same operations in the same
    order, so the same bits)."""
    cdef Py_ssize_t D = X.shape[1], N = mc.shape[0], Dp = linv.shape[1], t0, w, l, d, k, ib, jb
    cdef double m, ck, v, v0, v1, v2, v3
    cdef double a00, a01, a02, a03, a10, a11, a12, a13, a20, a21, a22, a23, a30, a31, a32, a33
    cdef const double* r0
    cdef const double* r1
    cdef const double* r2
    cdef const double* r3
    cdef double* acc
    cdef double* xcol
    cdef double* y
    cdef double* z
    cdef double* r
    cdef double mx[EM_W]
    with nogil:
        acc = <double*>calloc(max(1, (N + D + Dp + 4) * EM_W), sizeof(double))
        if acc == NULL:
            with gil:
                raise MemoryError("full_frames: no memory for a block of frames")
        xcol = acc + N * EM_W
        y = xcol + D * EM_W  # rows past D stay 0 (calloc)
        z = y + Dp * EM_W
        t0 = a
        while t0 < b:
            w = block_in(X, center, t0, b, xcol, mx)
            for k in range(N):
                for d in range(D):
                    m = mc[k, d]
                    for l in range(EM_W):
                        y[d * EM_W + l] = xcol[d * EM_W + l] - m
                r = acc + k * EM_W
                for l in range(EM_W):
                    r[l] = 0.0
                ib = 0
                while ib < Dp:
                    jb = 0
                    while jb < ib + 4:
                        r0 = &linv[k, ib, jb]
                        r1 = &linv[k, ib + 1, jb]
                        r2 = &linv[k, ib + 2, jb]
                        r3 = &linv[k, ib + 3, jb]
                        a00, a01, a02, a03 = r0[0], r0[1], r0[2], r0[3]
                        a10, a11, a12, a13 = r1[0], r1[1], r1[2], r1[3]
                        a20, a21, a22, a23 = r2[0], r2[1], r2[2], r2[3]
                        a30, a31, a32, a33 = r3[0], r3[1], r3[2], r3[3]
                        if jb == 0:  # the first tile starts the rows (0 + p = p: the same bits)
                            for l in range(EM_W):
                                v0 = y[l]
                                v1 = y[EM_W + l]
                                v2 = y[2 * EM_W + l]
                                v3 = y[3 * EM_W + l]
                                z[l] = ((a00 * v0 + a01 * v1) + a02 * v2) + a03 * v3
                                z[EM_W + l] = ((a10 * v0 + a11 * v1) + a12 * v2) + a13 * v3
                                z[2 * EM_W + l] = ((a20 * v0 + a21 * v1) + a22 * v2) + a23 * v3
                                z[3 * EM_W + l] = ((a30 * v0 + a31 * v1) + a32 * v2) + a33 * v3
                        else:
                            for l in range(EM_W):
                                v0 = y[jb * EM_W + l]
                                v1 = y[(jb + 1) * EM_W + l]
                                v2 = y[(jb + 2) * EM_W + l]
                                v3 = y[(jb + 3) * EM_W + l]
                                z[l] = (((z[l] + a00 * v0) + a01 * v1) + a02 * v2) + a03 * v3
                                z[EM_W + l] = (((z[EM_W + l] + a10 * v0) + a11 * v1) + a12 * v2) + a13 * v3
                                z[2 * EM_W + l] = (((z[2 * EM_W + l] + a20 * v0) + a21 * v1) + a22 * v2) + a23 * v3
                                z[3 * EM_W + l] = (((z[3 * EM_W + l] + a30 * v0) + a31 * v1) + a32 * v2) + a33 * v3
                        jb += 4
                    for l in range(EM_W):
                        r[l] += ((z[l] * z[l] + z[EM_W + l] * z[EM_W + l])
                                 + z[2 * EM_W + l] * z[2 * EM_W + l]) + z[3 * EM_W + l] * z[3 * EM_W + l]
                    ib += 4
                ck = const_[k]
                for l in range(EM_W):
                    v = ck - 0.5 * r[l]
                    r[l] = v
                    if v > mx[l]:
                        mx[l] = v
            frames_out(acc, N, t0, w, mx, out, shift, scaled)
            t0 += EM_W
        free(acc)


cdef inline void moments_in(const double[:, ::1] X, const double[::1] center,
                            const double[:, ::1] gamma, Py_ssize_t t0, Py_ssize_t b, double* xt,
                            double* gt) noexcept nogil:
    """As _numba.emissions._moments_in: four blocks of EM_W frames from t0 (up to b), frames
    minus center into xt (4, D, EM_W), weights into gt (4, N, EM_W), lanes past b zeroed."""
    cdef Py_ssize_t D = X.shape[1], N = gamma.shape[1], XB = D * EM_W, GB = N * EM_W, k, s, w, l, j
    for k in range(4):
        s = t0 + k * EM_W
        w = max(0, min(<Py_ssize_t>EM_W, b - s))
        frames_in(X, center, s, w, xt + k * XB)  # w = 0: all zeros
        for l in range(w):
            for j in range(N):
                gt[k * GB + j * EM_W + l] = gamma[s + l, j]
        for l in range(w, EM_W):
            for j in range(N):
                gt[k * GB + j * EM_W + l] = 0.0


cdef inline void add_group(double* acc, const double* g, Py_ssize_t GB) noexcept nogil:
    """acc[l] += the four blocks' g[l] (blocks GB apart), in block order (``_add_group``)."""
    cdef Py_ssize_t l
    for l in range(EM_W):
        acc[l] = (((acc[l] + g[l]) + g[GB + l]) + g[2 * GB + l]) + g[3 * GB + l]


cdef inline void fold_lanes(const double* part, Py_ssize_t R, double* out) noexcept nogil:
    """out[r] += Σ_l part[r * EM_W + l], lanes in order (``_fold_lanes``)."""
    cdef Py_ssize_t r, l
    for r in range(R):
        for l in range(EM_W):
            out[r] += part[r * EM_W + l]


def diag_moments(const double[:, ::1] X, const double[::1] center, const double[:, ::1] gamma,
                 Py_ssize_t a, Py_ssize_t b, double[::1] post, double[:, ::1] obs,
                 double[:, ::1] sq):
    """See ``fasthw6.hmm._numba.emissions.diag_moments`` (the same sums in the same order:
    four frames at a time, features inner, so the same bits)."""
    cdef Py_ssize_t D = X.shape[1], N = gamma.shape[1], t, d, j
    cdef double g0, g1, g2, g3, v0, v1, v2, v3, cd
    cdef double* y
    cdef double* o
    cdef double* q
    cdef const double* r0
    cdef const double* r1
    cdef const double* r2
    cdef const double* r3
    with nogil:
        y = <double*>malloc(max(1, 4 * D) * sizeof(double))
        if y == NULL:
            with gil:
                raise MemoryError("diag_moments: no memory for four frames")
        t = a
        while t + 4 <= b:
            r0 = &X[t, 0]
            r1 = r0 + D
            r2 = r1 + D
            r3 = r2 + D
            for d in range(D):
                cd = center[d]
                y[d] = r0[d] - cd
                y[D + d] = r1[d] - cd
                y[2 * D + d] = r2[d] - cd
                y[3 * D + d] = r3[d] - cd
            for j in range(N):
                g0 = gamma[t, j]
                g1 = gamma[t + 1, j]
                g2 = gamma[t + 2, j]
                g3 = gamma[t + 3, j]
                post[j] = (((post[j] + g0) + g1) + g2) + g3
                o = &obs[j, 0]
                q = &sq[j, 0]
                for d in range(D):
                    v0 = g0 * y[d]
                    v1 = g1 * y[D + d]
                    v2 = g2 * y[2 * D + d]
                    v3 = g3 * y[3 * D + d]
                    o[d] = (((o[d] + v0) + v1) + v2) + v3
                    q[d] = (((q[d] + v0 * y[d]) + v1 * y[D + d]) + v2 * y[2 * D + d]) \
                        + v3 * y[3 * D + d]
            t += 4
        while t < b:
            r0 = &X[t, 0]
            for d in range(D):
                y[d] = r0[d] - center[d]
            for j in range(N):
                g0 = gamma[t, j]
                post[j] += g0
                o = &obs[j, 0]
                q = &sq[j, 0]
                for d in range(D):
                    v0 = g0 * y[d]
                    o[d] += v0
                    q[d] += v0 * y[d]
            t += 1
        free(y)


def full_moments(const double[:, ::1] X, const double[::1] center, const double[:, ::1] gamma,
                 Py_ssize_t a, Py_ssize_t b, double[::1] post, double[:, ::1] obs,
                 double[:, ::1] sq):
    """See ``fasthw6.hmm._numba.emissions.full_moments`` (the same per-lane sums, so the same
    bits)."""
    cdef Py_ssize_t D = X.shape[1], N = gamma.shape[1], P = D * (D + 1) // 2, t0, l, d, e, j, p
    cdef Py_ssize_t XB = D * EM_W, GB = N * EM_W
    cdef double u0, u1, u2, u3
    cdef double* buf
    cdef double* pp
    cdef double* po
    cdef double* ps
    cdef double* xt
    cdef double* gt
    cdef double* v
    cdef double* o
    cdef double* q
    cdef const double* x0
    cdef const double* y0
    cdef const double* g0
    with nogil:
        buf = <double*>calloc(max(1, (N + N * D + N * P + 4 * D + 4 * N + 4) * EM_W),
                              sizeof(double))
        if buf == NULL:
            with gil:
                raise MemoryError("full_moments: no memory for a block of frames")
        pp = buf
        po = pp + N * EM_W
        ps = po + N * D * EM_W
        xt = ps + N * P * EM_W  # (4, D, EM_W)
        gt = xt + 4 * XB  # (4, N, EM_W)
        v = gt + 4 * GB  # (4, EM_W)
        t0 = a
        while t0 < b:
            moments_in(X, center, gamma, t0, b, xt, gt)
            for j in range(N):
                g0 = gt + j * EM_W
                add_group(pp + j * EM_W, g0, GB)
                p = 0
                for d in range(D):
                    x0 = xt + d * EM_W
                    o = po + (j * D + d) * EM_W
                    for l in range(EM_W):
                        u0 = g0[l] * x0[l]
                        u1 = g0[GB + l] * x0[XB + l]
                        u2 = g0[2 * GB + l] * x0[2 * XB + l]
                        u3 = g0[3 * GB + l] * x0[3 * XB + l]
                        v[l] = u0
                        v[EM_W + l] = u1
                        v[2 * EM_W + l] = u2
                        v[3 * EM_W + l] = u3
                        o[l] = (((o[l] + u0) + u1) + u2) + u3
                    for e in range(d, D):
                        y0 = xt + e * EM_W
                        q = ps + (j * P + p) * EM_W
                        for l in range(EM_W):
                            q[l] = (((q[l] + v[l] * y0[l]) + v[EM_W + l] * y0[XB + l])
                                    + v[2 * EM_W + l] * y0[2 * XB + l]) + v[3 * EM_W + l] * y0[3 * XB + l]
                        p += 1
            t0 += 4 * EM_W
        fold_lanes(pp, N, &post[0])
        for j in range(N):
            fold_lanes(po + j * D * EM_W, D, &obs[j, 0])
            fold_lanes(ps + j * P * EM_W, P, &sq[j, 0])
        free(buf)


def frame_pairs(const double[:, ::1] X, const double[::1] center, Py_ssize_t a, Py_ssize_t b,
                double[:, ::1] out, bint diag):
    """See ``fasthw6.hmm._numba.emissions.frame_pairs``."""
    cdef Py_ssize_t D = X.shape[1], w = b - a, d, i, j, l, p
    cdef Py_ssize_t P = D if diag else D * (D + 1) // 2
    cdef double cd
    cdef double* r
    cdef double* yi
    cdef double* yj
    with nogil:
        for d in range(D):
            cd = center[d]
            r = &out[P + d, 0]
            for l in range(w):
                r[l] = X[a + l, d] - cd
        p = 0
        for i in range(D):
            yi = &out[P + i, 0]
            for j in range(i, i + 1 if diag else D):
                yj = &out[P + j, 0]
                r = &out[p, 0]
                for l in range(w):
                    r[l] = yi[l] * yj[l]
                p += 1


def mixture_frames(double[:, ::1] L, const double[:, ::1] logw, Py_ssize_t a, Py_ssize_t b,
                   double[:, ::1] out, double[::1] shift, bint mix, bint scaled):
    """See ``fasthw6.hmm._numba.emissions.mixture_frames`` (the same operations in the same
    order, so the same bits)."""
    cdef Py_ssize_t N = logw.shape[0], nm = logw.shape[1], K, t0, w, l, j, m, k
    cdef double lw, v
    cdef double* lt
    cdef double* top
    cdef double* s
    cdef double mx[EM_W]
    K = N * nm
    with nogil:
        lt = <double*>malloc(max(1, (K + 2 * N) * EM_W) * sizeof(double))
        if lt == NULL:
            with gil:
                raise MemoryError("mixture_frames: no memory for a block of frames")
        top = lt + K * EM_W
        s = top + N * EM_W
        t0 = a
        while t0 < b:
            w = min(<Py_ssize_t>EM_W, b - t0)
            for l in range(w):
                for k in range(K):
                    lt[k * EM_W + l] = L[t0 + l, k]
            for k in range(K):
                for l in range(w, EM_W):
                    lt[k * EM_W + l] = 0.0
            for j in range(N):
                for l in range(EM_W):
                    top[j * EM_W + l] = -INFINITY
                    s[j * EM_W + l] = 0.0
                for m in range(nm):
                    lw = logw[j, m]
                    k = (j * nm + m) * EM_W
                    for l in range(EM_W):
                        lt[k + l] += lw
                        if lt[k + l] > top[j * EM_W + l]:
                            top[j * EM_W + l] = lt[k + l]
                for l in range(EM_W):
                    if top[j * EM_W + l] == -INFINITY:
                        top[j * EM_W + l] = 0.0
                for m in range(nm):
                    k = (j * nm + m) * EM_W
                    for l in range(EM_W):
                        lt[k + l] = exp_le0(lt[k + l] - top[j * EM_W + l])
                        s[j * EM_W + l] += lt[k + l]
                if mix:
                    for m in range(nm):
                        k = (j * nm + m) * EM_W
                        for l in range(EM_W):
                            v = s[j * EM_W + l]
                            lt[k + l] = lt[k + l] / v if v > 0.0 else 0.0
            if scaled:
                for l in range(EM_W):
                    mx[l] = -INFINITY
                for j in range(N):
                    for l in range(EM_W):
                        if s[j * EM_W + l] > 0.0 and top[j * EM_W + l] > mx[l]:
                            mx[l] = top[j * EM_W + l]
                for l in range(EM_W):
                    if mx[l] == -INFINITY:
                        mx[l] = 0.0
                for j in range(N):
                    for l in range(EM_W):
                        v = s[j * EM_W + l]
                        s[j * EM_W + l] = v * exp_le0(top[j * EM_W + l] - mx[l]) if v > 0.0 else 0.0
                for l in range(w):
                    shift[t0 + l] = mx[l]
                    for j in range(N):
                        out[t0 + l, j] = s[j * EM_W + l]
            else:
                for l in range(w):
                    for j in range(N):
                        v = s[j * EM_W + l]
                        out[t0 + l, j] = log(v) + top[j * EM_W + l] if v > 0.0 else -INFINITY
            if mix:
                for l in range(w):
                    for k in range(K):
                        L[t0 + l, k] = lt[k * EM_W + l]
            t0 += EM_W
        free(lt)


def count_terms(const double[:, ::1] x, Py_ssize_t a, Py_ssize_t b, const double[::1] table,
                double[::1] out):
    """See ``fasthw6.hmm._numba.emissions.count_terms`` (the same sums in the same order)."""
    cdef Py_ssize_t M = table.shape[0], D = x.shape[1], t, d
    cdef double v, s
    cdef int code = 0
    cdef bint big
    with nogil:
        t = a
        while t < b and code != 1:
            s = 0.0
            big = False
            for d in range(D):
                v = x[t, d]
                if not (v >= 0.0 and v <= 9007199254740992.0 and v == floor(v)):
                    code = 1
                    break
                if v < M:
                    s += table[<Py_ssize_t>v]
                else:
                    big = True
            if code == 1:
                break
            if big:
                code = 2
            else:
                out[t] = s
            t += 1
    return code
