"""Emission kernels of the framewise engine: diagonal-Gaussian log-likelihoods of a block of
frames, fused with their scaling into the engine's table (``frames``): for frames t in [a, b),

    ll[t, j] = const[j] + Σ_d x_td (lin[j, d] + x_td quad[j, d])

(x: a frame minus ``center``; ``lin`` = μ/σ², ``quad`` = -1/(2σ²)), then, with ``scaled``,
out[t] = exp(ll[t] - max_j ll[t, j]) and shift[t] = that maximum, else out[t] = ll[t].

Frames go W at a time, lanes innermost, so the loops over states and features run on vectors of
W frames; the exponential is a polynomial on the reduced argument times a power of two from the
exponent bits (``_exp_le0``), with no call that would stop the vectorisation.  At N=3, D=4 the
fused kernel does in one pass what NumPy needs five for (centre, square, two products, max,
subtract, exp): 3-10x faster on 10^6 frames.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._common import _exp_le0

_W = 64  # frames per vector block
_GROUP = 4  # blocks of frames through the moments' partial sums at once (full_moments)


@njit(nogil=True, cache=True, inline="always")
def _frames_in(X, center, t0, w, xt):
    """Frames X[t0:t0+w] - center into the lane block ``xt`` (D, _W), lanes past w zeroed.
    A full block goes four frames at a time, features inner: four rows read in step, each
    feature's four values stored side by side (10^6 frames, one thread: D=16 15.9 -> 11.7 ms,
    D=4 2.6 -> 2.2).  A partial block: features outer, lanes inner (3x faster than frames
    outer one at a time)."""
    D = X.shape[1]
    if w == _W:
        for l in range(0, _W, 4):
            r0, r1, r2, r3 = X[t0 + l], X[t0 + l + 1], X[t0 + l + 2], X[t0 + l + 3]
            for d in range(D):
                cd = center[d]
                xt[d, l] = r0[d] - cd
                xt[d, l + 1] = r1[d] - cd
                xt[d, l + 2] = r2[d] - cd
                xt[d, l + 3] = r3[d] - cd
        return
    for d in range(D):
        cd = center[d]
        xd = xt[d]
        for l in range(w):
            xd[l] = X[t0 + l, d] - cd
        for l in range(w, _W):
            xd[l] = 0.0


@njit(nogil=True, cache=True, inline="always")
def _block_in(X, center, t0, b, xt, mx):
    """The block of frames from t0 (at most _W, up to b) into ``xt`` (``_frames_in``), and
    the block's running maximum ``mx`` reset to -inf; returns the block's frame count."""
    w = min(_W, b - t0)
    _frames_in(X, center, t0, w, xt)
    for l in range(_W):
        mx[l] = -np.inf
    return w


@njit(nogil=True, cache=True, inline="always")
def _diag_lanes(r, y, lin, quad, j, W):
    """r[l] += Σ_d y_dl (lin[j, d] + y_dl quad[j, d]) over W lanes, y_dl = y[d*W + l]: state j's
    diagonal quadratic form, four features a pass added in order (one load and store of r per
    four).  ``diag_frames`` and the fused scoring and Viterbi steps (``score._diag_step``)
    share it, so their log-likelihoods are the same bits."""
    D = lin.shape[1]
    d = 0
    while d + 4 <= D:
        l0, l1, l2, l3 = lin[j, d], lin[j, d + 1], lin[j, d + 2], lin[j, d + 3]
        q0, q1, q2, q3 = quad[j, d], quad[j, d + 1], quad[j, d + 2], quad[j, d + 3]
        for l in range(W):
            v0, v1 = y[d * W + l], y[(d + 1) * W + l]
            v2, v3 = y[(d + 2) * W + l], y[(d + 3) * W + l]
            r[l] = (((r[l] + v0 * (l0 + v0 * q0)) + v1 * (l1 + v1 * q1))
                    + v2 * (l2 + v2 * q2)) + v3 * (l3 + v3 * q3)
        d += 4
    while d < D:
        lj = lin[j, d]
        qj = quad[j, d]
        for l in range(W):
            v = y[d * W + l]
            r[l] += v * (lj + v * qj)
        d += 1


@njit(nogil=True, cache=True, inline="always")
def _frames_out(acc, N, t0, w, mx, out, shift, scaled):
    """A block's log-likelihoods ``acc`` (N, _W) to out[t0:t0+w]; with ``scaled`` first
    exp(acc - mx) and shift[t0:t0+w] = mx (a lane's maximum over states, 0 if all -inf)."""
    if scaled:
        for l in range(_W):
            if mx[l] == -np.inf:
                mx[l] = 0.0
        for j in range(N):
            r = acc[j]
            for l in range(_W):
                r[l] = _exp_le0(r[l] - mx[l])
        for l in range(w):
            shift[t0 + l] = mx[l]
    if N >= 8:  # frames outer, contiguous stores: N=16, 10^6 frames 66 -> 56 ms
        for l in range(w):
            o = out[t0 + l]
            for j in range(N):
                o[j] = acc[j, l]
    else:  # states outer (strided stores) measured faster at N=3
        for j in range(N):
            r = acc[j]
            for l in range(w):
                out[t0 + l, j] = r[l]


@njit(nogil=True, cache=True)
def diag_frames(X, center, a, b, lin, quad, const, out, shift, scaled):
    """Frames X[a:b] - center (float64 (n, D)) into out[a:b] (float64 (n, N)); see the module
    docstring.  ``shift`` (n,) is written only when ``scaled``."""
    D = X.shape[1]
    N = lin.shape[0]
    acc = np.empty((N, _W))
    y = np.empty(D * _W)
    xt = y.reshape((D, _W))
    mx = np.empty(_W)
    for t0 in range(a, b, _W):
        w = _block_in(X, center, t0, b, xt, mx)
        for j in range(N):
            r = acc[j]
            cj = const[j]
            for l in range(_W):
                r[l] = cj
            _diag_lanes(r, y, lin, quad, j, _W)
            for l in range(_W):
                mx[l] = max(mx[l], r[l])
        _frames_out(acc, N, t0, w, mx, out, shift, scaled)


@njit(nogil=True, cache=True)
def full_frames(X, center, a, b, mc, linv, const, out, shift, scaled):
    """Full-covariance log-likelihoods of frames X[a:b] into out[a:b] (float64 (n, N)):

        ll[t, k] = const[k] - ½ |z|²,  z = L_k⁻¹ (y_t - mc[k]),  y_t = x_t - center,

    ``linv`` (N, Dp, Dp) the inverses of the covariances' Cholesky factors, zero above the
    diagonal and past D (Dp: D rounded up to a multiple of 4), ``mc`` (N, D) the means minus
    ``center``; with ``scaled`` as ``diag_frames``: out[t] = exp(ll[t] - shift[t]),
    shift[t] = max_k ll[t, k].

    Frames go W at a time, lanes innermost (``_frames_in``): a state's residuals are one vector
    subtraction per feature, and z comes in tiles of four rows by four columns of L⁻¹, 16
    vector multiply-adds for four loads and stores of partial rows, up to the diagonal tile
    (whose zeros are multiplied too).  No D(D+1)/2 features per frame are written and read back
    (``frame_pairs``)."""
    D = X.shape[1]
    N = mc.shape[0]
    Dp = linv.shape[1]
    acc = np.empty((N, _W))
    xt = np.empty((D, _W))
    y = np.zeros((Dp, _W))  # rows past D stay 0 (finite: times L⁻¹'s zero columns)
    z = np.empty((4, _W))
    mx = np.empty(_W)
    for t0 in range(a, b, _W):
        w = _block_in(X, center, t0, b, xt, mx)
        for k in range(N):
            for d in range(D):
                m = mc[k, d]
                yd = y[d]
                xd = xt[d]
                for l in range(_W):
                    yd[l] = xd[l] - m
            r = acc[k]
            for l in range(_W):
                r[l] = 0.0
            Lk = linv[k]
            z0, z1, z2, z3 = z[0], z[1], z[2], z[3]
            for ib in range(0, Dp, 4):
                for jb in range(0, ib + 4, 4):
                    r0, r1, r2, r3 = Lk[ib, jb:], Lk[ib + 1, jb:], Lk[ib + 2, jb:], Lk[ib + 3, jb:]
                    a00, a01, a02, a03 = r0[0], r0[1], r0[2], r0[3]
                    a10, a11, a12, a13 = r1[0], r1[1], r1[2], r1[3]
                    a20, a21, a22, a23 = r2[0], r2[1], r2[2], r2[3]
                    a30, a31, a32, a33 = r3[0], r3[1], r3[2], r3[3]
                    y0, y1, y2, y3 = y[jb], y[jb + 1], y[jb + 2], y[jb + 3]
                    if jb == 0:  # the first tile starts the rows (0 + p = p: the same bits)
                        for l in range(_W):
                            v0, v1, v2, v3 = y0[l], y1[l], y2[l], y3[l]
                            z0[l] = ((a00 * v0 + a01 * v1) + a02 * v2) + a03 * v3
                            z1[l] = ((a10 * v0 + a11 * v1) + a12 * v2) + a13 * v3
                            z2[l] = ((a20 * v0 + a21 * v1) + a22 * v2) + a23 * v3
                            z3[l] = ((a30 * v0 + a31 * v1) + a32 * v2) + a33 * v3
                    else:
                        for l in range(_W):
                            v0, v1, v2, v3 = y0[l], y1[l], y2[l], y3[l]
                            z0[l] = (((z0[l] + a00 * v0) + a01 * v1) + a02 * v2) + a03 * v3
                            z1[l] = (((z1[l] + a10 * v0) + a11 * v1) + a12 * v2) + a13 * v3
                            z2[l] = (((z2[l] + a20 * v0) + a21 * v1) + a22 * v2) + a23 * v3
                            z3[l] = (((z3[l] + a30 * v0) + a31 * v1) + a32 * v2) + a33 * v3
                for l in range(_W):
                    r[l] += ((z0[l] * z0[l] + z1[l] * z1[l]) + z2[l] * z2[l]) + z3[l] * z3[l]
            ck = const[k]
            for l in range(_W):
                v = ck - 0.5 * r[l]
                r[l] = v
                mx[l] = max(mx[l], v)
        _frames_out(acc, N, t0, w, mx, out, shift, scaled)


@njit(nogil=True, cache=True, inline="always")
def _moments_in(X, center, gamma, t0, b, xt, gt):
    """The _GROUP blocks of _W frames from t0 (up to b) into ``xt`` (_GROUP, D, _W), frames
    minus center (``_frames_in``), and their weights into ``gt`` (_GROUP, N, _W), lanes past
    b zeroed."""
    N = gamma.shape[1]
    for k in range(_GROUP):
        s = t0 + k * _W
        w = max(0, min(_W, b - s))
        _frames_in(X, center, s, w, xt[k])  # w = 0: all zeros
        for j in range(N):  # states outer, lanes inner, as _frames_in
            g = gt[k, j]
            for l in range(w):
                g[l] = gamma[s + l, j]
            for l in range(w, _W):
                g[l] = 0.0


@njit(nogil=True, cache=True, inline="always")
def _add_group(acc, g0, g1, g2, g3):
    """acc[l] += the four blocks' g[l], added in block order (``diag_moments``)."""
    for l in range(_W):
        acc[l] = (((acc[l] + g0[l]) + g1[l]) + g2[l]) + g3[l]


@njit(nogil=True, cache=True, inline="always")
def _fold_lanes(part, out):
    """out[r] += Σ_l part[r, l], lanes in order: the per-lane partial sums of the moments
    folded at the end."""
    for r in range(part.shape[0]):
        for l in range(_W):
            out[r] += part[r, l]


@njit(nogil=True, cache=True)
def diag_moments(X, center, gamma, a, b, post, obs, sq):
    """The diagonal M-step's weighted sums over frames [a, b), added into ``post`` (N,) Σγ,
    ``obs`` (N, D) Σγy and ``sq`` (N, D) Σγy², y = x - center: one pass over X and γ in
    place, four frames at a time, each frame's row of features read as it lies in X (vector
    loops over the features), the four added in frame order into one sum per state and
    feature.  (Moving each block of frames into a lanes-innermost tile first, for per-lane
    partial sums, cost more than the sums: one thread, 10^6 frames, AMD EPYC family 25 model
    17, tile -> in place: N=3 D=16 30 -> 13 ms, N=8 D=16 50 -> 25, N=12 D=16 74 -> 33, N=3
    D=4 9.4 -> 8.5, N=12 D=4 28.6 -> 24.9; N=8 D=8 30.6 -> 33.1.)"""
    D = X.shape[1]
    N = gamma.shape[1]
    y = np.empty((4, D))
    y0, y1, y2, y3 = y[0], y[1], y[2], y[3]
    t = a
    while t + 4 <= b:
        r0, r1, r2, r3 = X[t], X[t + 1], X[t + 2], X[t + 3]
        for d in range(D):
            cd = center[d]
            y0[d] = r0[d] - cd
            y1[d] = r1[d] - cd
            y2[d] = r2[d] - cd
            y3[d] = r3[d] - cd
        for j in range(N):
            g0, g1, g2, g3 = gamma[t, j], gamma[t + 1, j], gamma[t + 2, j], gamma[t + 3, j]
            post[j] = (((post[j] + g0) + g1) + g2) + g3
            o = obs[j]
            q = sq[j]
            for d in range(D):
                v0 = g0 * y0[d]
                v1 = g1 * y1[d]
                v2 = g2 * y2[d]
                v3 = g3 * y3[d]
                o[d] = (((o[d] + v0) + v1) + v2) + v3
                q[d] = (((q[d] + v0 * y0[d]) + v1 * y1[d]) + v2 * y2[d]) + v3 * y3[d]
        t += 4
    while t < b:  # the last frames one at a time
        r0 = X[t]
        for d in range(D):
            y0[d] = r0[d] - center[d]
        for j in range(N):
            g0 = gamma[t, j]
            post[j] += g0
            o = obs[j]
            q = sq[j]
            for d in range(D):
                v0 = g0 * y0[d]
                o[d] += v0
                q[d] += v0 * y0[d]
        t += 1


@njit(nogil=True, cache=True)
def frame_pairs(X, center, a, b, out, diag):
    """The features of Gaussian densities for frames [a, b), lanes innermost: with
    y = x_t - center and P = D(D+1)/2 (D with ``diag``), ``out[p, t - a]`` = y_i y_j for the
    p-th pair i <= j (row-major upper triangle; i = j only with ``diag``) and
    ``out[P + d, t - a]`` = y_d; ``out`` is (>= P + D, >= b - a), and nothing else of it is
    written.  A product of out[:, :b-a].T against per-state weights gives every state's
    quadratic form (``_gaussian.log_density``), of the weights against it the moments
    (``_gaussian.moments``).  Lanes innermost makes every pair one vector multiply: 0.06 s per
    10^6 frames of D = 16, against 0.23 s frames outer and 0.37 s for NumPy's
    x[:, iu] * x[:, ju]."""
    D = X.shape[1]
    P = D if diag else D * (D + 1) // 2
    w = b - a
    for d in range(D):
        cd = center[d]
        yd = out[P + d]
        for l in range(w):
            yd[l] = X[a + l, d] - cd
    p = 0
    for i in range(D):
        yi = out[P + i]
        for j in range(i, i + 1 if diag else D):
            yj = out[P + j]
            r = out[p]
            for l in range(w):
                r[l] = yi[l] * yj[l]
            p += 1


@njit(nogil=True, cache=True)
def full_moments(X, center, gamma, a, b, post, obs, sq):
    """``diag_moments`` with the full second moments: ``sq`` (N, D(D+1)/2) gets Σγ y_d y_e
    for the pairs d <= e (row-major upper triangle, as ``frame_pairs``).  The same four
    blocks of W frames through each per-lane partial sum; a state's γ y_d of the four blocks
    are kept for the pairs of row d.  No pairs are written per frame: at few states this beats
    ``frame_pairs`` and a BLAS product with as many columns as states."""
    D = X.shape[1]
    N = gamma.shape[1]
    P = D * (D + 1) // 2
    pp = np.zeros((N, _W))
    po = np.zeros((N, D, _W))
    ps = np.zeros((N, P, _W))
    xt = np.empty((_GROUP, D, _W))
    gt = np.empty((_GROUP, N, _W))
    v = np.empty((_GROUP, _W))
    v0, v1, v2, v3 = v[0], v[1], v[2], v[3]
    for t0 in range(a, b, _GROUP * _W):
        _moments_in(X, center, gamma, t0, b, xt, gt)
        for j in range(N):
            g0, g1, g2, g3 = gt[0, j], gt[1, j], gt[2, j], gt[3, j]
            _add_group(pp[j], g0, g1, g2, g3)
            p = 0
            for d in range(D):
                x0, x1, x2, x3 = xt[0, d], xt[1, d], xt[2, d], xt[3, d]
                o = po[j, d]
                for l in range(_W):
                    u0 = g0[l] * x0[l]
                    u1 = g1[l] * x1[l]
                    u2 = g2[l] * x2[l]
                    u3 = g3[l] * x3[l]
                    v0[l] = u0
                    v1[l] = u1
                    v2[l] = u2
                    v3[l] = u3
                    o[l] = (((o[l] + u0) + u1) + u2) + u3
                for e in range(d, D):
                    y0, y1, y2, y3 = xt[0, e], xt[1, e], xt[2, e], xt[3, e]
                    q = ps[j, p]
                    for l in range(_W):
                        q[l] = (((q[l] + v0[l] * y0[l]) + v1[l] * y1[l]) + v2[l] * y2[l]) \
                            + v3[l] * y3[l]
                    p += 1
    _fold_lanes(pp, post)
    for j in range(N):
        _fold_lanes(po[j], obs[j])
        _fold_lanes(ps[j], sq[j])


@njit(nogil=True, cache=True)
def mixture_frames(L, logw, a, b, out, shift, mix, scaled):
    """Mixture likelihoods of frames [a, b): ``L`` (n, N * nm) holds the log-densities of each
    state's nm components (state-major), ``logw`` (N, nm) the log mixture weights (-inf for a
    zero weight).  With top_j the largest of state j's terms L[t, j nm + m] + logw[j, m] and
    s_j = Σ_m exp(term - top_j) (``_exp_le0``; 0 when every term is -inf):

    - ``scaled``: out[t, j] = s_j exp(top_j - shift[t]), shift[t] = max_j top_j (0 when every
      state's terms are -inf): the framewise engine's scaled table, without a logarithm;
    - else out[t, j] = log s_j + top_j, the state's log-likelihood (-inf where s_j = 0).

    With ``mix``, L[t, j nm + m] is replaced by the component's posterior within state j (0
    where the state's terms are all -inf).  W frames at a time, copied lanes innermost so
    every loop runs on vectors of frames: at N=3, nm=4 NumPy's passes over axes of length nm
    cost 0.25 s per 10^6 frames."""
    N, nm = logw.shape
    K = N * nm
    lt = np.empty((K, _W))
    top = np.empty((N, _W))
    s = np.empty((N, _W))
    mx = np.empty(_W)
    for t0 in range(a, b, _W):
        w = min(_W, b - t0)
        for l in range(w):
            for k in range(K):
                lt[k, l] = L[t0 + l, k]
        for k in range(K):
            for l in range(w, _W):
                lt[k, l] = 0.0
        for j in range(N):
            tj = top[j]
            sj = s[j]
            for l in range(_W):
                tj[l] = -np.inf
                sj[l] = 0.0
            for m in range(nm):
                lw = logw[j, m]
                r = lt[j * nm + m]
                for l in range(_W):
                    r[l] += lw
                    tj[l] = max(tj[l], r[l])
            for l in range(_W):
                if tj[l] == -np.inf:
                    tj[l] = 0.0
            for m in range(nm):
                r = lt[j * nm + m]
                for l in range(_W):
                    r[l] = _exp_le0(r[l] - tj[l])
                    sj[l] += r[l]
            if mix:
                for m in range(nm):
                    r = lt[j * nm + m]
                    for l in range(_W):
                        r[l] = r[l] / sj[l] if sj[l] > 0.0 else 0.0
        if scaled:
            for l in range(_W):
                mx[l] = -np.inf
            for j in range(N):
                for l in range(_W):
                    if s[j, l] > 0.0:
                        mx[l] = max(mx[l], top[j, l])
            for l in range(_W):
                if mx[l] == -np.inf:
                    mx[l] = 0.0
            for j in range(N):
                tj = top[j]
                sj = s[j]
                for l in range(_W):  # a state with s_j = 0 holds top_j = 0: not above mx
                    sj[l] = sj[l] * _exp_le0(tj[l] - mx[l]) if sj[l] > 0.0 else 0.0
            for l in range(w):
                shift[t0 + l] = mx[l]
                for j in range(N):
                    out[t0 + l, j] = s[j, l]
        else:
            for l in range(w):
                for j in range(N):
                    out[t0 + l, j] = math.log(s[j, l]) + top[j, l] if s[j, l] > 0.0 else -np.inf
        if mix:
            for l in range(w):
                for k in range(K):
                    L[t0 + l, k] = lt[k, l]


@njit(nogil=True, cache=True)
def count_terms(x, a, b, table, out):
    """The count models' factorial terms of frames [a, b): out[t] = Σ_d log(x_td!) (features
    in order, from 0) from ``table`` (log k! for k < M), x float64 (n, D) C order, checking as
    it reads that each entry is a count.  Returns 0; 1 at the first entry that is not a whole
    number in [0, 2**53] (NaN and inf included: the caller raises its own error, naming it);
    2 if some entry is M or more (out left unset at those rows: the caller computes them)."""
    M = table.shape[0]
    D = x.shape[1]
    code = 0
    for t in range(a, b):
        row = x[t]
        s = 0.0
        big = False
        for d in range(D):
            v = row[d]
            if not (v >= 0.0 and v <= 9007199254740992.0 and v == math.floor(v)):
                return 1
            if v < M:
                s += table[np.int64(v)]
            else:
                big = True
        if big:
            code = 2
        else:
            out[t] = s
    return code
