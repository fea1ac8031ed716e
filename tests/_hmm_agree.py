"""Shared check of a fasthw6 estimator against hmmlearn's with the same parameters (the
continuous models' tests use it)."""
from __future__ import annotations

import numpy as np
import pytest

LENGTHS = [100, 1, 250, 49]


def assert_agrees_with_hmmlearn(f, h, lengths=LENGTHS):
    """Same sample draws, scores, posteriors, Viterbi and MAP decodes, aic and bic; returns the
    sampled X for further checks."""
    n = sum(lengths)
    X, Z = h.sample(n, random_state=5)
    Xf, Zf = f.sample(n, random_state=5)
    np.testing.assert_array_equal(Xf, X)  # the same draws
    np.testing.assert_array_equal(Zf, Z)
    assert f.score(X, lengths) == pytest.approx(h.score(X, lengths), rel=1e-12)
    np.testing.assert_allclose(f.predict_proba(X, lengths), h.predict_proba(X, lengths),
                               atol=1e-10)
    for alg in ("viterbi", "map"):
        lf, sf = f.decode(X, lengths, algorithm=alg)
        lh, sh = h.decode(X, lengths, algorithm=alg)
        np.testing.assert_array_equal(sf, sh)
        assert lf == pytest.approx(lh, rel=1e-10)
    assert f.aic(X, lengths) == pytest.approx(h.aic(X, lengths), rel=1e-12)
    assert f.bic(X, lengths) == pytest.approx(h.bic(X, lengths), rel=1e-12)
    return X
