# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython kernel for the hard-margin SVM dual (backend ``"cython"``): the numba kernel's
algorithm and signature (SMO with the second-order working-set rule on a growing working set,
active-set jumps, every sample's gradient from X w once per round; see ``_numba.py``).
The SVM works in float64 whatever the input dtype, so there is no fused type here.
"""
import numpy as np

from libc.math cimport INFINITY, exp, fabs, isfinite

cdef double TAU = 1e-12
cdef Py_ssize_t BATCH = 16  # samples added to the working set per round
cdef Py_ssize_t JUMP = 100  # SMO steps between active-set jumps
cdef Py_ssize_t JUMP_D2 = 16  # as _numba: max(JUMP, d^2 / JUMP_D2) steps between jumps
cdef double SUBTOL = 0.3  # each round solves W to SUBTOL x the last full gap (tol at the end)


cdef bint _solve(double[:, ::1] A, double[::1] b, Py_ssize_t k) noexcept nogil:
    cdef double scale = 0.0, e, acc, tmp
    cdef Py_ssize_t r, c, p, u
    for r in range(k):
        for c in range(k):
            if abs(A[r, c]) > scale:
                scale = abs(A[r, c])
    for c in range(k):
        p = c
        for r in range(c + 1, k):
            if abs(A[r, c]) > abs(A[p, c]):
                p = r
        if not abs(A[p, c]) > 1e-12 * scale:
            return False
        if p != c:
            for u in range(k):
                tmp = A[c, u]
                A[c, u] = A[p, u]
                A[p, u] = tmp
            tmp = b[c]
            b[c] = b[p]
            b[p] = tmp
        for r in range(c + 1, k):
            e = A[r, c] / A[c, c]
            if e != 0.0:
                for u in range(c, k):
                    A[r, u] -= e * A[c, u]
                b[r] -= e * b[c]
    for c in range(k - 1, -1, -1):
        acc = b[c]
        for u in range(c + 1, k):
            acc -= A[c, u] * b[u]
        b[c] = acc / A[c, c]
    return True


cdef bint _jump(double[:, ::1] K, double[:, ::1] XW, double[::1] yw, double[::1] aw,
                double[::1] gw, Py_ssize_t m, Py_ssize_t[::1] fidx, double[:, ::1] A,
                double[::1] sol, double[:, ::1] G, double[::1] h) noexcept nogil:
    cdef Py_ssize_t d = XW.shape[1], nf, t, r, c, k, u, drop, rep
    cdef bint moved = False, built = False
    cdef double full, step, a, p, acc
    for rep in range(m):
        nf = 0
        for t in range(m):
            if aw[t] > 0:
                fidx[nf] = t
                nf += 1
        if nf < 2:
            break
        if nf <= d + 1:
            for r in range(nf):
                for c in range(nf):
                    A[r, c] = K[fidx[r], fidx[c]]
                A[r, nf] = 1.0
                A[nf, r] = 1.0
                sol[r] = yw[fidx[r]]
            A[nf, nf] = 0.0
            sol[nf] = 0.0
            if not _solve(A, sol, nf + 1):
                break
            for r in range(nf):
                sol[r] = sol[r] * yw[fidx[r]] - aw[fidx[r]]
            full = 1.0
        else:
            if not built:
                for k in range(d + 1):
                    for u in range(d + 1):
                        G[k, u] = 0.0
                    h[k] = 0.0
                for r in range(nf):
                    t = fidx[r]
                    for k in range(d):
                        for u in range(k + 1):
                            G[k, u] += XW[t, k] * XW[t, u]
                        G[k, d] += XW[t, k]
                        h[k] += yw[t] * XW[t, k]
                    h[d] += yw[t]
                built = True
            for k in range(d):
                for u in range(k + 1):
                    A[k, u] = G[k, u]
                    A[u, k] = G[k, u]
                A[k, d] = G[k, d]
                A[d, k] = G[k, d]
                sol[k] = h[k]
            A[d, d] = nf
            sol[d] = h[d]
            if not _solve(A, sol, d + 1):
                break
            for k in range(d + 1):
                A[0, k] = sol[k]
            for r in range(nf):
                t = fidx[r]
                acc = A[0, d]
                for k in range(d):
                    acc += XW[t, k] * A[0, k]
                sol[r] = 1.0 - yw[t] * acc
            full = INFINITY
        step = full
        drop = -1
        for r in range(nf):
            a = aw[fidx[r]]
            p = sol[r]
            if p < 0 and a < -p * step:
                step = a / -p
                drop = r
        if drop < 0 and step == INFINITY:  # no multiplier bounds the ray: W is not separable
            break
        for r in range(nf):
            aw[fidx[r]] += step * sol[r]
        moved = True
        if drop < 0:
            break
        t = fidx[drop]
        aw[t] = 0.0
        if built:
            for k in range(d):
                for u in range(k + 1):
                    G[k, u] -= XW[t, k] * XW[t, u]
                G[k, d] -= XW[t, k]
                h[k] -= yw[t] * XW[t, k]
            h[d] -= yw[t]
    if moved:
        for k in range(d):
            h[k] = 0.0
        for t in range(m):
            if aw[t] < 0:
                aw[t] = 0.0
            if aw[t] > 0:
                a = aw[t] * yw[t]
                for k in range(d):
                    h[k] += a * XW[t, k]
        for t in range(m):
            acc = 0.0
            for k in range(d):
                acc += XW[t, k] * h[k]
            gw[t] = yw[t] * acc - 1.0
    return moved


cdef Py_ssize_t _sub_smo(double[:, ::1] K, double[:, ::1] XW, double[::1] yw, double[::1] aw,
                         double[::1] gw, Py_ssize_t m, double tol, Py_ssize_t budget,
                         Py_ssize_t[::1] fidx, double[:, ::1] A, double[::1] sol,
                         double[:, ::1] G, double[::1] h, double *gap_out) noexcept nogil:
    cdef double gap = INFINITY, gmax, gmin, v, b, a, obj, best, quad, ai, aj, ni, nj, delta
    cdef double diff, s, ci, cj
    cdef Py_ssize_t it = 0, i, j, t
    cdef Py_ssize_t d = XW.shape[1]
    cdef Py_ssize_t J = max(JUMP, d * d // JUMP_D2)
    while it < budget:
        if it % J == J - 1:
            _jump(K, XW, yw, aw, gw, m, fidx, A, sol, G, h)
        gmax = -INFINITY
        i = -1
        for t in range(m):
            v = -yw[t] * gw[t]
            if (yw[t] > 0 or aw[t] > 0) and v > gmax:
                gmax = v
                i = t
        if i < 0:  # no candidate: the gradient overflowed (a diverging, non-separable run)
            gap = INFINITY
            break
        gmin = INFINITY
        j = -1
        best = INFINITY
        for t in range(m):
            if yw[t] < 0 or aw[t] > 0:
                v = -yw[t] * gw[t]
                if v < gmin:
                    gmin = v
                b = gmax - v
                if b > 0:
                    a = K[i, i] + K[t, t] - 2.0 * K[i, t]
                    if a <= 0:
                        a = TAU
                    obj = -(b * b) / a
                    if obj < best:
                        best = obj
                        j = t
        gap = gmax - gmin
        if gap < tol or j < 0:
            break
        quad = K[i, i] + K[j, j] - 2.0 * K[i, j]
        if quad <= 0:
            quad = TAU
        ai = aw[i]
        aj = aw[j]
        if yw[i] != yw[j]:
            delta = (-gw[i] - gw[j]) / quad
            diff = ai - aj
            ni = ai + delta
            nj = aj + delta
            if diff > 0:
                if nj < 0:
                    nj = 0.0
                    ni = diff
            else:
                if ni < 0:
                    ni = 0.0
                    nj = -diff
        else:
            delta = (gw[i] - gw[j]) / quad
            s = ai + aj
            ni = ai - delta
            nj = aj + delta
            if ni < 0:
                ni = 0.0
                nj = s
            if nj < 0:
                nj = 0.0
                ni = s
        aw[i] = ni
        aw[j] = nj
        ci = yw[i] * (ni - ai)
        cj = yw[j] * (nj - aj)
        for t in range(m):
            gw[t] += yw[t] * (ci * K[i, t] + cj * K[j, t])
        it += 1
    gap_out[0] = gap
    return it


cdef Py_ssize_t _worst(double[::1] viol, Py_ssize_t[::1] pos, const double[::1] y, double cls,
                       Py_ssize_t q, Py_ssize_t[::1] out_idx, double[::1] out_val) noexcept nogil:
    cdef Py_ssize_t c = 0, t, r
    cdef double v
    for t in range(viol.shape[0]):
        v = viol[t]
        if pos[t] >= 0 or not v > 0 or (cls != 0 and y[t] != cls):
            continue
        if c == q and v <= out_val[c - 1]:
            continue
        r = c if c < q else q - 1
        while r > 0 and out_val[r - 1] < v:
            out_val[r] = out_val[r - 1]
            out_idx[r] = out_idx[r - 1]
            r -= 1
        out_val[r] = v
        out_idx[r] = t
        if c < q:
            c += 1
    return c


cdef inline void _scores(const double[:, ::1] XT, double[::1] w, double[::1] f, Py_ssize_t n,
                         Py_ssize_t d) noexcept nogil:
    """As _numba._scores: f = X w from X^T (d, n), one contiguous axpy per feature."""
    cdef Py_ssize_t k, t
    cdef double wk
    for t in range(n):
        f[t] = 0.0
    for k in range(d):
        wk = w[k]
        for t in range(n):
            f[t] += wk * XT[k, t]


def smo_solve(const double[:, ::1] XT, const double[::1] y, double[::1] alpha, double[::1] grad,
              double tol, Py_ssize_t max_iter, Py_ssize_t n_cache):
    cdef Py_ssize_t d = XT.shape[0], n = XT.shape[1]
    cdef Py_ssize_t cap = max(2, min(n_cache, n)), ncap
    cdef Py_ssize_t[::1] idx = np.empty(cap, np.intp)
    cdef double[:, ::1] XW = np.empty((cap, d))
    cdef double[:, ::1] K = np.empty((cap, cap))
    cdef double[::1] yw = np.empty(cap)
    cdef double[::1] aw = np.empty(cap)
    cdef double[::1] gw = np.empty(cap)
    cdef Py_ssize_t[::1] pos = np.full(n, -1, np.intp)
    cdef double[::1] f = np.empty(n)
    cdef double[::1] viol = np.empty(n)
    cdef double[::1] w = np.zeros(d)
    cdef Py_ssize_t[::1] new_idx = np.empty(max(BATCH, 1), np.intp)
    cdef double[::1] new_val = np.empty(max(BATCH, 1))
    cdef Py_ssize_t[::1] seed_idx = np.empty(n, np.intp)
    cdef Py_ssize_t[::1] fidx = np.empty(n, np.intp)
    cdef double[:, ::1] A = np.empty((d + 2, d + 2))
    cdef double[::1] sol = np.empty(n + 1)
    cdef double[:, ::1] G = np.empty((d + 1, d + 1))
    cdef double[::1] h = np.empty(d + 1)
    cdef Py_ssize_t[::1] adding
    cdef Py_ssize_t ns = 0, npos = 0, t, k, r, s, u, c, m = 0, it = 0, n_add, steps
    cdef double sp, sn, wk, acc, coef, gmax, gmin, wmax, wmin, v, mid, subgap, scale
    cdef double gap = INFINITY
    cdef bint fresh = True, up, low

    # seed: the current support, or else the samples of each class nearest the other class
    # along the difference of the class means
    with nogil:
        for t in range(n):
            if alpha[t] > 0:
                seed_idx[ns] = t
                ns += 1
        if ns == 0:
            for t in range(n):
                if y[t] > 0:
                    npos += 1
            for k in range(d):
                sp = 0.0
                sn = 0.0
                for t in range(n):
                    if y[t] > 0:
                        sp += XT[k, t]
                    else:
                        sn += XT[k, t]
                w[k] = sp / npos - sn / (n - npos)
            _scores(XT, w, f, n, d)
            # y f in units of max |f|, as the numba kernel (raw scores above about 710 made
            # every viol 0: an empty seed)
            scale = 0.0
            for t in range(n):
                scale = max(scale, fabs(f[t]))
            for t in range(n):
                if scale > 0.0 and scale < INFINITY:
                    viol[t] = 1.0 / (1.0 + exp(y[t] * (f[t] / scale)))
                else:
                    viol[t] = 0.5
            c = _worst(viol, pos, y, 1.0, BATCH // 2, new_idx, new_val)
            for r in range(c):
                seed_idx[ns] = new_idx[r]
                ns += 1
            c = _worst(viol, pos, y, -1.0, BATCH // 2, new_idx, new_val)
            for r in range(c):
                seed_idx[ns] = new_idx[r]
                ns += 1
    adding = seed_idx
    n_add = ns
    while True:
        # grow the working set by adding[:n_add], extending its Gram block
        if m + n_add > cap:
            ncap = min(n, max(2 * cap, m + n_add))
            idx2 = np.empty(ncap, np.intp)
            XW2 = np.empty((ncap, d))
            K2 = np.empty((ncap, ncap))
            yw2 = np.empty(ncap)
            aw2 = np.empty(ncap)
            gw2 = np.empty(ncap)
            idx2[:m] = idx[:m]
            XW2[:m] = XW[:m]
            K2[:m, :m] = K[:m, :m]
            yw2[:m] = yw[:m]
            aw2[:m] = aw[:m]
            gw2[:m] = gw[:m]
            idx, XW, K, yw, aw, gw, cap = idx2, XW2, K2, yw2, aw2, gw2, ncap
        with nogil:
            for r in range(n_add):
                t = adding[r]
                s = m + r
                pos[t] = s
                idx[s] = t
                yw[s] = y[t]
                aw[s] = alpha[t]
                for k in range(d):
                    XW[s, k] = XT[k, t]
                for u in range(s + 1):
                    acc = 0.0
                    for k in range(d):
                        acc += XW[s, k] * XW[u, k]
                    K[s, u] = acc
                    K[u, s] = acc
            m += n_add
            if not fresh:
                for s in range(m):
                    gw[s] = grad[idx[s]]
                steps = _sub_smo(K, XW, yw, aw, gw, m, max(tol, SUBTOL * gap), max_iter - it,
                                 fidx, A, sol, G, h, &subgap)
                it += steps
                if steps == 0 and n_add == 0:  # rounding left nothing to do: report the gap as is
                    break
            fresh = False

            # the gradient of every sample from w = sum_W a y x (one pass over X)
            for k in range(d):
                w[k] = 0.0
            for s in range(m):
                coef = aw[s] * yw[s]
                if coef != 0.0:
                    for k in range(d):
                        w[k] += coef * XW[s, k]
            _scores(XT, w, f, n, d)
            for s in range(m):
                alpha[idx[s]] = aw[s]
            # KKT gap over all n, and over W alone: -y G = y - f
            gmax = -INFINITY
            gmin = INFINITY
            wmax = -INFINITY
            wmin = INFINITY
            for t in range(n):
                grad[t] = y[t] * f[t] - 1.0
                v = y[t] - f[t]
                up = y[t] > 0 or alpha[t] > 0
                low = y[t] < 0 or alpha[t] > 0
                if up and v > gmax:
                    gmax = v
                if low and v < gmin:
                    gmin = v
                if pos[t] >= 0:
                    if up and v > wmax:
                        wmax = v
                    if low and v < wmin:
                        wmin = v
            gap = gmax - gmin
            if not isfinite(gap):  # overflowed multipliers: a diverging, non-separable run
                gap = INFINITY
                break
            if gap < tol or it >= max_iter:
                break

            # outside W a_t = 0: y = +1 violates above W's midpoint, y = -1 below it
            mid = 0.5 * (wmax + wmin)
            for t in range(n):
                v = y[t] - f[t]
                viol[t] = v - mid if y[t] > 0 else mid - v
            n_add = _worst(viol, pos, y, 0.0, BATCH, new_idx, new_val)
        adding = new_idx
    return it, gap
