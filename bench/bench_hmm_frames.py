"""Benchmarks of the emission models on the framewise engine: one thread, float64, 2000
sequences x 500 frames, against hmmlearn's classes and dynamax's and pomegranate's Gaussian HMMs
(the comparisons registry's anchors; the peers up to N=16, where a call takes seconds).

Work is counted in frames, so every implementation of one case shares one unit.  Before it is
timed, every result is checked: scores and Viterbi paths against fasthw6's Cython backend
(itself checked against hmmlearn on the first sequences, untimed), one EM iteration against
hmmlearn's parameters from the same start (dynamax's against its own M-step, under its priors,
on fasthw6's E-step statistics: ``expected_update``).  The peers' Viterbi is timed and checked for
the path alone (``decode_path``), all they compute.

    python -m pytest bench/bench_hmm_frames.py --benchmark-json=bench/results/hmm_frames.json
"""
from __future__ import annotations

import numpy as np
import pytest

from bench.conftest import QUICK, batch
from fasthw6._backend import comparisons
from fasthw6.hmm import GMMHMM, GaussianHMM, PoissonHMM, score_frames, score_sequences

S, T = batch(2000), 500
CHECK = 20  # sequences hmmlearn re-scores, untimed, to check the reference
# quick: D=4 only, and the naive reference on its first case only (seconds per call)
CASES = [(kind, n, d) for kind in ("diag", "full") for n in (3, 16, 64) for d in ((4,) if QUICK else (4, 16))]
GAUSSIAN = comparisons("GaussianHMM", GaussianHMM)
# most states each implementation runs at: the naive reference takes tens of seconds per call
# beyond N=3; dynamax and pomegranate 8-11 s at full N=16 D=16, and at N=64 (first calls,
# beside another job) pomegranate score 12-28 s and Viterbi 69-89 s, dynamax 26 s and 36 s
SLOW = {"numpy": 3, "dynamax": 16, "pomegranate": 16}
PEERS = ("dynamax", "pomegranate")  # the Gaussian HMMs of other libraries (_anchors_gaussian)


def _gaussian_case(kind, n, d):
    rng = np.random.default_rng(100 * n + d)
    sp = rng.dirichlet(np.ones(n))
    tm = rng.dirichlet(np.ones(n), size=n) * 0.5 + 0.5 * np.eye(n)
    means = rng.normal(size=(n, d)) * 2.0
    if kind == "diag":
        cv = rng.uniform(0.5, 2.0, (n, d))
    else:
        A = rng.normal(size=(n, d, d)) / np.sqrt(d)
        cv = A @ A.transpose(0, 2, 1) + 0.5 * np.eye(d)
    z = rng.integers(0, n, S * T)
    X = means[z] + rng.normal(size=(S * T, d))
    return dict(kind=kind, n=n, d=d, sp=sp, tm=tm, means=means, cv=cv, X=X,
                lengths=np.full(S, T), name=f"{kind} N={n} D={d}, {S}x{T}")


_CASES = {}


def _case(key):
    if key not in _CASES:
        _CASES.clear()  # one case's data (up to 128 MB) at a time
        _CASES[key] = _gaussian_case(*key)
    return _CASES[key]


def _model(cls, c, **kw):
    m = cls(c["n"], c["kind"], init_params="", **kw)
    m.startprob_, m.transmat_, m.means_, m.covars_ = c["sp"], c["tm"], c["means"], c["cv"]
    return m


def _reference(c):
    """Per-sequence scores and the Viterbi path from the Cython backend; the first CHECK
    sequences re-scored by hmmlearn (when installed) first."""
    if "ref" not in c:
        m = _model(GAUSSIAN["cython"], c)
        ll = m.score_sequences(c["X"], c["lengths"])
        if GAUSSIAN.get("hmmlearn") is not None:
            h = _model(GAUSSIAN["hmmlearn"], c)
            for s in range(CHECK):
                np.testing.assert_allclose(ll[s], h.score(c["X"][s * T:(s + 1) * T]), rtol=1e-10)
        c["ref"] = dict(ll=ll, path=m.decode(c["X"], c["lengths"])[1])
    return c["ref"]


def _skip(impl, cls, n, key=None):
    if cls is None:
        pytest.skip(f"{impl} not installed")
    if QUICK and impl in PEERS:
        pytest.skip(f"--quick: {impl} takes seconds per call; run without --quick")
    if QUICK and impl == "numpy" and key is not None and key != CASES[0]:
        pytest.skip("--quick: the naive reference runs on the first case only (seconds per call)")
    if n > SLOW.get(impl, n):
        pytest.skip(f"{impl} takes tens of seconds per call at N={n}")


def _rounds(impl, n):
    return 1 if impl == "numpy" or (impl in ("hmmlearn",) + PEERS and n >= 16) else None


@pytest.mark.parametrize("impl", list(GAUSSIAN))
@pytest.mark.parametrize("key", CASES, ids=lambda k: f"{k[0]}-N{k[1]}-D{k[2]}")
def test_gaussian_score(measure, key, impl):
    c = _case(key)
    cls = GAUSSIAN[impl]
    _skip(impl, cls, c["n"], key)
    total = _reference(c)["ll"].sum()
    m = _model(cls, c)

    def check(r):
        np.testing.assert_allclose(r, total, rtol=1e-10)

    measure(lambda: m.score(c["X"], c["lengths"]), group="GaussianHMM score", case=c["name"],
            impl=impl, work=S * T, unit="frames/s", baseline="hmmlearn", check=check,
            rounds=_rounds(impl, c["n"]))


@pytest.mark.parametrize("impl", list(GAUSSIAN))
@pytest.mark.parametrize("key", CASES, ids=lambda k: f"{k[0]}-N{k[1]}-D{k[2]}")
def test_gaussian_decode(measure, key, impl):
    c = _case(key)
    cls = GAUSSIAN[impl]
    _skip(impl, cls, c["n"], key)
    path = _reference(c)["path"]
    m = _model(cls, c)
    if hasattr(m, "decode_path"):  # a peer: the path alone (its log-probability is NumPy's work)
        fn = lambda: m.decode_path(c["X"], c["lengths"])  # noqa: E731

        def check(r):
            np.testing.assert_array_equal(r, path)
    else:
        fn = lambda: m.decode(c["X"], c["lengths"])  # noqa: E731

        def check(r):
            assert np.isfinite(r[0])
            np.testing.assert_array_equal(r[1], path)

    measure(fn, group="GaussianHMM decode (Viterbi)",
            case=c["name"], impl=impl, work=S * T, unit="frames/s", baseline="hmmlearn",
            check=check, rounds=_rounds(impl, c["n"]))


_FIT = {}


@pytest.mark.parametrize("impl", list(GAUSSIAN))
@pytest.mark.parametrize("key", CASES, ids=lambda k: f"{k[0]}-N{k[1]}-D{k[2]}")
def test_gaussian_fit_iteration(measure, key, impl):
    c = _case(key)
    cls = GAUSSIAN[impl]
    _skip(impl, cls, c["n"], key)
    if not getattr(cls, "fits", True):
        pytest.skip(f"{impl}'s update is not hmmlearn's and cannot be checked here")
    if key not in _FIT:  # hmmlearn's one iteration, computed apart from any timed run
        ref_cls = GAUSSIAN["hmmlearn"] or GAUSSIAN["cython"]
        r = _model(ref_cls, c, n_iter=1, tol=-np.inf).fit(c["X"], c["lengths"])
        _FIT.clear()
        _FIT[key] = dict(means=r.means_.copy(), cv=np.asarray(r._covars_).copy(),
                         tm=r.transmat_.copy())
    ref = _FIT[key]
    cv_atol = 1e-9
    if hasattr(cls, "expected_update"):  # a peer under its own priors: its M-step on our E-step
        _, tm, means, cv = cls.expected_update(c["X"], c["lengths"], c["sp"], c["tm"],
                                               c["means"], c["cv"], c["kind"])
        ref = dict(means=means, cv=cv, tm=tm)
        # its own posteriors, not ours, go into its sums: near-zero covariances of full N=16
        # D=16 came out 5e-9 apart (of entries up to 1), where its priors move them by 6e-4
        cv_atol = 1e-7 * np.abs(cv).max()

    def check(m):
        np.testing.assert_allclose(m.means_, ref["means"], rtol=1e-7, atol=1e-9)
        np.testing.assert_allclose(m._covars_, ref["cv"], rtol=1e-7, atol=cv_atol)
        np.testing.assert_allclose(m.transmat_, ref["tm"], rtol=1e-7, atol=1e-10)
        assert np.abs(m.means_ - c["means"]).max() > 1e-6  # the update moved the means

    measure(lambda: _model(cls, c, n_iter=1, tol=-np.inf).fit(c["X"], c["lengths"]),
            group="GaussianHMM fit (one EM iteration)", case=c["name"], impl=impl,
            work=S * T, unit="frames/s", baseline="hmmlearn", check=check,
            rounds=_rounds(impl, c["n"]))


@pytest.mark.parametrize("impl", ["score_frames", "score_sequences"])
def test_frames_vs_categorical_n64(measure, impl):
    """The framewise engine's scoring rate against the categorical path's, N=64, 2000x500:
    the same forward pass, with frames read from an (n_samples, N) table of emission scores
    (scaled by each frame's maximum first) instead of gathered from a small one."""
    n, M = 64, 8
    rng = np.random.default_rng(64)
    sp, tm = rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(n), size=n)
    em = rng.dirichlet(np.ones(M), size=n)
    X = rng.integers(0, M, S * T)
    lengths = np.full(S, T)
    expect = score_sequences(X, lengths, sp, tm, em, backend="cython")
    if impl == "score_frames":
        flp = np.ascontiguousarray(np.log(em).T[X])
        fn = lambda: score_frames(flp, lengths, sp, tm, backend="numba")  # noqa: E731
    else:
        fn = lambda: score_sequences(X, lengths, sp, tm, em, backend="numba")  # noqa: E731

    def check(r):
        np.testing.assert_allclose(r, expect, rtol=1e-10)

    measure(fn, group="framewise vs categorical scoring (numba)", case=f"N={n}, {S}x{T}",
            impl=impl, work=S * T * n * n, unit="state-steps/s", baseline="score_sequences",
            check=check)


# ------------------------------------------------------------------ Poisson and GMM (n_mix=4)
POISSON = comparisons("PoissonHMM", PoissonHMM)
GMM = comparisons("GMMHMM", GMMHMM)
OTHER_CASES = [("poisson", n, 4) for n in (3, 16, 64)] + [("gmm", n, 4) for n in (3, 16)]
N_MIX = 4


def _other_case(family, n, d):
    rng = np.random.default_rng(1000 + 100 * n + d)
    c = dict(family=family, n=n, d=d, sp=rng.dirichlet(np.ones(n)),
             tm=rng.dirichlet(np.ones(n), size=n) * 0.5 + 0.5 * np.eye(n), lengths=np.full(S, T),
             name=f"{family} N={n} D={d}" + (f" n_mix={N_MIX}" if family == "gmm" else "")
             + f", {S}x{T}")
    z = rng.integers(0, n, S * T)
    if family == "poisson":
        c["lambdas"] = rng.uniform(0.5, 10.0, (n, d))
        c["X"] = rng.poisson(c["lambdas"][z]).astype(np.int64)
    else:
        c["weights"] = rng.dirichlet(np.ones(N_MIX), size=n)
        c["means"] = rng.normal(size=(n, N_MIX, d)) * 2.0
        c["covars"] = rng.uniform(0.5, 2.0, (n, N_MIX, d))
        comp = (rng.random(S * T)[:, None] > np.cumsum(c["weights"][z], axis=1)).sum(axis=1)
        c["X"] = c["means"][z, comp] + rng.normal(size=(S * T, d)) * np.sqrt(c["covars"][z, comp])
    return c


def _other_model(cls, c, **kw):
    if c["family"] == "poisson":
        m = cls(c["n"], init_params="", **kw)
        m.lambdas_ = c["lambdas"]
    else:
        m = cls(c["n"], n_mix=N_MIX, covariance_type="diag", init_params="", **kw)
        m.weights_, m.means_, m.covars_ = c["weights"], c["means"], c["covars"]
    m.startprob_, m.transmat_ = c["sp"], c["tm"]
    return m


_OTHER = {}


def _other(key):
    if key not in _OTHER:
        _OTHER.clear()
        c = _other_case(*key)
        impls = POISSON if c["family"] == "poisson" else GMM
        m = _other_model(impls["cython"], c)
        c["ll"] = m.score_sequences(c["X"], c["lengths"])
        c["path"] = m.decode(c["X"], c["lengths"])[1]
        if impls.get("hmmlearn") is not None:
            h = _other_model(impls["hmmlearn"], c)
            for s in range(CHECK):
                np.testing.assert_allclose(c["ll"][s], h.score(c["X"][s * T:(s + 1) * T]),
                                           rtol=1e-10)
        ref_cls = impls["hmmlearn"] or impls["cython"]
        r = _other_model(ref_cls, c, n_iter=1, tol=-np.inf).fit(c["X"], c["lengths"])
        c["fit"] = {a: np.asarray(getattr(r, a)).copy() for a in
                    (("lambdas_",) if c["family"] == "poisson" else ("weights_", "means_",
                                                                     "covars_"))}
        _OTHER[key] = (c, impls)
    return _OTHER[key]


@pytest.mark.parametrize("op", ["score", "decode (Viterbi)", "fit (one EM iteration)"])
@pytest.mark.parametrize("impl", ["numba", "cython", "hmmlearn"])
@pytest.mark.parametrize("key", OTHER_CASES, ids=lambda k: f"{k[0]}-N{k[1]}-D{k[2]}")
def test_other_models(measure, key, impl, op):
    c, impls = _other(key)
    cls = impls.get(impl)
    if cls is None:
        pytest.skip(f"{impl} not installed")
    label = "PoissonHMM" if c["family"] == "poisson" else "GMMHMM"
    if op == "score":
        m = _other_model(cls, c)
        fn = lambda: m.score(c["X"], c["lengths"])  # noqa: E731

        def check(r):
            np.testing.assert_allclose(r, c["ll"].sum(), rtol=1e-10)
    elif op == "decode (Viterbi)":
        m = _other_model(cls, c)
        fn = lambda: m.decode(c["X"], c["lengths"])  # noqa: E731

        def check(r):
            np.testing.assert_array_equal(r[1], c["path"])
    else:
        fn = lambda: _other_model(cls, c, n_iter=1, tol=-np.inf).fit(  # noqa: E731
            c["X"], c["lengths"])

        def check(m):
            for a, v in c["fit"].items():
                np.testing.assert_allclose(getattr(m, a), v, rtol=1e-7, atol=1e-9)

    measure(fn, group=f"{label} {op}", case=c["name"], impl=impl, work=S * T, unit="frames/s",
            baseline="hmmlearn", check=check, rounds=_rounds(impl, c["n"]))
