"""``GMMHMM`` (``fasthw6.hmm.gmm``): agreement with hmmlearn's GMMHMM (scores, posteriors,
decoding, aic/bic, sampling draws, initialisation and EM with and without priors), with scipy's
densities, with ``GaussianHMM`` at n_mix=1, across backends and float32; EM without NaN; bad
input; save/load."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from _hmm_agree import LENGTHS, assert_agrees_with_hmmlearn

from fasthw6.hmm import GaussianHMM
from fasthw6.hmm.gmm import GMMHMM

KINDS = ["diag", "spherical", "full", "tied"]
ATTRS = ("startprob_", "transmat_", "weights_", "means_", "covars_")


def mixture_params(kind, N, nm, D, seed):
    rng = np.random.default_rng(seed)
    sp = rng.dirichlet(np.ones(N))
    tm = rng.dirichlet(np.full(N, 3.0), N)
    w = rng.dirichlet(np.full(nm, 2.0), N)
    means = rng.normal(size=(N, nm, D)) * 4
    if kind == "diag":
        cv = rng.uniform(0.5, 2.0, (N, nm, D))
    elif kind == "spherical":
        cv = rng.uniform(0.5, 2.0, (N, nm))
    elif kind == "full":
        A = rng.normal(size=(N, nm, D, D))
        cv = A @ np.swapaxes(A, -1, -2) + np.eye(D)
    else:
        A = rng.normal(size=(N, D, D))
        cv = A @ np.swapaxes(A, -1, -2) + np.eye(D)
    return sp, tm, w, means, cv


def set_params(m, params):
    m.startprob_, m.transmat_, m.weights_, m.means_, m.covars_ = (np.array(p) for p in params)
    return m


def gmm_model(kind, N=3, nm=2, D=2, seed=0, **kw):
    return set_params(GMMHMM(N, nm, covariance_type=kind, init_params="", **kw),
                      mixture_params(kind, N, nm, D, seed))


def assert_params_close(f, h, rtol=1e-8, atol=1e-10):
    for a in ATTRS:
        np.testing.assert_allclose(getattr(f, a), getattr(h, a), rtol=rtol, atol=atol,
                                   err_msg=a)


@pytest.fixture(autouse=True)
def _serial_kmeans():
    """scikit-learn's k-means on one OpenMP thread: on small data its threads cost 10x more
    than they save (and the initial means do not depend on them)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@pytest.fixture
def hmmlearn_hmm():
    hmm = pytest.importorskip("hmmlearn.hmm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # k-means' and hmmlearn's chatter
        yield hmm


# ------------------------------------------------------------------------- hmmlearn
@pytest.mark.parametrize("kind", KINDS)
def test_matches_hmmlearn(hmmlearn_hmm, kind):
    params = mixture_params(kind, 3, 2, 2, seed=1)
    f = set_params(GMMHMM(3, 2, covariance_type=kind, init_params="", backend="cython"), params)
    h = set_params(hmmlearn_hmm.GMMHMM(3, 2, covariance_type=kind, init_params="",
                                       implementation="scaling"), params)
    lengths = LENGTHS
    X = assert_agrees_with_hmmlearn(f, h, lengths)
    # EM from hmmlearn's own start (k-means per state, the data covariance, same seed)
    hf = hmmlearn_hmm.GMMHMM(3, 2, covariance_type=kind, n_iter=5, tol=-np.inf, random_state=3,
                             implementation="scaling").fit(X, lengths)
    ff = GMMHMM(3, 2, covariance_type=kind, n_iter=5, tol=-np.inf, random_state=3,
                backend="cython").fit(X, lengths)
    assert_params_close(ff, hf)
    np.testing.assert_allclose(list(ff.monitor_.history), list(hf.monitor_.history), rtol=1e-10)
    assert ff.score(X, lengths) == pytest.approx(hf.score(X, lengths), rel=1e-10)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("custom", [False, True])
def test_priors_match_hmmlearn(hmmlearn_hmm, kind, custom):
    """Non-default weight and mean priors, and hmmlearn's default (None) or given covariance
    priors, with n_mix=3 != n_features (hmmlearn's spherical denominator depends on both)."""
    rng = np.random.default_rng(2)
    X = np.vstack([rng.normal(size=(200, 2)), rng.normal(size=(200, 2)) * 0.5 + [4.0, 1.0]])
    given = {"diag": (0.2, 0.4), "spherical": (0.3, 0.5), "full": (np.eye(2) * 0.5, 3.0),
             "tied": (np.eye(2) * 0.7, 4.0)}[kind] if custom else (None, None)
    kw = dict(covariance_type=kind, n_iter=5, tol=-np.inf, random_state=0,
              weights_prior=2.0, means_prior=[0.5, -0.2], means_weight=0.3,
              covars_prior=given[0], covars_weight=given[1])
    hf = hmmlearn_hmm.GMMHMM(2, 3, implementation="scaling", **kw).fit(X, [150, 250])
    ff = GMMHMM(2, 3, backend="cython", **kw).fit(X, [150, 250])
    assert_params_close(ff, hf)
    np.testing.assert_allclose(list(ff.monitor_.history), list(hf.monitor_.history), rtol=1e-10)
    assert ff.covars_prior is given[0] and ff.covars_weight == given[1]  # never overwritten


@pytest.mark.parametrize("kind", ["diag", "full"])
def test_partial_params_match_hmmlearn(hmmlearn_hmm, kind):
    """Only some letters in params / init_params (covariances centred on the kept means)."""
    params = mixture_params(kind, 2, 2, 2, seed=4)
    X = set_params(GMMHMM(2, 2, covariance_type=kind, init_params=""), params).sample(
        300, random_state=0)[0]
    for p in ("stc", "mw", "wc"):
        h = set_params(hmmlearn_hmm.GMMHMM(2, 2, covariance_type=kind, init_params="", params=p,
                                           n_iter=4, tol=-np.inf, implementation="scaling"),
                       params).fit(X)
        f = set_params(GMMHMM(2, 2, covariance_type=kind, init_params="", params=p, n_iter=4,
                              tol=-np.inf), params).fit(X)
        assert_params_close(f, h)


def test_random_state_instance_matches_hmmlearn(hmmlearn_hmm):
    """A shared RandomState: the chain's draws, then every k-means, consume it in hmmlearn's
    order."""
    X = gmm_model("diag", seed=8).sample(200, random_state=0)[0]
    kw = dict(covariance_type="diag", n_iter=2, tol=-np.inf)
    rh, rf = np.random.RandomState(4), np.random.RandomState(4)
    h = hmmlearn_hmm.GMMHMM(3, 2, random_state=rh, implementation="scaling", **kw).fit(X)
    f = GMMHMM(3, 2, random_state=rf, **kw).fit(X)
    assert_params_close(f, h)
    assert rf.rand() == rh.rand()


def test_sparse_cluster_initialisation_matches_hmmlearn(hmmlearn_hmm):
    """A k-means cluster with fewer than n_mix points: its means come from numpy's global
    generator, as hmmlearn draws them (the same global seed gives the same start)."""
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(size=(150, 2)), rng.normal(size=(150, 2)) + [8.0, 0.0],
                   [[0.0, 40.0]]])
    starts = []
    for kind in KINDS:
        kw = dict(covariance_type=kind, n_iter=1, tol=-np.inf, random_state=2, params="")
        np.random.seed(7)
        h = hmmlearn_hmm.GMMHMM(3, 3, implementation="scaling", **kw).fit(X)
        np.random.seed(7)
        f = GMMHMM(3, 3, **kw).fit(X)
        assert_params_close(f, h, rtol=0, atol=0)
        starts.append(f.means_)
    np.random.seed(8)
    other = GMMHMM(3, 3, n_iter=1, random_state=2, params="").fit(X).means_
    assert not np.array_equal(other, starts[0])  # the drawn means did change


# ------------------------------------------------------------------------- independent checks
@pytest.mark.parametrize("kind", KINDS)
def test_densities_against_scipy(kind):
    stats = pytest.importorskip("scipy.stats")
    special = pytest.importorskip("scipy.special")
    m = gmm_model(kind, N=2, nm=3, D=3, seed=5, backend="numpy")
    X = np.random.default_rng(5).normal(size=(7, 3)) * 4
    cov = {"diag": lambda i, j: np.diag(m.covars_[i, j]),
           "spherical": lambda i, j: np.eye(3) * m.covars_[i, j],
           "full": lambda i, j: m.covars_[i, j], "tied": lambda i, j: m.covars_[i]}[kind]
    ref = np.array([[special.logsumexp([np.log(m.weights_[i, j]) + stats.multivariate_normal(
        m.means_[i, j], cov(i, j)).logpdf(x) for j in range(3)]) for i in range(2)] for x in X])
    np.testing.assert_allclose(m._log_frames(X), ref, rtol=1e-12)


@pytest.mark.parametrize("kind", ["diag", "spherical", "full"])
def test_one_component_is_gaussian_hmm(kind):
    """n_mix=1 is a GaussianHMM (for "tied", hmmlearn's per-state matrix is GaussianHMM's full)."""
    rng = np.random.default_rng(6)
    g = GaussianHMM(3, kind, init_params="")
    g.startprob_, g.transmat_ = rng.dirichlet(np.ones(3)), rng.dirichlet(np.ones(3), 3)
    g.means_ = rng.normal(size=(3, 2)) * 3
    g.covars_ = {"diag": rng.uniform(0.5, 2, (3, 2)), "spherical": rng.uniform(0.5, 2, 3),
                 "full": np.eye(2)[None] * rng.uniform(0.5, 2, (3, 1, 1)) + 0.1}[kind]
    m = GMMHMM(3, 1, covariance_type=kind, init_params="")
    cv = g._covars_
    m.startprob_, m.transmat_, m.weights_ = g.startprob_, g.transmat_, np.ones((3, 1))
    m.means_, m.covars_ = g.means_[:, None], cv[:, None]
    X = g.sample(300, random_state=1)[0]
    assert m.score(X) == pytest.approx(g.score(X), rel=1e-12)
    t = GMMHMM(3, 1, covariance_type="tied", init_params="")
    t.startprob_, t.transmat_, t.weights_ = g.startprob_, g.transmat_, np.ones((3, 1))
    t.means_, t.covars_ = g.means_[:, None], g.covars_
    assert t.score(X) == pytest.approx(g.score(X), rel=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_backends_and_float32_agree(kind):
    X = gmm_model(kind, seed=11).sample(120, random_state=0)[0]
    lengths = [50, 70]
    kw = dict(covariance_type=kind, n_iter=3, tol=-np.inf, random_state=0)
    ref = GMMHMM(3, 2, backend="numpy", **kw).fit(X, lengths)
    cy = GMMHMM(3, 2, backend="cython", **kw).fit(X, lengths)
    assert_params_close(cy, ref, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(cy.score_sequences(X, lengths), ref.score_sequences(X, lengths),
                               rtol=1e-10)
    np.testing.assert_array_equal(cy.predict(X, lengths), ref.predict(X, lengths))
    m32 = GMMHMM(3, 2, backend="cython", dtype=np.float32, **kw).fit(X, lengths)
    assert_params_close(m32, ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(m32.score_sequences(X, lengths), ref.score_sequences(X, lengths),
                               rtol=1e-4)


# ------------------------------------------------------------------------- robustness
def test_em_never_nan_and_keeps_unvisited():
    """An unvisited state keeps everything; a zero-weight component keeps its mean and
    covariance; a constant feature's variances are floored at min_covar."""
    m = gmm_model("full", N=3, nm=2, D=2, seed=3, params="wmc", n_iter=3, tol=-np.inf,
                  backend="cython")
    m.startprob_ = np.array([1.0, 0.0, 0.0])
    m.transmat_ = np.eye(3)
    m.weights_ = np.array([[1.0, 0.0], [0.5, 0.5], [0.5, 0.5]])
    keep = [a[1:].copy() for a in (m.weights_, m.means_, m.covars_)]
    keep_c = (m.means_[0, 1].copy(), m.covars_[0, 1].copy())
    m.fit(np.random.default_rng(0).normal(size=(60, 2)))
    for a, k in zip((m.weights_, m.means_, m.covars_), keep):
        np.testing.assert_array_equal(a[1:], k)
    assert m.weights_[0, 1] == 0.0
    np.testing.assert_array_equal(m.means_[0, 1], keep_c[0])
    np.testing.assert_array_equal(m.covars_[0, 1], keep_c[1])
    X = np.column_stack([np.full(40, 3.0), np.random.default_rng(1).normal(size=40)])
    for kind in KINDS:
        g = GMMHMM(2, 3, covariance_type=kind, random_state=0, backend="cython").fit(X)
        for a in ATTRS:
            assert np.isfinite(getattr(g, a)).all(), (kind, a)
        assert np.isfinite(g.score(X))
        cv = g.covars_ if kind in ("full", "tied") else None
        if cv is not None:
            assert np.linalg.eigvalsh(cv).min() >= g.min_covar * (1 - 1e-9)
        else:
            assert g.covars_.min() >= g.min_covar


def test_far_from_origin():
    m = gmm_model("full", seed=3)
    X = m.sample(200, random_state=2)[0]
    ref = m.score_sequences(X)
    m.means_ = m.means_ + 1e6
    np.testing.assert_allclose(m.score_sequences(X + 1e6), ref, rtol=1e-7)


def test_bad_input(tmp_path):
    m = gmm_model("full", backend="cython")
    with pytest.raises(ValueError, match=r"X\[1, 0\] is nan"):
        m.score(np.array([[0.0, 0.0], [np.nan, 1.0]]))
    with pytest.raises(ValueError, match="n_features=2"):
        m.score(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"X\[0, 1\] is nan"):
        GMMHMM(2, 2).fit(np.array([[0.0, np.nan], [1.0, 1.0]]))
    bad = m.covars_.copy()
    bad[2, 1] = [[1.0, 2.0], [2.0, 1.0]]  # indefinite
    m.covars_ = bad
    with pytest.raises(ValueError, match="state 2, component 1 is not positive definite"):
        m.score(np.zeros((2, 2)))
    bad[2, 1] = [[1.0, 1.0], [1.0, 1.0]]  # singular
    m.covars_ = bad
    with pytest.raises(ValueError, match="state 2, component 1 is not positive definite"):
        m.predict(np.zeros((2, 2)))
    bad[2, 1] = [[1.0, 0.5], [0.0, 1.0]]
    m.covars_ = bad
    with pytest.raises(ValueError, match="state 2, component 1 must be symmetric"):
        m.score(np.zeros((2, 2)))
    t = gmm_model("tied")
    t.covars_ = np.array([np.eye(2), [[1.0, 1.0], [1.0, 1.0]], np.eye(2)])
    with pytest.raises(ValueError, match="of state 1 is not positive definite"):
        t.score(np.zeros((2, 2)))
    d = gmm_model("diag")
    d.covars_ = np.where(np.arange(2)[None, :, None] == 1, -d.covars_, d.covars_)
    with pytest.raises(ValueError, match="state 0, component 1 must be positive"):
        d.score(np.zeros((2, 2)))
    s = gmm_model("spherical")
    s.covars_ = np.ones((3, 2, 2))
    with pytest.raises(ValueError, match=r"must have shape \(3, 2\)"):
        s.score(np.zeros((2, 2)))
    w = gmm_model("diag")
    w.weights_ = np.array([[0.5, 0.5], [0.5, 0.6], [1.0, 0.0]])
    with pytest.raises(ValueError, match="weights_ row 1 sums to 1.1"):
        w.score(np.zeros((2, 2)))
    w = gmm_model("diag")
    w.means_ = np.zeros((3, 3, 2))
    with pytest.raises(ValueError, match="means_ must have shape"):
        w.score(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="covariance_type must be one of"):
        GMMHMM(2, 2, covariance_type="bad").fit(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="n_mix must be a positive int"):
        GMMHMM(2, 0).fit(np.random.default_rng(0).normal(size=(5, 2)))
    with pytest.raises(ValueError, match="weights_prior must be a scalar or an array"):
        GMMHMM(2, 2, weights_prior=np.ones(3), n_iter=1).fit(
            np.random.default_rng(0).normal(size=(20, 2)))
    unfitted = GMMHMM(2, 2)
    with pytest.raises(ValueError, match="no startprob_ yet"):
        unfitted.score(np.zeros((2, 2)))


@pytest.mark.parametrize("kind", KINDS)
def test_save_load(tmp_path, kind):
    m = gmm_model(kind, backend="cython", min_covar=1e-4)
    p = tmp_path / "g.json"
    m.save(p)
    obj = json.loads(p.read_text())
    assert obj["type"] == "gmm" and obj["format_version"] == 1 and obj["n_mix"] == 2
    m2 = GMMHMM.load(p, backend="cython")
    assert isinstance(m2, GMMHMM) and m2.covariance_type == kind and m2.min_covar == 1e-4
    for a in ATTRS:
        np.testing.assert_array_equal(getattr(m2, a), getattr(m, a))
    X = m.sample(50, random_state=1)[0]
    np.testing.assert_array_equal(m2.score_sequences(X, [25, 25]), m.score_sequences(X, [25, 25]))
    with pytest.raises(ValueError, match="holds a 'gmm' model, not a 'gaussian' one"):
        GaussianHMM.load(p)
    g = GaussianHMM(2, "diag", init_params="")
    g.startprob_, g.transmat_, g.means_, g.covars_ = [1.0, 0.0], np.eye(2), np.zeros((2, 2)), \
        np.ones((2, 2))
    g.save(tmp_path / "gauss.json")
    with pytest.raises(ValueError, match="holds a 'gaussian' model, not a 'gmm' one"):
        GMMHMM.load(tmp_path / "gauss.json")
    del obj["covars"]
    p.write_text(json.dumps(obj))
    with pytest.raises(ValueError, match="missing key"):
        GMMHMM.load(p)


def test_sklearn_plumbing():
    m = GMMHMM(2, 3, covariance_type="full", weights_prior=2.0)
    params = m.get_params()
    assert params["n_mix"] == 3 and params["weights_prior"] == 2.0
    assert params["covars_prior"] is None and params["params"] == "stmcw"
    assert m.set_params(n_mix=4).n_mix == 4
    assert "n_mix=4" in repr(m)
    X = gmm_model("diag", nm=3).sample(100, random_state=0)[0]
    f = GMMHMM(3, 3, n_iter=2, random_state=0).fit(X)
    # hmmlearn's count of free scalars: n_mix - 1 mixture weights in all
    assert f._n_fit_scalars_per_param() == {"s": 2, "t": 6, "m": 18, "c": 18, "w": 2}
