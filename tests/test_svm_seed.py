"""The compiled SMO kernels' first working set on data whose scores are large (issue 19 audit).

The kernels seed their working set with the samples of each class nearest the other along the
difference of the class means, ranked by 1 / (1 + exp(y f)).  With raw scores y f above about
710, exp overflowed and every sample ranked 0: an empty working set, no SMO step, and fit
left to the LP and active-set finish, which raised RuntimeError on badly scaled separable data.
"""
from __future__ import annotations

import numpy as np
import pytest

from fasthw6 import HardMarginSVC


def test_badly_scaled_separable_data_is_fitted(backend):
    X = np.array([[1e-3, 1000.0], [2e-3, 1500.0], [-1e-3, -900.0], [-3e-3, -2000.0],
                  [5e-4, 800.0]])
    y = np.array([1, 1, -1, -1, 1])
    clf = HardMarginSVC(backend=backend).fit(X, y)
    f = clf.decision_function(X) * np.where(y > 0, 1, -1)
    assert f.min() == pytest.approx(1.0, abs=1e-9)  # the margin's samples sit on it
    np.testing.assert_allclose(clf.alphas_, [0, 0, 6.920415224913495e-07, 0, 6.920415224913495e-07],
                               rtol=1e-9)


@pytest.mark.parametrize("X", [[[30.0], [40.0], [-30.0], [-50.0]],
                               [[30.0, 1.0], [40.0, 2.0], [-30.0, 0.0], [-50.0, 1.0]]])
def test_smo_starts_from_a_nonempty_working_set(backend, X):
    """Scores of order 1e3 (features of order 30: no rescaling): SMO itself solves it."""
    clf = HardMarginSVC(backend=backend).fit(X, [1, 1, 0, 0])
    assert clf.n_iter_ > 0
    np.testing.assert_allclose(clf.decision_function([[30.0] + [1.0] * (len(X[0]) - 1)]), [1.0],
                               rtol=1e-9)
