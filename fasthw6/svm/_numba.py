"""Numba kernel for the hard-margin SVM dual (backend ``"numba"``): SMO on a growing working set.

Minimises f(a) = 1/2 a'Qa - sum(a), Q_ij = y_i y_j x_i.x_j, subject to a >= 0 and y'a = 0 (the
Lagrangian dual of question 3 with the sign flipped).  A hard-margin solution has about d + 1
nonzero multipliers, so SMO over all n samples spends nearly all its time scanning samples
whose multiplier stays 0.  Instead the kernel solves the dual restricted to a small working set
W (a_t = 0 off W) by SMO with the second-order working-set rule (Fan, Chen & Lin 2005) on the
Gram block of W, then, because the kernel is linear, gets every sample's gradient
G = y * (X w) - 1 from w = sum_W a_t y_t x_t in one pass over X, and adds the samples outside W
that violate the optimality conditions most.  It stops when the KKT gap over all n samples is
below ``tol``, the same test as plain SMO.  A full KKT gap >= tol with W's own gap < tol always
leaves an outside sample violating by >= tol/2, so W grows every round and the loop ends.

SMO alone takes tens of thousands of steps on such problems (n = 1853, d = 20: 24k steps, and
scikit-learn's SVC 32k), nearly all of them spent settling the last few multipliers; every
``JUMP`` steps an active-set move (``_jump``) settles them with a few small linear solves.
Inputs were validated by ``fasthw6.svm.api``; nothing here checks bounds.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from .._jit import install_cache_locator

install_cache_locator()  # before the first @njit: kernels are cached under fasthw6._jit.cache_dir()

TAU = 1e-12
BATCH = 16  # samples added to the working set per round
JUMP = 100  # SMO steps between active-set jumps
JUMP_D2 = 16  # steps between jumps: max(JUMP, d^2 / JUMP_D2), since a jump's solves cost ~d^3
# (n=500, d=200: fit 49.9 -> 18.2 ms; n=1000, d=100: 34.1 -> 19.9; d=20 unchanged)
SUBTOL = 0.3  # each round solves W to SUBTOL x the last full gap (tol at the end)


@njit(nogil=True, cache=True)
def _solve(A, b, k):
    """Solve A[:k, :k] x = b[:k] in place (x in b) by Gaussian elimination with partial
    pivoting; False when a pivot is negligible (a singular system)."""
    scale = 0.0
    for r in range(k):
        for c in range(k):
            scale = max(scale, abs(A[r, c]))
    for c in range(k):
        p = c
        for r in range(c + 1, k):
            if abs(A[r, c]) > abs(A[p, c]):
                p = r
        if not abs(A[p, c]) > 1e-12 * scale:
            return False
        if p != c:
            for u in range(k):
                A[c, u], A[p, u] = A[p, u], A[c, u]
            b[c], b[p] = b[p], b[c]
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


@njit(nogil=True, cache=True)
def _jump(K, XW, yw, aw, gw, m, fidx, A, sol, G, h):
    """Active-set steps on the free set F = {a > 0} (the dual restricted to a_t = 0 off F, y'a = 0):

    - |F| <= d + 1: move a toward that restricted problem's minimiser (the support-set equations
      y_t (w.x_t + b) = 1 on F), as far as a >= 0 allows;
    - |F| > d + 1: those equations are over-determined and the restricted dual decreases without
      bound along p = the projection of 1 onto {p : sum_F p_t y_t x_t = 0, y'p = 0}: move along p
      until a multiplier reaches 0;

    dropping the multiplier that reaches 0, until the minimiser is reached or a system is
    singular.  The dual decreases along every move, so SMO's convergence is kept.  SMO alone
    needs tens of thousands of steps to settle the last few multipliers of a hard-margin problem;
    these steps settle them in a few solves.  Refreshes gw (from w, built in h); returns whether
    a moved.  G, h: (d + 1, d + 1) and (d + 1,) scratch."""
    d = XW.shape[1]
    moved = False
    built = False
    for _ in range(m):
        nf = 0
        for t in range(m):
            if aw[t] > 0:
                fidx[nf] = t
                nf += 1
        if nf < 2:
            break
        if nf <= d + 1:
            for r in range(nf):
                kr = K[fidx[r]]
                for c in range(nf):
                    A[r, c] = kr[fidx[c]]
                A[r, nf] = 1.0
                A[nf, r] = 1.0
                sol[r] = yw[fidx[r]]
            A[nf, nf] = 0.0
            sol[nf] = 0.0
            if not _solve(A, sol, nf + 1):
                break
            for r in range(nf):
                sol[r] = sol[r] * yw[fidx[r]] - aw[fidx[r]]  # the move p
            full = 1.0
        else:
            # M = [y_t x_t ; y_t] (d + 1, nf); p = 1 - M'c with (M M') c = M 1.  M M' and M 1
            # are sums over F, built once and downdated as samples leave F.
            if not built:
                for k in range(d + 1):
                    for u in range(d + 1):
                        G[k, u] = 0.0
                    h[k] = 0.0
                for r in range(nf):
                    t = fidx[r]
                    xt = XW[t]
                    for k in range(d):
                        for u in range(k + 1):
                            G[k, u] += xt[k] * xt[u]
                        G[k, d] += xt[k]
                        h[k] += yw[t] * xt[k]
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
            full = np.inf
        step = full
        drop = -1
        for r in range(nf):
            a = aw[fidx[r]]
            p = sol[r]
            if p < 0 and a < -p * step:
                step = a / -p
                drop = r
        if drop < 0 and step == np.inf:  # no multiplier bounds the ray: W is not separable
            break
        for r in range(nf):
            aw[fidx[r]] += step * sol[r]
        moved = True
        if drop < 0:
            break
        t = fidx[drop]
        aw[t] = 0.0
        if built:
            xt = XW[t]
            for k in range(d):
                for u in range(k + 1):
                    G[k, u] -= xt[k] * xt[u]
                G[k, d] -= xt[k]
                h[k] -= yw[t] * xt[k]
            h[d] -= yw[t]
    if moved:
        for k in range(d):
            h[k] = 0.0
        for t in range(m):
            if aw[t] < 0:
                aw[t] = 0.0
            if aw[t] > 0:
                c = aw[t] * yw[t]
                for k in range(d):
                    h[k] += c * XW[t, k]
        for t in range(m):
            acc = 0.0
            for k in range(d):
                acc += XW[t, k] * h[k]
            gw[t] = yw[t] * acc - 1.0
    return moved


@njit(nogil=True, cache=True)
def _sub_smo(K, XW, yw, aw, gw, m, tol, budget, fidx, A, sol, G, h):
    """SMO on the first m working-set samples (Gram block K); returns (steps, gap)."""
    gap = np.inf
    it = 0
    d = XW.shape[1]
    J = max(JUMP, d * d // JUMP_D2)
    while it < budget:
        if it % J == J - 1:
            _jump(K, XW, yw, aw, gw, m, fidx, A, sol, G, h)
        # i: largest -y G over I_up = {y = +1} U {y = -1, a > 0}
        gmax = -np.inf
        i = -1
        for t in range(m):
            v = -yw[t] * gw[t]
            if (yw[t] > 0 or aw[t] > 0) and v > gmax:
                gmax = v
                i = t
        if i < 0:  # no candidate: the gradient overflowed (a diverging, non-separable run)
            gap = np.inf
            break
        # j: second-order choice over I_low = {y = -1} U {y = +1, a > 0}
        ki = K[i]
        gmin = np.inf
        j = -1
        best = np.inf
        for t in range(m):
            if yw[t] < 0 or aw[t] > 0:
                v = -yw[t] * gw[t]
                if v < gmin:
                    gmin = v
                b = gmax - v
                if b > 0:
                    a = ki[i] + K[t, t] - 2.0 * ki[t]
                    if a <= 0:
                        a = TAU
                    obj = -(b * b) / a
                    if obj < best:
                        best = obj
                        j = t
        gap = gmax - gmin
        if gap < tol or j < 0:
            break
        kj = K[j]
        quad = ki[i] + kj[j] - 2.0 * ki[j]
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
            gw[t] += yw[t] * (ci * ki[t] + cj * kj[t])
        it += 1
    return it, gap


@njit(nogil=True, cache=True)
def _worst(viol, pos, y, cls, q, out_idx, out_val):
    """The (at most q) samples off the working set (pos < 0) of class ``cls`` (0: both) with the
    largest viol > 0, written to out_idx; returns their count."""
    c = 0
    for t in range(viol.shape[0]):
        v = viol[t]
        if pos[t] >= 0 or not v > 0 or (cls != 0 and y[t] != cls):
            continue
        if c == q and v <= out_val[c - 1]:
            continue
        # insertion into out_val, kept sorted descending
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


@njit(nogil=True, cache=True)
def _grow(idx, XW, K, yw, aw, gw, m, cap):
    """The working-set arrays at capacity ``cap``, their first m entries kept."""
    idx2 = np.empty(cap, np.int64)
    XW2 = np.empty((cap, XW.shape[1]))
    K2 = np.empty((cap, cap))
    yw2 = np.empty(cap)
    aw2 = np.empty(cap)
    gw2 = np.empty(cap)
    idx2[:m] = idx[:m]
    XW2[:m] = XW[:m]
    K2[:m, :m] = K[:m, :m]
    yw2[:m] = yw[:m]
    aw2[:m] = aw[:m]
    gw2[:m] = gw[:m]
    return idx2, XW2, K2, yw2, aw2, gw2


@njit(nogil=True, cache=True, inline="always")
def _scores(XT, w, f):
    """f = X w from X^T (d, n): one contiguous axpy per feature."""
    f[:] = 0.0
    for k in range(XT.shape[0]):
        wk = w[k]
        xk = XT[k]
        for t in range(f.shape[0]):
            f[t] += wk * xk[t]


@njit(nogil=True, cache=True)
def smo_solve(XT, y, alpha, grad, tol, max_iter, n_cache):
    """Run at most ``max_iter`` SMO steps from alpha; return (steps, final KKT gap over all n).

    ``grad`` is overwritten with y * (X w) - 1 of the final alpha.  ``n_cache`` is the working
    set's initial capacity (it grows when needed).
    """
    d, n = XT.shape
    cap = max(2, min(n_cache, n))
    idx = np.empty(cap, np.int64)
    XW = np.empty((cap, d))
    K = np.empty((cap, cap))
    yw = np.empty(cap)
    aw = np.empty(cap)
    gw = np.empty(cap)
    pos = np.full(n, -1, np.int64)
    f = np.empty(n)
    viol = np.empty(n)
    w = np.zeros(d)
    new_idx = np.empty(max(BATCH, 1), np.int64)
    new_val = np.empty(max(BATCH, 1))
    seed_idx = np.empty(n, np.int64)
    fidx = np.empty(n, np.int64)
    A = np.empty((d + 2, d + 2))
    sol = np.empty(n + 1)
    G = np.empty((d + 1, d + 1))
    h = np.empty(d + 1)

    # seed: the current support, or else the samples of each class nearest the other class
    # along the difference of the class means
    ns = 0
    for t in range(n):
        if alpha[t] > 0:
            seed_idx[ns] = t
            ns += 1
    if ns == 0:
        npos = 0
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
        _scores(XT, w, f)
        # in (0, 1), largest nearest the other side; y f is taken in units of max |f|, so that
        # exp neither overflows nor rounds every sample of a class to the same value (raw
        # scores above about 710 made every viol 0: an empty seed, no SMO step, and fit left to
        # the LP and active-set finish, which raised RuntimeError on badly scaled data)
        scale = 0.0
        for t in range(n):
            scale = max(scale, abs(f[t]))
        for t in range(n):
            if scale > 0.0 and scale < np.inf:
                viol[t] = 1.0 / (1.0 + np.exp(y[t] * (f[t] / scale)))
            else:
                viol[t] = 0.5
        for cls in (1.0, -1.0):
            c = _worst(viol, pos, y, cls, BATCH // 2, new_idx, new_val)
            for r in range(c):
                seed_idx[ns] = new_idx[r]
                ns += 1
    m = 0
    it = 0
    gap = np.inf
    adding = seed_idx
    n_add = ns
    fresh = True
    while True:
        # grow the working set by adding[:n_add], extending its Gram block
        if m + n_add > cap:
            cap = min(n, max(2 * cap, m + n_add))
            idx, XW, K, yw, aw, gw = _grow(idx, XW, K, yw, aw, gw, m, cap)
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
            steps, _ = _sub_smo(K, XW, yw, aw, gw, m, max(tol, SUBTOL * gap), max_iter - it,
                                fidx, A, sol, G, h)
            it += steps
            if steps == 0 and n_add == 0:  # rounding left nothing to do: report the gap as is
                break
        fresh = False

        # the gradient of every sample from w = sum_W a y x (one pass over X)
        w[:] = 0.0
        for s in range(m):
            c = aw[s] * yw[s]
            if c != 0.0:
                for k in range(d):
                    w[k] += c * XW[s, k]
        _scores(XT, w, f)
        for s in range(m):
            alpha[idx[s]] = aw[s]
        # KKT gap over all n, and over W alone: -y G = y - f
        gmax = -np.inf
        gmin = np.inf
        wmax = -np.inf
        wmin = np.inf
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
        if not np.isfinite(gap):  # overflowed multipliers: a diverging, non-separable run
            gap = np.inf
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

