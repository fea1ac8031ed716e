"""Hard-margin SVM: the document's example, scikit-learn as oracle, non-separable data, errors."""
from __future__ import annotations

import numpy as np
import pytest

import fasthw6
from fasthw6 import HardMarginSVC, NotSeparableError
from fasthw6._backend import anchors


def test_document_example(backend):
    # question 3: x1 = [1, -1] (y = +1), x2 = [-1, -1] (y = -1) -> w = [1, 0], b = 0, lambda = 1/2
    clf = HardMarginSVC(backend=backend).fit([[1, -1], [-1, -1]], [1, -1])
    np.testing.assert_allclose(clf.coef_, [[1.0, 0.0]], atol=1e-12)
    np.testing.assert_allclose(clf.intercept_, [0.0], atol=1e-12)
    np.testing.assert_allclose(clf.alphas_, [0.5, 0.5], atol=1e-12)
    np.testing.assert_allclose(clf.dual_coef_, [[0.5, -0.5]], atol=1e-12)
    assert clf.margin_ == pytest.approx(2.0)
    np.testing.assert_array_equal(clf.support_, [0, 1])
    np.testing.assert_array_equal(clf.predict([[3, 5], [-3, 5]]), [1, -1])


def _separable(n, d, seed, gap=0.2):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w = rng.standard_normal(d)
    s = X @ w / np.linalg.norm(w) + 0.3
    keep = np.abs(s) > gap
    return X[keep], np.where(s[keep] > 0, "pos", "neg")


def _kkt_ok(clf, X, y):
    ys = np.where(y == clf.classes_[1], 1.0, -1.0)
    m = ys * clf.decision_function(X)
    assert m.min() >= 1 - 1e-8
    np.testing.assert_allclose(m[clf.support_], 1.0, atol=1e-8)
    np.testing.assert_allclose(clf.coef_[0], (clf.alphas_ * ys) @ X, rtol=1e-9, atol=1e-12)
    assert abs(clf.alphas_ @ ys) < 1e-9 and (clf.alphas_ >= 0).all()


@pytest.mark.parametrize("n,d", [(40, 2), (300, 5)])
def test_backends_satisfy_kkt_and_agree(backend, n, d):
    X, y = _separable(n, d, seed=n)
    clf = HardMarginSVC(backend=backend).fit(X, y)
    _kkt_ok(clf, X, y)
    ref = HardMarginSVC(backend="numpy").fit(X, y)
    np.testing.assert_allclose(clf.coef_, ref.coef_, rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(clf.support_, ref.support_)


ANCHORS = anchors("HardMarginSVC")


@pytest.mark.parametrize("anchor", list(ANCHORS))
@pytest.mark.parametrize("n,d,seed", [(60, 2, 0), (500, 10, 1), (2000, 20, 2)])
def test_matches_every_anchor(anchor, n, d, seed):
    """Every anchor of the comparisons registry (scikit-learn's SVC) finds our solution."""
    cls = ANCHORS[anchor]
    if cls is None:
        pytest.skip(f"{anchor} not installed")
    X, y = _separable(n, d, seed)
    ours = HardMarginSVC().fit(X, y)
    theirs = cls(tol=1e-6).fit(X, y)
    np.testing.assert_array_equal(ours.classes_, theirs.classes_)
    np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=1e-4,
                               atol=1e-4 * np.abs(theirs.coef_).max())
    np.testing.assert_allclose(ours.intercept_, theirs.intercept_, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(ours.support_, np.sort(theirs.support_))
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    _kkt_ok(ours, X, y)


@pytest.mark.parametrize("X,y", [
    ([[0, 0], [1, 1], [0, 1], [1, 0]], [1, 1, -1, -1]),      # XOR
    ([[0.0], [0.0]], [1, -1]),                                # the same point, both labels
    ([[0.0], [1.0], [2.0]], [1, -1, 1]),                       # interleaved on a line
])
def test_not_separable_raises(backend, X, y):
    with pytest.raises(NotSeparableError, match="not linearly separable"):
        HardMarginSVC(backend=backend).fit(X, y)


def test_not_separable_random_cloud_is_quick(backend):
    rng = np.random.default_rng(0)
    with pytest.raises(NotSeparableError, match="not linearly separable"):
        HardMarginSVC(backend=backend).fit(rng.standard_normal((400, 3)), rng.integers(0, 2, 400))


def test_errors():
    with pytest.raises(ValueError, match="exactly two classes, got one class only"):
        HardMarginSVC().fit([[0.0], [1.0]], [1, 1])
    with pytest.raises(ValueError, match="exactly two classes, got 3 classes"):
        HardMarginSVC().fit([[0.0], [1.0], [2.0]], [0, 1, 2])
    with pytest.raises(ValueError, match="X must be finite"):
        HardMarginSVC().fit([[np.nan], [1.0]], [0, 1])
    with pytest.raises(ValueError, match="y must not contain NaN"):
        HardMarginSVC().fit([[0.0], [1.0]], [0.0, np.nan])
    with pytest.raises(ValueError, match="mismatched lengths"):
        HardMarginSVC().fit([[0.0], [1.0]], [0, 1, 1])
    with pytest.raises(ValueError, match="X must be 2-D"):
        HardMarginSVC().fit([0.0, 1.0], [0, 1])
    with pytest.raises(ValueError, match="tol must be in"):
        HardMarginSVC(tol=0).fit([[0.0], [1.0]], [0, 1])
    with pytest.raises(ValueError, match="not fitted"):
        HardMarginSVC().predict([[0.0]])
    clf = HardMarginSVC().fit([[0.0], [1.0]], [0, 1])
    with pytest.raises(ValueError, match="X has 2 features"):
        clf.predict([[0.0, 1.0]])
    assert issubclass(fasthw6.NotSeparableError, ValueError)


@pytest.mark.parametrize("n,d", [(400, 3), (500, 12)])
def test_kernel_resumes_from_its_own_state(backend, n, d):
    # the API resumes the kernel after its first step budget: every return leaves grad equal to
    # the gradient of the returned alpha, and a run cut into short budgets reaches the same optimum
    from fasthw6._backend import get_kernel
    from fasthw6.svm._exact import polish

    X, y = _separable(n, d, seed=d)
    ys = np.where(y == "pos", 1.0, -1.0)
    XT = np.ascontiguousarray(X.T)
    kernel = get_kernel("svm", "smo_solve", backend)
    a1, g1 = np.zeros(len(ys)), -np.ones(len(ys))
    _, gap1 = kernel(XT, ys, a1, g1, 1e-6, 10**7, 256)
    assert gap1 < 1e-6
    a2, g2 = np.zeros(len(ys)), -np.ones(len(ys))
    total = 0
    for _ in range(100_000):
        it, gap = kernel(XT, ys, a2, g2, 1e-6, 7, 2)
        total += it
        assert it <= 7 and (a2 >= 0).all() and abs(a2 @ ys) < 1e-9 * max(1.0, a2.sum())
        np.testing.assert_allclose(g2, ys * (X @ ((a2 * ys) @ X)) - 1, rtol=1e-9, atol=1e-9)
        if gap < 1e-6:
            break
    assert gap < 1e-6
    w1, _, l1 = polish(X, ys, a1, g1)
    w2, _, l2 = polish(X, ys, a2, g2)
    np.testing.assert_allclose(w2, w1, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(l2, l1, rtol=1e-8, atol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("n,d,cache_rows", [(300, 5, 2), (60, 80, 256), (800, 20, 3)])
def test_working_set_growth_and_wide_data(backend, n, d, cache_rows):
    # a working set that must grow from 2-3 rows, and more features than samples (every support
    # set solvable exactly): the same optimum as the plain-SMO reference
    X, y = _separable(n, d, seed=n + d)
    clf = HardMarginSVC(cache_rows=cache_rows, backend=backend).fit(X, y)
    _kkt_ok(clf, X, y)
    ref = HardMarginSVC(backend="numpy").fit(X, y)
    np.testing.assert_allclose(clf.coef_, ref.coef_, rtol=1e-7, atol=1e-9)
    np.testing.assert_array_equal(clf.support_, ref.support_)


def _badly_scaled(n, d, seed, decades):
    """Separable data whose feature scales span 2 * decades orders of magnitude."""
    X, y = _separable(n, d, seed)
    rng = np.random.default_rng(seed + 100)
    return X * 10.0 ** rng.uniform(-decades, decades, d), y


def _certified_independently(clf, X, y, tol):
    """The KKT conditions, checked here from the fitted attributes (sufficient for the optimum
    of this convex QP): feasibility, complementary slackness, dual feasibility, stationarity to a
    backward error (the sum cancels by many digits when the features are badly scaled)."""
    ys = np.where(y == clf.classes_[1], 1.0, -1.0)
    m = ys * clf.decision_function(X)
    lam = clf.alphas_
    assert (lam >= 0).all() and lam.sum() > 0
    assert m.min() >= 1 - tol
    np.testing.assert_allclose(m[clf.support_], 1.0, atol=tol)
    assert (np.abs(clf.coef_[0] - (lam * ys) @ X) <= 1e-8 * (lam @ np.abs(X))).all()
    assert abs(lam @ ys) <= 1e-8 * lam.sum()


@pytest.mark.slow
@pytest.mark.parametrize("decades,seed", [(3, 0), (3, 2), (4, 1), (2, 0), (3, 1)])
def test_badly_scaled_features_finish_exactly(backend, decades, seed):
    # Feature scales from 1e-3..1e3 (1e-4..1e4) leave SMO crawling short of tol within its first
    # budget of steps (before the active-set finish, the first three fits ran 10^7 steps and
    # raised RuntimeError); the exact primal active-set method finishes them, certified by the
    # KKT check.  In the last two SMO converges but the exact solve on its support set is too
    # ill-conditioned to pass its checks: SMO's own multipliers (numba, Cython) failed this test,
    # the active set started from SMO's answer is exact to rounding
    X, y = _badly_scaled(300, 10, seed, decades)
    clf = HardMarginSVC(backend=backend).fit(X, y)
    _certified_independently(clf, X, y, 1e-9)
    np.testing.assert_array_equal(clf.predict(X), y)
    ref = HardMarginSVC(backend="numpy").fit(X, y)
    # the small components of w are ill-conditioned: compare on the scale of the largest
    np.testing.assert_allclose(clf.coef_, ref.coef_, rtol=1e-8,
                               atol=1e-10 * np.abs(ref.coef_).max())
    np.testing.assert_array_equal(clf.support_, ref.support_)


def test_active_set_finish_is_the_smo_optimum():
    # well-scaled data, where SMO converges: the active-set method from the feasibility LP's
    # point reaches the same (w, b) and support set
    from fasthw6.svm._exact import active_set, feasible_point  # noqa: PLC0415

    X, y = _separable(500, 8, seed=3)
    clf = HardMarginSVC().fit(X, y)
    ys = np.where(y == clf.classes_[1], 1.0, -1.0)
    z = feasible_point(X, ys)
    assert (ys * (X @ z[:-1] + z[-1]) >= 1 - 1e-9).all()
    w, b, lam = active_set(X, ys, z, 10_000)
    np.testing.assert_allclose(w, clf.coef_[0], rtol=1e-9, atol=1e-12)
    assert b == pytest.approx(clf.intercept_[0], rel=1e-9, abs=1e-12)
    np.testing.assert_array_equal(np.flatnonzero(lam > 0), clf.support_)
    np.testing.assert_allclose(lam, clf.alphas_, rtol=1e-8, atol=1e-12)
    assert active_set(X, ys, z, 2) is None  # out of steps: says so, no half answer


def test_runtime_error_when_neither_finish_certifies(monkeypatch):
    import fasthw6.svm._exact as exact  # noqa: PLC0415

    X, y = _badly_scaled(300, 10, 0, 3)
    monkeypatch.setattr(exact, "active_set", lambda *a: None)
    with pytest.raises(RuntimeError, match=r"SMO (reached max_iter|stalled \(rounding\)) after"):
        HardMarginSVC(max_iter=20_000).fit(X, y)


@pytest.mark.parametrize("scale", [1e-100, 1e-20, 1e14, 1e16, 1e100, 1e150])
def test_uniform_scale_is_exact(backend, scale):
    # the solution scales exactly with X (w / s, b, lambda / s**2); unscaled, the compiled
    # backends stalled near 1e14 (RuntimeError) and called data from 1e16 up not separable
    X, y = _separable(80, 3, seed=5)
    ref = HardMarginSVC(backend=backend).fit(X, y)
    clf = HardMarginSVC(backend=backend).fit(X * scale, y)
    np.testing.assert_allclose(clf.coef_ * scale, ref.coef_, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(clf.intercept_, ref.intercept_, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(clf.alphas_ * scale * scale, ref.alphas_, rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(clf.support_, ref.support_)
    assert clf.margin_ == pytest.approx(ref.margin_ * scale, rel=1e-12)


@pytest.mark.parametrize("scale", [1e-170, 1e200])
def test_unrepresentable_scale_is_a_clear_error(scale):
    # separable, but the multipliers (about 1 / x**2) or w leave float64's range: say so, do
    # not call the data inseparable
    with pytest.raises(ValueError, match="outside float64's range") as info:
        HardMarginSVC().fit([[scale], [-scale]], [1, -1])
    assert not isinstance(info.value, NotSeparableError)


@pytest.mark.parametrize("X", [[[1000.0], [2000.0], [-1000.0], [-3000.0]],
                               [[1000.0, 5.0], [2000.0, 1.0], [-1000.0, 2.0], [-3000.0, 0.5]]])
def test_fit_leaves_the_callers_X_alone(backend, X):
    """fit scales X by a power of two internally: the caller's array (one feature: its transpose
    is contiguous, so no copy was made) and the reported support vectors keep the given values."""
    X = np.array(X)
    before = X.copy()
    clf = HardMarginSVC(backend=backend).fit(X, [1, 1, 0, 0])
    np.testing.assert_array_equal(X, before)
    np.testing.assert_array_equal(clf.support_vectors_, before[clf.support_])
    assert (np.abs(clf.decision_function(before)) >= 1 - 1e-8).all()
