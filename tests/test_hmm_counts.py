"""The count rooms of the HMM engine (``fasthw6.hmm.counts``): ``PoissonHMM`` and
``MultinomialHMM`` against hmmlearn 0.3 (scores, posteriors, decoding, model selection, EM from
the same seed, sampling draws) and scipy's densities, every backend, float32, zero rates and
probabilities, states without data, bad input, and model files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from fasthw6.hmm import CategoricalHMM
from fasthw6.hmm.counts import MultinomialHMM, PoissonHMM

BACKENDS = ["numpy", "cython", "numba"]
LENGTHS = [100, 1, 150, 49]
MODELS = ["poisson", "multinomial"]


def chain(n, seed):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(n), n)


def params(kind, N, D, seed):
    """(startprob, transmat, emission parameter) of a random model."""
    rng = np.random.default_rng(seed + 100)
    sp, tm = chain(N, seed)
    if kind == "poisson":
        return sp, tm, rng.uniform(0.5, 8.0, (N, D))
    return sp, tm, rng.dirichlet(np.ones(D), N)


def set_params(m, kind, sp, tm, em):
    m.startprob_, m.transmat_ = sp, tm
    if kind == "poisson":
        m.lambdas_ = em
    else:
        m.emissionprob_ = em
    return m


def ours(kind, N=3, D=4, seed=0, n_trials=6, **kw):
    sp, tm, em = params(kind, N, D, seed)
    if kind == "poisson":
        m = PoissonHMM(N, init_params="", **kw)
    else:
        m = MultinomialHMM(N, n_trials=n_trials, init_params="", **kw)
    return set_params(m, kind, sp, tm, em)


def emission(m):
    return m.lambdas_ if hasattr(m, "lambdas_") else m.emissionprob_


def hmmlearn_cls(kind):
    hmm = pytest.importorskip("hmmlearn.hmm")
    return hmm.PoissonHMM if kind == "poisson" else hmm.MultinomialHMM


# ------------------------------------------------------------------------------ hmmlearn
@pytest.mark.parametrize("kind", MODELS)
def test_matches_hmmlearn(kind):
    H = hmmlearn_cls(kind)
    f = ours(kind, backend="cython")
    extra = {} if kind == "poisson" else {"n_trials": 6}
    h = set_params(H(3, init_params="", implementation="scaling", **extra), kind,
                   f.startprob_, f.transmat_, emission(f))
    X, Z = h.sample(300, random_state=5)
    Xf, Zf = f.sample(300, random_state=5)
    np.testing.assert_array_equal(Xf, X)  # the same draws
    np.testing.assert_array_equal(Zf, Z)
    assert Xf.dtype == X.dtype
    assert f.score(X, LENGTHS) == pytest.approx(h.score(X, LENGTHS), rel=1e-12, abs=1e-8)
    lf, gf = f.score_samples(X, LENGTHS)
    lh, gh = h.score_samples(X, LENGTHS)
    assert lf == pytest.approx(lh, rel=1e-12)
    np.testing.assert_allclose(gf, gh, atol=1e-10)
    for alg in ("viterbi", "map"):
        lf, sf = f.decode(X, LENGTHS, algorithm=alg)
        lh, sh = h.decode(X, LENGTHS, algorithm=alg)
        np.testing.assert_array_equal(sf, sh)
        assert lf == pytest.approx(lh, rel=1e-10)
    np.testing.assert_array_equal(f.predict(X, LENGTHS), h.predict(X, LENGTHS))
    assert f.aic(X, LENGTHS) == pytest.approx(h.aic(X, LENGTHS), rel=1e-12)
    assert f.bic(X, LENGTHS) == pytest.approx(h.bic(X, LENGTHS), rel=1e-12)

    # EM from hmmlearn's own random start (same seed), and sampling with the estimator's
    # random_state afterwards (hmmlearn keeps the generator its initialisation drew from)
    fit_kw = dict(n_iter=5, tol=-np.inf, random_state=3)
    for extra in ([{}, {"lambdas_prior": 2.0, "lambdas_weight": np.arange(1.0, 5.0)}]
                  if kind == "poisson" else [{"n_trials": 6}, {}]):
        hf = H(3, implementation="scaling", **fit_kw, **extra).fit(X, LENGTHS)
        cls = PoissonHMM if kind == "poisson" else MultinomialHMM
        ff = cls(3, backend="cython", **fit_kw, **extra).fit(X, LENGTHS)
        np.testing.assert_allclose(emission(ff), emission(hf), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(ff.transmat_, hf.transmat_, atol=1e-10)
        np.testing.assert_allclose(ff.startprob_, hf.startprob_, atol=1e-10)
        np.testing.assert_allclose(list(ff.monitor_.history), list(hf.monitor_.history),
                                   rtol=1e-10)
        assert ff.n_features == hf.n_features == 4
        if kind == "multinomial":
            np.testing.assert_array_equal(ff.n_trials, hf.n_trials)
        np.testing.assert_array_equal(ff.sample(20)[0], hf.sample(20)[0])


@pytest.mark.parametrize("kind", MODELS)
def test_init_draws_match_hmmlearn(kind):
    """The random start alone (``_init``, which fit runs first), from an int seed and from a
    RandomState."""
    H = hmmlearn_cls(kind)
    X = ours(kind, seed=4).sample(60, random_state=1)[0]
    cls = PoissonHMM if kind == "poisson" else MultinomialHMM
    for rs in (7, np.random.RandomState(7)):
        h = H(3, random_state=rs)
        h._init(X)
        f = cls(3, random_state=rs if isinstance(rs, int) else np.random.RandomState(7))
        f._init(X)
        np.testing.assert_allclose(emission(f), emission(h), rtol=1e-12)
        np.testing.assert_allclose(f.startprob_, h.startprob_, rtol=1e-12)
        np.testing.assert_allclose(f.transmat_, h.transmat_, rtol=1e-12)


def test_frame_loglik_equals_scipy():
    """The BLAS-product emission tables against scipy's log-pmfs, zeros included."""
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(2)
    p = ours("poisson", N=3, D=3)
    p.lambdas_[1, 0] = 0.0  # a state that emits only zeros in feature 0
    X = rng.poisson(3.0, (40, 3))
    X[:5, 0] = 0
    want = np.stack([stats.poisson.logpmf(X, p.lambdas_[i]).sum(axis=1) for i in range(3)], 1)
    got = p._log_frames(p._data(X, None)[0])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert np.isneginf(got[X[:, 0] > 0, 1]).all() and np.isfinite(got[:5]).all()

    m = ours("multinomial", N=3, D=3, n_trials=None)
    m.emissionprob_[2] = [0.5, 0.5, 0.0]
    X = rng.multinomial(5, [0.3, 0.3, 0.4], size=40)
    X[:5] = [2, 3, 0]
    want = np.stack([stats.multinomial.logpmf(X, X.sum(axis=1), m.emissionprob_[i])
                     for i in range(3)], 1)
    got = m._log_frames(m._data(X, None)[0])
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert np.isneginf(got[X[:, 2] > 0, 2]).all() and np.isfinite(got[:5]).all()
    assert not np.isnan(got).any()



def test_log_factorial_is_gammaln_across_the_table_edge():
    """The factorial lookup gives gammaln's values bit for bit, below, at and above the
    table's end, and large counts (a Poisson frame of 10^6 events) still score right."""
    from scipy.special import gammaln
    from fasthw6.hmm.counts import _LOG_FACTORIAL, _log_factorial
    K = _LOG_FACTORIAL.shape[0]
    x = np.array([[0, 1, 2, 170], [K - 2, K - 1, K, K + 1], [1e6, 2.0 ** 40, 3, 0]])
    np.testing.assert_array_equal(_log_factorial(x), gammaln(x + 1.0))
    assert _log_factorial(np.zeros((0, 4))).shape == (0, 4)
    stats = pytest.importorskip("scipy.stats")
    p = ours("poisson", N=2, D=2)
    p.lambdas_[:] = [[1e6, 5.0], [2.0, 4.0]]
    X = np.array([[1_000_000, 3], [K + 7, 0], [0, K - 1]])
    want = np.stack([stats.poisson.logpmf(X, p.lambdas_[i]).sum(axis=1) for i in range(2)], 1)
    # terms of 10^7 cancel to -9.79: absolute agreement to their rounding, 1e-16 x 10^7
    np.testing.assert_allclose(p._log_frames(p._data(X, None)[0]), want, rtol=1e-12, atol=1e-8)


def test_factorial_terms_check_and_sum_on_every_backend():
    """``factorial_terms``: Σ_j log(x_j!) of every frame, the features added in order (the
    same bits on every backend, gammaln's values beyond the table), and None as soon as one
    entry is not a whole number in [0, 2**53], wherever it lies in the batch."""
    from scipy.special import gammaln
    from fasthw6.hmm.counts import _LOG_FACTORIAL, factorial_terms
    K = _LOG_FACTORIAL.shape[0]
    rng = np.random.default_rng(5)
    x = rng.integers(0, 60, (70000, 11)).astype(np.float64)  # several pieces a thread
    x[5, 3], x[69000, 10], x[123, 0] = K, 10.0 ** 6, 2.0 ** 53
    for backend in BACKENDS:
        got = factorial_terms(x, backend)
        want = np.zeros(len(x))
        for j in range(x.shape[1]):
            want += gammaln(x[:, j] + 1.0)
        np.testing.assert_array_equal(got, want)  # so every backend's bits are the same
        for bad in (-1.0, 0.5, np.nan, np.inf, -np.inf, 2.0 ** 53 + 2):
            for where in ((0, 0), (40000, 7), (69999, 10)):
                y = x.copy()
                y[where] = bad
                assert factorial_terms(y, backend) is None, (backend, bad, where)
        assert factorial_terms(np.zeros((0, 3)), backend).shape == (0,)


# ------------------------------------------------------------------------------ backends
@pytest.mark.parametrize("kind", MODELS)
def test_backends_and_float32_agree(kind):
    X = ours(kind, seed=11).sample(200, random_state=0)[0]
    lengths = [120, 80]
    cls = PoissonHMM if kind == "poisson" else MultinomialHMM
    ref = {}
    for be in BACKENDS:
        m = cls(3, n_iter=3, tol=-np.inf, random_state=0, backend=be).fit(X, lengths)
        ref[be] = (m.score_sequences(X, lengths), emission(m), m.predict(X, lengths),
                   m.predict_proba(X, lengths))
    for be in ("cython", "numba"):
        np.testing.assert_allclose(ref[be][0], ref["numpy"][0], rtol=1e-10)
        np.testing.assert_allclose(ref[be][1], ref["numpy"][1], rtol=1e-9, atol=1e-12)
        np.testing.assert_array_equal(ref[be][2], ref["numpy"][2])
        np.testing.assert_allclose(ref[be][3], ref["numpy"][3], atol=1e-10)
    m32 = cls(3, n_iter=3, tol=-np.inf, random_state=0, dtype=np.float32,
              backend="cython").fit(X, lengths)
    np.testing.assert_allclose(emission(m32), ref["numpy"][1], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(m32.score_sequences(X, lengths), ref["numpy"][0], rtol=1e-4)
    np.testing.assert_allclose(m32.predict_proba(X, lengths), ref["numpy"][3], atol=1e-4)


# ------------------------------------------------------------------------------ EM edge cases
@pytest.mark.parametrize("kind", MODELS)
def test_state_without_data_keeps_its_parameters(kind):
    letter = "l" if kind == "poisson" else "e"
    m = ours(kind, N=3, D=3, seed=1, backend="cython", n_iter=3, params="st" + letter)
    m.startprob_ = np.array([1.0, 0.0, 0.0])
    m.transmat_ = np.eye(3)  # states 1 and 2 never visited
    keep = emission(m)[1:].copy()
    X = ours(kind, N=3, D=3, seed=2).sample(50, random_state=0)[0]
    X[:, 0] = 0  # a feature never seen: its rate/probability goes to 0, never NaN
    if kind == "multinomial":
        m.n_trials = None
    m.fit(X)
    np.testing.assert_array_equal(emission(m)[1:], keep)
    assert emission(m)[0, 0] == 0.0
    assert np.isfinite(emission(m)).all() and np.isfinite(m.transmat_).all()
    assert np.isfinite(m.score(X))
    assert not np.isnan(m.predict_proba(X)).any()
    X[3, 0] = 2  # now impossible in state 0 (zero rate/probability), -inf, not NaN
    if kind == "multinomial":
        m.n_trials = None
    assert m.score(X) == -np.inf
    assert not np.isnan(m.predict_proba(X)).any()


def test_all_sequences_impossible_keeps_emissions():
    m = ours("poisson", N=2, D=1, backend="cython", n_iter=2)
    m.lambdas_ = np.array([[0.0], [0.0]])
    keep = m.lambdas_.copy()
    m.fit(np.array([[1], [2], [0]]))
    np.testing.assert_array_equal(m.lambdas_, keep)


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_counts(backend):
    for kind in MODELS:
        m = ours(kind, N=2, D=2, n_trials=None, backend=backend)
        for bad, err, pat in [
                (np.array([[1, -1]]), ValueError, r"X\[0, 1\] = -1: counts must be non-negative"),
                (np.array([[1.5, 0.0]]), ValueError, r"X\[0, 0\] = 1.5 is not a whole number"),
                (np.array([[0.0, np.nan]]), ValueError, r"X\[0, 1\] is nan"),
                (np.array([[np.inf, 1.0]]), ValueError, r"X\[0, 0\] is inf"),
                (np.zeros((3, 3), int), ValueError, "3 features per sample.*n_features=2"),
                (np.zeros(4, int), ValueError, r"reshape\(-1, 1\)"),
                (np.array([[True, False]]), TypeError, "counts"),
                (np.array([["a", "b"]]), TypeError, "counts"),
                (np.array([[2.0 ** 60, 0.0]]), ValueError, "too large")]:
            with pytest.raises(err, match=pat):
                m.score(bad)
            if bad.shape == (1, 2):  # fit validates the same way
                with pytest.raises(err, match=pat):
                    type(m)(2).fit(bad)


def test_bad_parameters():
    p = ours("poisson", N=2, D=2)
    X = np.array([[1, 2], [0, 3]])
    p.lambdas_ = np.array([[1.0, -0.5], [1.0, 1.0]])
    with pytest.raises(ValueError, match=r"lambdas_\[0, 1\] = -0.5: Poisson rates must be "
                                         r"non-negative"):
        p.score(X)
    p.lambdas_ = np.array([[1.0, np.nan], [1.0, 1.0]])
    with pytest.raises(ValueError, match=r"lambdas_\[0, 1\] is nan"):
        p.score(X)
    p.lambdas_ = np.ones((3, 2))
    with pytest.raises(ValueError, match=r"lambdas_ must have shape \(2, n_features\)"):
        p.score(X)
    with pytest.raises(ValueError, match="lambdas_weight must be non-negative"):
        PoissonHMM(2, lambdas_weight=-1.0).fit(X)
    with pytest.raises(ValueError, match="lambdas_prior must be a scalar or an array "
                                         "broadcastable to"):
        PoissonHMM(2, lambdas_prior=np.ones(3)).fit(X)
    with pytest.raises(ValueError, match="method of moments"):
        PoissonHMM(2).fit(np.zeros((5, 2), int))
    q = PoissonHMM(2)
    q.startprob_, q.transmat_ = np.ones(2) / 2, np.eye(2)
    with pytest.raises(ValueError, match="has no lambdas_ yet"):  # NotFittedError
        q.score(X)

    m = ours("multinomial", N=2, D=3, n_trials=4)
    with pytest.raises(ValueError, match="row 1 of X sums to 5 but n_trials is 4"):
        m.score(np.array([[4, 0, 0], [1, 1, 3]]))
    with pytest.raises(ValueError, match="row 0 of X sums to 3 but n_trials is 4"):
        MultinomialHMM(2, n_trials=4).fit(np.array([[1, 1, 1], [4, 0, 0]]))
    with pytest.raises(ValueError, match="n_trials has 3 per-sample entries but X has 2"):
        MultinomialHMM(2, n_trials=[1, 2, 3]).fit(np.array([[1, 0, 0], [4, 0, 0]]))
    m.emissionprob_ = np.array([[0.5, 0.4, 0.0], [0.2, 0.3, 0.5]])
    with pytest.raises(ValueError, match="emissionprob_ row 0 sums to 0.9, expected 1"):
        m.score(np.array([[4, 0, 0]]))
    m.emissionprob_ = np.array([[1.2, -0.2, 0.0], [0.2, 0.3, 0.5]])
    with pytest.raises(ValueError, match="emissionprob_ must be non-negative"):
        m.score(np.array([[4, 0, 0]]))
    m = ours("multinomial", N=2, D=3)
    for bad, err in [(-1, ValueError), (2.5, ValueError), ("4", TypeError),
                     (np.ones((2, 2), int), ValueError)]:
        m.n_trials = bad
        with pytest.raises(err, match="n_trials"):
            m.score(np.array([[4, 0, 0]]))
    m.n_trials = [3, 4]
    with pytest.raises(ValueError, match="sample needs a single n_trials"):
        m.sample(2, random_state=0)
    m.n_trials = None
    with pytest.raises(ValueError, match="sample needs a single n_trials"):
        m.sample(2, random_state=0)


def test_n_trials_semantics():
    X = np.array([[2, 1, 0], [0, 1, 3], [1, 1, 1]])
    m = MultinomialHMM(2, n_iter=2, random_state=0).fit(X)  # None: the fitted row sums
    np.testing.assert_array_equal(m.n_trials, [3, 4, 3])
    assert np.isfinite(m.score(np.array([[5, 0, 0], [0, 0, 1]])))  # other totals: no check
    m.n_trials = np.array([3, 3, 3])  # one common total: enforced when scoring
    with pytest.raises(ValueError, match="sums to 5 but n_trials is 3"):
        m.score(np.array([[5, 0, 0]]))
    assert m.sample(3, random_state=0)[0].sum(axis=1).tolist() == [3, 3, 3]
    # each frame is scored with its own total, as hmmlearn does
    m.n_trials = None
    one = MultinomialHMM(1, init_params="")
    one.startprob_, one.transmat_ = np.ones(1), np.ones((1, 1))
    one.emissionprob_ = np.array([[0.5, 0.5]])
    assert one.score(np.array([[1, 1], [0, 0]])) == pytest.approx(np.log(0.5))


# ------------------------------------------------------------------------------ files
@pytest.mark.parametrize("kind", MODELS)
def test_save_load(tmp_path, kind):
    m = ours(kind, backend="cython")
    path = tmp_path / f"{kind}.json"
    m.save(path)
    obj = json.loads(path.read_text())
    assert obj["type"] == kind and obj["format_version"] == 1
    cls = type(m)
    m2 = cls.load(path, backend="numpy")
    assert type(m2) is cls and m2.backend == "numpy"
    np.testing.assert_array_equal(emission(m2), emission(m))
    np.testing.assert_array_equal(m2.transmat_, m.transmat_)
    X = m.sample(50, random_state=1)[0]
    np.testing.assert_allclose(m2.score_sequences(X, [25, 25]), m.score_sequences(X, [25, 25]),
                               rtol=1e-12)
    if kind == "multinomial":
        assert obj["n_trials"] == 6 and m2.n_trials == 6
    other = MultinomialHMM if kind == "poisson" else PoissonHMM
    with pytest.raises(ValueError, match=f"holds a '{kind}' model, not a '{other._TYPE}' one"):
        other.load(path)
    c = CategoricalHMM(2, init_params="")
    c.startprob_, c.transmat_, c.emissionprob_ = [1.0, 0.0], np.eye(2), np.eye(2)
    c.save(tmp_path / "c.json")
    with pytest.raises(ValueError, match=f"holds a 'categorical' model, not a '{kind}' one"):
        cls.load(tmp_path / "c.json")
    del obj["lambdas" if kind == "poisson" else "emissionprob"]
    path.write_text(json.dumps(obj))
    with pytest.raises(ValueError, match="missing key"):
        cls.load(path)


def test_sklearn_params():
    base = pytest.importorskip("sklearn.base")
    for m in (PoissonHMM(3, lambdas_prior=0.5, random_state=2),
              MultinomialHMM(3, n_trials=5, random_state=2)):
        c = base.clone(m)
        assert c.get_params() == m.get_params()
        assert type(c) is type(m)
    assert "lambdas_weight" in PoissonHMM().get_params()
    assert MultinomialHMM().set_params(n_trials=3).n_trials == 3
