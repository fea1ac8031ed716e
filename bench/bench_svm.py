"""HardMarginSVC.fit at n=2000, d=20 against scikit-learn SVC(kernel="linear", C=1e10).

The implementations are the comparisons registry's (``fasthw6._backend.comparisons``): every
backend of ``HardMarginSVC``, then every installed anchor (``fasthw6/svm/_anchors.py``).
"""
from __future__ import annotations

import numpy as np
import pytest

from fasthw6 import HardMarginSVC
from fasthw6._backend import comparisons


def data(n=2000, d=20, seed=7):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w = rng.standard_normal(d)
    s = X @ w / np.linalg.norm(w) + 0.3
    keep = np.abs(s) > 0.1
    return X[keep], np.sign(s[keep])


IMPLS = {name: (None if cls is None else (lambda X, y, cls=cls: cls(tol=1e-6).fit(X, y)))
         for name, cls in comparisons("HardMarginSVC", HardMarginSVC).items()}
_REFERENCES = {}


def _reference(impl, X, y):
    if impl not in _REFERENCES:
        _REFERENCES[impl] = IMPLS[impl](X, y)
    return _REFERENCES[impl]


@pytest.mark.parametrize("impl", list(IMPLS))
def test_svm_fit(measure, impl):
    fn = IMPLS[impl]
    if fn is None:
        pytest.skip(f"{impl} not installed")
    X, y = data()
    # checked against an independent solver: SVC for ours, our NumPy reference for SVC (a
    # result compared with the same implementation's could not fail)
    other = "numpy" if impl == "sklearn SVC" else "sklearn SVC"
    if IMPLS.get(other) is None:
        other = "numpy"
    ref = _reference(other, X, y)

    def check(clf):
        scale = np.abs(ref.coef_).max()
        np.testing.assert_allclose(clf.coef_, ref.coef_, rtol=1e-4, atol=1e-4 * scale)
        np.testing.assert_allclose(clf.intercept_, ref.intercept_, rtol=1e-4, atol=1e-4 * scale)
        assert set(clf.support_) == set(ref.support_)

    measure(lambda: fn(X, y), group="hard-margin SVM fit", case=f"n={X.shape[0]}, d=20",
            impl=impl, work=X.shape[0], unit="samples/s", baseline="sklearn SVC", check=check,
            rounds=1 if impl == "numpy" else None)
