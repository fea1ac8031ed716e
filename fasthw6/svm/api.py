"""The hard-margin support vector classifier of question 3: validation, dual solve, exact polish.

``HardMarginSVC.fit`` solves the Lagrangian dual

    max_lambda  sum(lambda) - 1/2 sum_ij lambda_i lambda_j y_i y_j x_i.x_j
    subject to  lambda >= 0,  sum(lambda_i y_i) = 0

with the compiled SMO kernel (``get_kernel("svm", "smo_solve")``) until the KKT gap is below
``tol``, then solves the document's stationarity conditions exactly on the support set found,
w = sum lambda_i y_i x_i, sum lambda_i y_i = 0, y_i (w.x_i + b) = 1 for every support vector,
one small linear system, and keeps that solution when it satisfies every KKT condition.

When SMO has not converged after its first budget of steps (badly scaled features make the Gram
matrix ill-conditioned, and SMO then crawls or stalls: features spanning 1e-3..1e3 stalled it at
a KKT gap of 1e-5 to 1e-3 after 10^7 steps), a feasibility LP decides separability and gives a
feasible point, and the exact primal active-set method (``_exact.active_set``) finishes from there:
w and b from its primal solve, the multipliers from its KKT system, kept when an independent KKT
check certifies them.
"""
from __future__ import annotations

import numpy as np

from . import _anchors  # noqa: F401  (registers the anchors of these functions)
from . import _exact
from .._backend import get_kernel
from .._validate import as_float_array, as_int


class NotSeparableError(ValueError):
    """The two classes cannot be separated by a hyperplane: the hard-margin problem is infeasible.

    Examples
    --------
    >>> issubclass(NotSeparableError, ValueError)
    True
    """


class HardMarginSVC:
    """Linear hard-margin SVM: min 1/2 ||w||^2 subject to y_i (w.x_i + b) >= 1.

    Parameters
    ----------
    tol : float, default 1e-6
        SMO stops when the KKT gap (largest violation of the optimality conditions, in units of
        the functional margin) is below ``tol``; the exact polish then usually makes the answer
        exact to rounding.
    max_iter : int, default 10_000_000
        SMO steps allowed (the compiled kernels' active-set moves are not counted).
    cache_rows : int, default 256
        Initial capacity (samples) of the compiled kernel's working set and its Gram block; it
        grows when needed.
    backend : str, optional
        ``"numba"``, ``"cython"``, ``"numpy"`` or ``"auto"``.

    Attributes
    ----------
    coef_ : ndarray (1, d)
        w.
    intercept_ : ndarray (1,)
        b.
    classes_ : ndarray (2,)
        Sorted labels; ``classes_[1]`` is the +1 class.
    support_ : ndarray of int
        Indices of the support vectors (lambda > 0), ascending.
    support_vectors_ : ndarray (n_SV, d)
    dual_coef_ : ndarray (1, n_SV)
        y_i lambda_i of the support vectors, as scikit-learn.
    n_support_ : ndarray (2,)
        Support vectors per class.
    alphas_ : ndarray (n_samples,)
        The multiplier lambda of every sample (0 off the support set).
    margin_ : float
        2 / ||w||, the width of the margin.
    n_iter_ : int
        SMO steps taken (backends differ: the compiled kernels need far fewer).

    Examples
    --------
    >>> clf = HardMarginSVC().fit([[1, -1], [-1, -1]], [1, -1])  # the document's example
    >>> clf.coef_.round(12), clf.intercept_.round(12), clf.alphas_.round(12)
    (array([[1., 0.]]), array([0.]), array([0.5, 0.5]))
    """

    def __init__(self, tol=1e-6, max_iter=10_000_000, cache_rows=256, *, backend=None):
        self.tol = tol
        self.max_iter = max_iter
        self.cache_rows = cache_rows
        self.backend = backend

    # ------------------------------------------------------------------ fit
    def fit(self, X, y):
        """Fit on X (n_samples, n_features) and labels y of exactly two classes.

        Raises
        ------
        NotSeparableError
            No hyperplane separates the two classes.
        ValueError
            One class only or more than two, NaN/inf, mismatched lengths, empty input, tol
            outside (0, 0.5).
        RuntimeError
            Neither ``max_iter`` SMO steps nor the exact active-set finish reached ``tol`` on
            separable data.

        Examples
        --------
        >>> HardMarginSVC().fit([[0.0], [2.0]], ["a", "b"]).predict([[3.0]])
        array(['b'], dtype='<U1')
        """
        X = as_float_array(X, "X", dtype=np.float64, ndim=2)
        yarr = np.asarray(y)
        if yarr.ndim != 1:
            raise ValueError(f"y must be 1-D, got shape {yarr.shape}")
        if X.shape[0] != yarr.shape[0]:
            raise ValueError(f"X and y have mismatched lengths: {X.shape[0]} samples in X, "
                             f"{yarr.shape[0]} labels in y")
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(f"X must not be empty, got shape {X.shape}")
        if yarr.dtype.kind == "f" and not np.isfinite(yarr).all():
            raise ValueError("y must not contain NaN or inf")
        if yarr.dtype == object:
            raise TypeError("y must be an array of numbers or strings, got dtype object")
        classes, yi = np.unique(yarr, return_inverse=True)
        if classes.shape[0] != 2:
            what = "one class only" if classes.shape[0] == 1 else f"{classes.shape[0]} classes"
            raise ValueError(f"y must hold exactly two classes, got {what}: {classes[:5]}")
        tol = float(self.tol)
        if not 0 < tol < 0.5:
            raise ValueError(f"tol must be in (0, 0.5), got {self.tol}")
        max_iter = as_int(self.max_iter, "max_iter", 1)
        cache_rows = as_int(self.cache_rows, "cache_rows", 2)
        ys = np.where(yi == 1, 1.0, -1.0)

        # Solved for X / 2**e, 2**e the geometric mean of the features' largest |x|: the
        # max-margin solution scales exactly with X (w -> w / s, b -> b, lambda -> lambda / s**2),
        # a power of two scales without rounding, and the absolute thresholds of SMO and of the
        # LP then see values of order 1 (unscaled, separable data near 1e14 stalled SMO and near
        # 1e16 misled the LP).  Not max |x|: features spread over many decades keep their
        # geometric centre near 1, where the active-set finish is accurate.
        # the kernels' layout, a feature per row; always a copy (scaled in place below): for
        # one feature X.T is contiguous already, and was the caller's X itself
        XT = np.array(X.T, order="C", copy=True)
        top = np.maximum(XT.max(axis=1), -XT.min(axis=1))
        top = top[top > 0]
        e = int(np.round(np.mean(np.log2(top)))) if top.size else 0
        if abs(e) <= 8:  # near enough to 1 for every threshold: no pass to scale
            e = 0
        else:
            # ldexp, not XT *= 2.0 ** -e: 2.0 ** 1074 (X of subnormals) is an OverflowError
            with np.errstate(over="ignore"):
                np.ldexp(XT, -e, out=XT)
            if not np.isfinite(XT).all():
                raise ValueError(f"X's features span too many decades (max |x| = "
                                 f"{np.abs(X).max():.3g}, smallest feature scale "
                                 f"{top.min():.3g}) to scale into float64's range; rescale X")
        w, b, alpha, it = self._solve(XT, ys, tol, max_iter, cache_rows)
        sv = alpha > 0
        if e:
            with np.errstate(over="ignore", under="ignore"):  # checked just below
                w = np.ldexp(w, -e)
                alpha = np.ldexp(alpha, -2 * e)
            if not (np.isfinite(w).all() and np.isfinite(alpha).all() and (alpha[sv] > 0).all()):
                raise ValueError(f"X's scale (max |x| = {np.abs(X).max():.3g}) puts w or the "
                                 "dual multipliers (of order 1 / max|x|^2) outside float64's "
                                 "range; rescale X")

        self.classes_ = classes
        self.coef_ = w[None, :]
        self.intercept_ = np.array([b])
        self.alphas_ = alpha
        self.support_ = np.flatnonzero(sv)
        self.support_vectors_ = X[self.support_]
        self.dual_coef_ = (ys * alpha)[self.support_][None, :]
        self.n_support_ = np.array([np.sum(ys[self.support_] < 0), np.sum(ys[self.support_] > 0)])
        self.margin_ = 2.0 / float(np.linalg.norm(w))
        self.n_iter_ = int(it)
        self.n_features_in_ = X.shape[1]
        return self

    def _solve(self, XT, ys, tol, max_iter, cache_rows):
        """(w, b, alpha, SMO steps) of the hard-margin problem on X = XT.T (scaled by ``fit``)."""
        X = XT.T
        n = X.shape[0]
        kernel = get_kernel("svm", "smo_solve", self.backend)
        alpha = np.zeros(n)
        grad = -np.ones(n)
        # A converged run certifies separability (every y_i f(x_i) >= 1 - tol); on data that is
        # not separable the dual is unbounded and SMO never converges, so after a first budget
        # of steps a feasibility LP decides between "not separable" and "keep going".
        first = min(max_iter, max(10_000, 50 * n))
        it, gap = kernel(XT, ys, alpha, grad, tol, first, cache_rows)
        if not gap < tol or not np.isfinite(alpha).all():
            start = None if not np.isfinite(alpha).all() else _exact.feasible_point(X, ys)
            if start is None:
                raise NotSeparableError(
                    "the two classes are not linearly separable: no hyperplane satisfies "
                    "y_i (w.x_i + b) >= 1 for every sample, so the hard-margin SVM has no "
                    "solution (use a soft-margin SVM, e.g. sklearn.svm.SVC with finite C)")
            # SMO is slow here: badly scaled features (an ill-conditioned Gram matrix) make it
            # crawl or stall short of tol.  Finish with the exact primal active-set method from
            # a feasible point; SMO goes on only where that does not certify an answer.
            exact = _exact.active_set(X, ys, _exact.start(X, ys, alpha, start),
                                      20 * (n + X.shape[1]))
            if exact is None or not _exact.certified(X, ys, *exact, tol):
                more, gap = kernel(XT, ys, alpha, grad, tol, max_iter - it, cache_rows)
                it += more
                if not gap < tol:
                    why = "reached max_iter" if it >= max_iter else "stalled (rounding)"
                    raise RuntimeError(f"SMO {why} after {it} steps with KKT gap {gap:.3g} > "
                                       f"tol={tol}, and the active-set finish did not certify "
                                       "an optimum")
                exact = None
        else:
            exact = None
        w, b, alpha = _exact.polish(X, ys, alpha, grad, tol) if exact is None else exact
        return w, b, alpha, it

    # ------------------------------------------------------------------ predict
    def _check_fitted_X(self, X):
        if not hasattr(self, "coef_"):
            raise ValueError("this HardMarginSVC is not fitted yet: call fit(X, y) first")
        X = as_float_array(X, "X", dtype=np.float64, ndim=2)
        if X.shape[1] != self.coef_.shape[1]:
            raise ValueError(f"X has {X.shape[1]} features, the model was fitted with "
                             f"{self.coef_.shape[1]}")
        return X

    def decision_function(self, X):
        """w.x + b for each row of X: positive on the ``classes_[1]`` side.

        Examples
        --------
        >>> HardMarginSVC().fit([[1, -1], [-1, -1]], [1, -1]).decision_function([[2, 0]]).round(12)
        array([2.])
        """
        X = self._check_fitted_X(X)
        return X @ self.coef_[0] + self.intercept_[0]

    def predict(self, X):
        """The class label of each row of X.

        Examples
        --------
        >>> HardMarginSVC().fit([[1, -1], [-1, -1]], [1, -1]).predict([[0.5, 3], [-2, 0]])
        array([ 1, -1])
        """
        f = self.decision_function(X)
        return self.classes_[(f > 0).astype(int)]
