"""The exact finish of ``HardMarginSVC.fit``: from SMO's multipliers (or, when SMO stalls, from a
feasibility LP's point) to the exact hard-margin solution, certified by an independent KKT check.

- ``polish``: the KKT system solved on SMO's support set, else the primal active-set method from
  SMO's (w, b), else SMO's own answer;
- ``feasible_point``: a separating (w, b) from a feasibility LP (HiGHS), or None when the classes
  are not separable;
- ``active_set``: the primal active-set method (exact: it ends on a vertex of the constraints
  with every multiplier >= 0);
- ``certified``: the KKT conditions checked afresh, to ``tol``.
"""
from __future__ import annotations

import numpy as np


def constraint_rows(X, ys):
    """The rows a_i = y_i (x_i, 1) of the constraints a_i.(w, b) >= 1."""
    return ys[:, None] * np.hstack([X, np.ones((X.shape[0], 1))])


def smo_answer(X, ys, alpha):
    """w = sum alpha_i y_i x_i and b averaged over the support vectors: SMO's own (w, b)."""
    sv = alpha > 0
    w = X.T @ (ys * alpha)
    return w, float(np.mean(ys[sv] - X[sv] @ w))


def feasible_point(X, ys):
    """(w, b) with y_i (w.x_i + b) >= 1 for all i, as one vector, from a feasibility LP (HiGHS);
    None when there is none (the classes are not linearly separable)."""
    from scipy.optimize import linprog  # noqa: PLC0415

    n, d = X.shape
    res = linprog(np.zeros(d + 1), A_ub=-constraint_rows(X, ys), b_ub=-np.ones(n),
                  bounds=[(None, None)] * (d + 1), method="highs")
    if res.status == 2:
        return None
    return res.x if res.status == 0 else np.full(d + 1, np.nan)


def polish(X, ys, alpha, grad, tol=1e-6):
    """The exact answer near SMO's: the KKT solve on its support set, else the active-set method
    from its (scaled) w and b, else SMO's own multipliers (w, b, alpha in every case)."""
    exact = solve_on_support(X, ys, alpha)
    if exact is not None:
        return exact
    # an ill-conditioned or degenerate support set (more than d + 1 samples on the margin):
    # the active-set method picks independent constraints; kept when certified to tol
    n, d = X.shape
    # from SMO's answer it needs about one step per support vector; a step costs a solve of
    # size d + 1 + |W|, so the budget is kept near that
    found = active_set(X, ys, start(X, ys, alpha, None),
                        4 * (int(np.count_nonzero(alpha)) + d + 1))
    if found is not None and certified(X, ys, *found, tol):
        return found
    return (*smo_answer(X, ys, alpha), alpha)


def solve_on_support(X, ys, alpha):
    """Exact KKT solve on the support set {alpha > 0}: (w, b, alpha), or None when its answer
    misses the checks."""
    sv = np.flatnonzero(alpha > 0)
    Xs, ysv = X[sv], ys[sv]
    k = sv.shape[0]
    A = np.zeros((k + 1, k + 1))
    A[:k, :k] = Xs @ Xs.T
    A[:k, k] = 1.0
    A[k, :k] = 1.0
    rhs = np.append(ysv, 0.0)
    # an LU solve first (a sixth of lstsq's time on the benchmark's 22 x 22 system); lstsq
    # when that fails or its answer misses the checks (a singular or ill-conditioned support set)
    for solver in ("solve", "lstsq"):
        if solver == "solve":
            try:
                sol = np.linalg.solve(A, rhs)
            except np.linalg.LinAlgError:
                continue
        else:
            sol = np.linalg.lstsq(A, rhs, rcond=None)[0]
        beta, b = sol[:k], sol[k]
        lam = beta * ysv
        w = Xs.T @ beta
        margins = ys * (X @ w + b)
        scale = max(1.0, float(np.abs(lam).max()))
        if (lam.min() >= -1e-9 * scale and margins.min() >= 1 - 1e-9
                and np.abs(A @ sol - rhs).max() <= 1e-9):
            out = np.zeros_like(alpha)
            out[sv] = np.maximum(lam, 0.0)
            return w, float(b) + 0.0, out  # + 0.0: an exact zero intercept prints as 0, not -0
    return None


def certified(X, ys, w, b, alpha, tol) -> bool:
    """Do (w, b) and the multipliers alpha satisfy the KKT conditions?  Margins >= 1 - tol,
    support vectors' margins within tol of 1, and stationarity (w = sum alpha_i y_i x_i,
    sum alpha_i y_i = 0) to a backward error of 1e-9: on badly scaled features the sums cancel
    by many digits, so they are compared with the sizes of their terms."""
    m = ys * (X @ w + b)
    sv = alpha > 0
    size = np.abs(X).T @ alpha
    return bool(sv.any() and (alpha >= 0).all() and m.min() >= 1 - tol
                and np.abs(m[sv] - 1).max() <= tol
                and (np.abs(w - X.T @ (ys * alpha)) <= 1e-9 * size + 1e-300).all()
                and abs(alpha @ ys) <= 1e-9 * alpha.sum())


def start(X, ys, alpha, z_lp):
    """A feasible (w, b) for the active-set finish: SMO's, scaled up until every margin is >= 1,
    when it separates the classes and is the shorter (or there is no LP point z_lp); the
    feasibility LP's otherwise."""
    if (alpha > 0).any():
        w, b = smo_answer(X, ys, alpha)
        z = np.append(w, b)
        m = ys * (X @ w + b)
        if m.min() > 0 and (z_lp is None
                            or np.linalg.norm(w) / m.min() < np.linalg.norm(z_lp[:-1])):
            return z / m.min()
    return z_lp


def active_set(X, ys, z, max_steps):
    """The primal active-set method (Nocedal & Wright, Algorithm 16.3) on
    min 1/2 ||w||^2 subject to a_i.z >= 1, a_i = y_i (x_i, 1), z = (w, b), from a feasible z.

    Each step minimises the objective on the working set W of active constraints (one KKT
    system of size d + 1 + |W|), moves as far toward that minimum as feasibility allows and adds
    the constraint that blocks it; at a minimum it drops the constraint with the most negative
    multiplier, or stops when none is negative.  Exact to rounding in finitely many steps, and
    w, b come from the primal solve, so badly scaled features do not cost them digits (w from
    the multipliers would: the sum cancels).  Returns (w, b, the multiplier of every sample), or
    None after ``max_steps`` steps.
    """
    n, d = X.shape
    A = constraint_rows(X, ys)
    z = z / (A @ z).min()  # on the boundary: the closest sample at margin exactly 1
    W = []
    in_w = np.zeros(n, dtype=bool)
    at_min = False  # z minimises the objective on W (the last step was a full one)
    for _ in range(max_steps):
        k = len(W)
        g = np.append(z[:d], 0.0)  # gradient of 1/2 ||w||^2 in z
        if k == 0:
            p, lam = -g, np.zeros(0)
        else:
            K = np.zeros((d + 1 + k, d + 1 + k))
            K[np.arange(d), np.arange(d)] = 1.0
            K[:d + 1, d + 1:] = -A[W].T
            K[d + 1:, :d + 1] = A[W]
            rhs = np.concatenate([-g, np.zeros(k)])
            try:
                sol = np.linalg.solve(K, rhs)
                sol += np.linalg.solve(K, rhs - K @ sol)  # one step of iterative refinement
            except np.linalg.LinAlgError:
                sol = np.linalg.lstsq(K, rhs, rcond=None)[0]
            p, lam = sol[:d + 1], sol[d + 1:]
        if at_min or np.abs(p).max() <= 1e-13 * max(1.0, np.abs(z).max()):
            at_min = False
            j = int(np.argmin(lam)) if k else -1
            if k == 0 or lam[j] >= -1e-12 * max(1.0, np.abs(lam).max()):
                alpha = np.zeros(n)
                alpha[W] = np.maximum(lam, 0.0)
                return z[:d].copy(), float(z[d]) + 0.0, alpha
            in_w[W[j]] = False
            del W[j]
            continue
        ap = A @ p
        cand = np.flatnonzero(~in_w & (ap < 0))
        step, block = 1.0, -1
        if cand.size:
            r = np.maximum(A[cand] @ z - 1.0, 0.0) / -ap[cand]
            t = int(np.argmin(r))
            if r[t] < 1.0:
                step, block = float(r[t]), int(cand[t])
        z = z + step * p
        at_min = block < 0
        if block >= 0:
            W.append(block)
            in_w[block] = True
    return None
