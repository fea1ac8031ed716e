"""The Gaussian HMMs of other libraries in the comparisons registry (dynamax, pomegranate:
``fasthw6.hmm._anchors_gaussian``): they answer as ours do, and their adapters are right."""
from __future__ import annotations

import numpy as np
import pytest

from fasthw6._backend import comparisons
from fasthw6.hmm import GaussianHMM
from fasthw6.hmm._anchors_gaussian import PEER_KINDS, path_logprob
from test_hmm_frames import gaussian_model

GAUSSIAN = comparisons("GaussianHMM", GaussianHMM)
PEERS = ("dynamax", "pomegranate")


def _case(kind, n=3, d=2, lengths=(12, 12, 7, 12), seed=5):
    """(startprob, transmat, means, compact covariances, X, lengths) of a random model and a
    sample of it."""
    m = gaussian_model(kind, N=n, D=d, seed=seed)
    X, _ = m.sample(sum(lengths), random_state=seed)
    return m.startprob_, m.transmat_, m.means_, m._covars_, X, np.array(lengths)


def _model(cls, kind, sp, tm, means, cv, **kw):
    m = cls(len(sp), kind, init_params="", **kw)
    m.startprob_, m.transmat_, m.means_, m.covars_ = sp, tm, means, cv
    return m


def _peer(name):
    pytest.importorskip(name)
    assert GAUSSIAN[name] is not None
    return GAUSSIAN[name]


@pytest.mark.parametrize("kind", PEER_KINDS)
@pytest.mark.parametrize("name", PEERS)
def test_peer_scores_and_paths_agree(name, kind):
    """Per-sequence scores, total score, Viterbi paths and their log-probability, on sequences
    of two lengths (each library takes one batch per length)."""
    cls = _peer(name)
    sp, tm, means, cv, X, lengths = _case(kind)
    ours = _model(GAUSSIAN["cython"], kind, sp, tm, means, cv)
    peer = _model(cls, kind, sp, tm, means, cv)
    np.testing.assert_allclose(peer.score_sequences(X, lengths), ours.score_sequences(X, lengths),
                               rtol=1e-10)
    np.testing.assert_allclose(peer.score(X, lengths), ours.score(X, lengths), rtol=1e-10)
    lp, states = ours.decode(X, lengths)
    np.testing.assert_array_equal(peer.decode_path(X, lengths), states)
    plp, pstates = peer.decode(X, lengths)
    np.testing.assert_array_equal(pstates, states)
    np.testing.assert_allclose(plp, lp, rtol=1e-12)


@pytest.mark.parametrize("kind", PEER_KINDS)
def test_dynamax_fit_is_its_mstep_on_our_estep(kind):
    """One dynamax EM iteration reaches ``expected_update``: its own emission M-step (a
    posterior mode under its priors) on the statistics of our posteriors, and the chain's
    maximum-likelihood update.  Its priors move the covariances off hmmlearn's update by far
    more than the tolerance, so the check tells the two apart."""
    cls = _peer("dynamax")
    sp, tm, means, cv, X, _ = _case(kind, lengths=(15,) * 6)
    lengths = np.full(6, 15)
    peer = _model(cls, kind, sp, tm, means, cv, n_iter=1).fit(X, lengths)
    esp, etm, emeans, ecv = cls.expected_update(X, lengths, sp, tm, means, cv, kind)
    for got, want in ((peer.startprob_, esp), (peer.transmat_, etm), (peer.means_, emeans),
                      (peer._covars_, ecv)):
        np.testing.assert_allclose(got, want, rtol=1e-8, atol=1e-12)
    assert np.abs(peer.means_ - means).max() > 1e-3  # the iteration moved the means
    hl = _model(GAUSSIAN["cython"], kind, sp, tm, means, cv, n_iter=1, tol=-np.inf)
    hl.fit(X, lengths)  # hmmlearn's update: covars_prior 1e-2, min_covar 1e-3
    np.testing.assert_allclose(peer.means_, hl.means_, rtol=1e-3)
    assert np.abs(peer._covars_ - hl._covars_).max() > 1e-5


def test_path_logprob_brute_force():
    """``path_logprob`` against a loop over frames with scipy's densities, on any path
    (impossible steps and an empty sequence included), diag and full."""
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    lengths = [4, 0, 5, 1]
    n, d = 3, 2
    sp = np.array([0.5, 0.5, 0.0])
    tm = np.array([[0.6, 0.4, 0.0], [0.3, 0.7, 0.0], [0.0, 0.0, 1.0]])
    means = rng.normal(size=(n, d))
    X = rng.normal(size=(sum(lengths), d))
    for kind in PEER_KINDS:
        for states in (np.array([0, 1, 1, 0, 1, 0, 0, 1, 1, 0]),
                       np.array([0, 1, 1, 0, 2, 2, 2, 2, 2, 1])):  # a start in state 2: -inf
            cv = (rng.uniform(0.5, 2.0, (n, d)) if kind == "diag" else
                  np.stack([np.eye(d) * 1.5 + 0.3] * n))
            want, t = 0.0, 0
            with np.errstate(divide="ignore"):
                for T in lengths:
                    for k in range(T):
                        s = states[t + k]
                        want += np.log(sp[s]) if k == 0 else np.log(tm[states[t + k - 1], s])
                        cov = np.diag(cv[s]) if kind == "diag" else cv[s]
                        want += stats.multivariate_normal(means[s], cov).logpdf(X[t + k])
                    t += T
            got = path_logprob(X, lengths, states, sp, tm, means, cv, kind)
            if np.isfinite(want):
                np.testing.assert_allclose(got, want, rtol=1e-12)
            else:
                assert got == want == -np.inf


@pytest.mark.parametrize("name", PEERS)
def test_peer_refusals(name):
    cls = _peer(name)
    sp, tm, means, cv, X, lengths = _case("diag")
    with pytest.raises(ValueError, match="init_params=''"):
        cls(3, "diag", init_params="stmc")
    with pytest.raises(ValueError, match="covariance_type 'diag' and 'full'"):
        cls(3, "tied", init_params="")
    peer = _model(cls, "diag", sp, tm, means, cv, n_iter=1)
    if cls.fits:
        with pytest.raises(ValueError, match="one length only"):
            peer.fit(X, lengths)
    else:
        with pytest.raises(NotImplementedError, match="has no fit"):
            peer.fit(X, lengths)
