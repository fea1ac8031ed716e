"""fasthw6.CategoricalHMM against hmmlearn 0.3's CategoricalHMM (the `test` extra)."""
from __future__ import annotations

import logging

import numpy as np
import pytest

hmm = pytest.importorskip("hmmlearn.hmm")

import fasthw6  # noqa: E402
from fasthw6._backend import comparisons  # noqa: E402
from fasthw6.hmm import CategoricalHMM  # noqa: E402

from conftest import ragged, random_hmm  # noqa: E402

LENGTHS = [1, 7, 1, 30, 12, 2]


@pytest.fixture(autouse=True)
def _quiet():
    lg = [logging.getLogger(n) for n in ("fasthw6", "hmmlearn")]
    old = [x.level for x in lg]
    for x in lg:
        x.setLevel(logging.CRITICAL)
    yield
    for x, v in zip(lg, old):
        x.setLevel(v)


def pair(n, m, seed, **kw):
    sp, tm, em = random_hmm(n, m, seed)
    ours = CategoricalHMM(n, n_features=m, init_params="", **kw)
    theirs = hmm.CategoricalHMM(n, n_features=m, init_params="", **kw)
    for mod in (ours, theirs):
        mod.startprob_, mod.transmat_, mod.emissionprob_ = sp.copy(), tm.copy(), em.copy()
    X = ragged(np.random.default_rng(seed), m, LENGTHS)[0].reshape(-1, 1)
    return ours, theirs, X


@pytest.mark.parametrize("n", [1, 2, 3, 16])
def test_scores_posteriors_viterbi_agree(backend, n):
    ours, theirs, X = pair(n, 5, seed=n)
    ours.backend = backend
    for impl in ("log", "scaling"):
        theirs.implementation = impl
        np.testing.assert_allclose(ours.score(X, LENGTHS), theirs.score(X, LENGTHS), rtol=1e-8)
        per = [theirs.score(x) for x in np.split(X, np.cumsum(LENGTHS)[:-1])]
        np.testing.assert_allclose(ours.score_sequences(X, LENGTHS), per, rtol=1e-8)
        l1, p1 = ours.score_samples(X, LENGTHS)
        l2, p2 = theirs.score_samples(X, LENGTHS)
        np.testing.assert_allclose(l1, l2, rtol=1e-8)
        np.testing.assert_allclose(p1, p2, rtol=1e-8, atol=1e-10)
    lp1, s1 = ours.decode(X, LENGTHS)
    lp2, s2 = theirs.decode(X, LENGTHS)
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_allclose(lp1, lp2, rtol=1e-10)
    lp1, s1 = ours.decode(X, LENGTHS, algorithm="map")
    lp2, s2 = theirs.decode(X, LENGTHS, algorithm="map")
    np.testing.assert_array_equal(s1, s2)
    np.testing.assert_allclose(lp1, lp2, rtol=1e-8)


@pytest.mark.parametrize("n", [1, 2, 3, 16])
def test_em_iterations_match(backend, n):
    ours, theirs, X = pair(n, 4, seed=20 + n, n_iter=5, tol=-np.inf, transmat_prior=1.5,
                           emissionprob_prior=1.2)
    ours.backend = backend
    ours.fit(X, LENGTHS)
    theirs.fit(X, LENGTHS)
    for name in ("startprob_", "transmat_", "emissionprob_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(list(ours.monitor_.history), list(theirs.monitor_.history), rtol=1e-8)
    assert ours.monitor_.iter == theirs.monitor_.iter == 5


def test_random_initialisation_and_sampling_match():
    X = np.random.default_rng(0).integers(0, 6, 200).reshape(-1, 1)
    ours = CategoricalHMM(4, random_state=7, n_iter=3).fit(X, [50, 150])
    theirs = hmm.CategoricalHMM(4, random_state=7, n_iter=3).fit(X, [50, 150])
    for name in ("startprob_", "transmat_", "emissionprob_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-8)
    assert ours.n_features == theirs.n_features == 6
    a, za = ours.sample(50, random_state=3)
    b, zb = theirs.sample(50, random_state=3)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(za, zb)
    a, za = ours.sample(10, random_state=4, currstate=2)
    b, zb = theirs.sample(10, random_state=4, currstate=2)
    np.testing.assert_array_equal(za, zb)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("op", ["score_sequences", "viterbi", "posteriors"])
def test_registered_anchors_agree_with_every_backend(op):
    """Every backend and every anchor of the comparisons registry (the benchmarks' list) give
    the same answer, sequence by sequence."""
    sp, tm, em = random_hmm(3, 4, seed=1)
    X, lengths = ragged(np.random.default_rng(1), 4, LENGTHS, np.uint8)
    impls = comparisons(op, getattr(fasthw6.hmm, op))
    assert {"numba", "cython", "numpy"} < set(impls)
    ref = impls["numpy"](X, lengths, sp, tm, em)
    ref = ref if isinstance(ref, tuple) else (ref,)
    for name, fn in impls.items():
        if fn is None:
            continue
        got = fn(X, lengths, sp, tm, em)
        rtol = getattr(fn, "rtol", 1e-8)  # hmmkay computes in float32
        for g, r in zip(got if isinstance(got, tuple) else (got,), ref):
            np.testing.assert_allclose(g, r, rtol=rtol, atol=1e-12, err_msg=name)


def test_registered_estimators_agree():
    """Every CategoricalHMM of the registry (ours per backend, hmmlearn's per implementation,
    hmmkay's and dynamax's Baum-Welch) makes the same two EM iterations."""
    sp, tm, em = random_hmm(3, 4, seed=2)
    lengths = [20] * 5  # dynamax fits sequences of one length only
    X = ragged(np.random.default_rng(2), 4, lengths)[0].reshape(-1, 1)
    fitted = {}
    for name, cls in comparisons("CategoricalHMM", CategoricalHMM).items():
        if cls is None:
            continue
        m = cls(3, n_features=4, init_params="", n_iter=2, tol=-np.inf)
        m.startprob_, m.transmat_, m.emissionprob_ = sp, tm, em
        fitted[name] = m.fit(X, lengths)
    assert {"numba", "cython", "numpy", "hmmlearn-scaling", "hmmlearn-log"} <= set(fitted)
    ref = fitted["hmmlearn-log"]
    for name, m in fitted.items():
        for attr in ("startprob_", "transmat_", "emissionprob_"):
            np.testing.assert_allclose(getattr(m, attr), getattr(ref, attr), rtol=1e-8,
                                       atol=1e-12, err_msg=name)
        np.testing.assert_allclose(list(m.monitor_.history), list(ref.monitor_.history),
                                   rtol=1e-10, err_msg=name)


def test_top_level_exports():
    assert fasthw6.CategoricalHMM is CategoricalHMM
