"""fasthw6.hmm: every backend against brute-force enumeration and against each other, the
document's five defects as regressions, the estimator's contract and every bad input."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from conftest import ragged, random_hmm
from hypothesis import given, settings
from hypothesis import strategies as st

import fasthw6
from fasthw6.hmm import (
    CategoricalHMM,
    NotFittedError,
    em_statistics,
    posteriors,
    score_sequences,
    viterbi,
)
from fasthw6 import _document
from fasthw6._document import (_doc_decode, _doc_evaluation_forward, _doc_learn,
                               document_hmm_run)
from fasthw6.hmm._checks import _as_symbols

URN_A, URN_PI, URN_B, URN_O = (np.array(a) for a in (_document.URN_A, _document.URN_PI,
                                                     _document.URN_B, _document.URN_O))


def brute_force(O, sp, tm, em):
    """log P(O), posteriors, Σξ, Viterbi path and its log-prob by enumerating all N^T paths."""
    N, T = sp.shape[0], len(O)
    probs = {}
    for path in itertools.product(range(N), repeat=T):
        p = sp[path[0]] * em[path[0], O[0]]
        for t in range(1, T):
            p *= tm[path[t - 1], path[t]] * em[path[t], O[t]]
        probs[path] = p
    total = sum(probs.values())
    gamma = np.zeros((T, N))
    xi = np.zeros((N, N))
    for path, p in probs.items():
        for t in range(T):
            gamma[t, path[t]] += p / total
        for t in range(T - 1):
            xi[path[t], path[t + 1]] += p / total
    best = max(probs, key=lambda k: probs[k])
    return np.log(total), gamma, xi, np.array(best), np.log(probs[best])


# --------------------------------------------------------------------------- exactness
@pytest.mark.parametrize("T", [1, 2, 4])
def test_brute_force_enumeration(backend, T):
    sp, tm, em = random_hmm(3, 3, seed=T)
    rng = np.random.default_rng(10 + T)
    seqs = [rng.integers(0, 3, T) for _ in range(3)]
    X = np.concatenate(seqs)
    lengths = [T] * 3
    ll = score_sequences(X, lengths, sp, tm, em, backend=backend)
    ll2, gamma = posteriors(X, lengths, sp, tm, em, backend=backend)
    stats = em_statistics(X, lengths, sp, tm, em, backend=backend)
    lp, path = viterbi(X, lengths, sp, tm, em, backend=backend)
    xi_sum, obs = np.zeros((3, 3)), np.zeros((3, 3))
    for s, O in enumerate(seqs):
        L, G, XI, P, LP = brute_force(O, sp, tm, em)
        np.testing.assert_allclose(ll[s], L, rtol=1e-12)
        np.testing.assert_allclose(ll2[s], L, rtol=1e-12)
        np.testing.assert_allclose(gamma[s * T:(s + 1) * T], G, atol=1e-12)
        np.testing.assert_array_equal(path[s * T:(s + 1) * T], P)
        np.testing.assert_allclose(lp[s], LP, rtol=1e-12)
        xi_sum += XI
        for t in range(T):
            obs[:, O[t]] += G[t]
    np.testing.assert_allclose(stats["trans"], xi_sum, atol=1e-12)
    np.testing.assert_allclose(stats["obs"], obs, atol=1e-12)
    assert ll.dtype == lp.dtype == np.float64 and path.dtype == np.int64


def test_backends_agree(dtype, tol):
    rng = np.random.default_rng(5)
    sp, tm, em = random_hmm(5, 7, seed=3, zeros=True)
    X, lengths = ragged(rng, 7, [1, 9, 0, 30, 2, 17, 1, 64])
    ref = dict(ll=score_sequences(X, lengths, sp, tm, em, backend="numpy"),
               post=posteriors(X, lengths, sp, tm, em, backend="numpy"),
               st=em_statistics(X, lengths, sp, tm, em, backend="numpy"),
               vit=viterbi(X, lengths, sp, tm, em, backend="numpy"))
    ll_tol = dict(rtol=1e-4 if dtype == np.float32 else 1e-12)
    for b in fasthw6.available_backends():
        ll = score_sequences(X, lengths, sp, tm, em, dtype=dtype, backend=b)
        assert ll.dtype == np.float64
        np.testing.assert_allclose(ll, ref["ll"], **ll_tol)
        ll2, g = posteriors(X, lengths, sp, tm, em, dtype=dtype, backend=b)
        assert g.dtype == dtype
        np.testing.assert_allclose(ll2, ref["ll"], **ll_tol)
        np.testing.assert_allclose(g, ref["post"][1], **tol)
        stt = em_statistics(X, lengths, sp, tm, em, dtype=dtype, backend=b)
        for k in ("start", "trans", "obs"):
            np.testing.assert_allclose(stt[k], ref["st"][k], rtol=tol["rtol"] * 10, atol=tol["atol"] * 100)
        lp, path = viterbi(X, lengths, sp, tm, em, backend=b)
        np.testing.assert_array_equal(path, ref["vit"][1])
        np.testing.assert_allclose(lp, ref["vit"][0], rtol=1e-12)


@pytest.mark.parametrize("sym", [np.uint8, np.int8, np.int16, np.uint16, np.int32, np.uint32,
                                 np.int64, np.uint64])
def test_any_integer_symbol_dtype(sym):
    """8- and 64-bit symbols are read in place; 16- and 32-bit ones widened to int64, so the
    kernels see two symbol types (uint8, int64)."""
    rng = np.random.default_rng(1)
    sp, tm, em = random_hmm(3, 5, seed=1)
    X, lengths = ragged(rng, 5, [4, 7, 1], dtype=sym)
    x, _ = _as_symbols(X)
    in_place = np.dtype(sym).itemsize in (1, 8)
    assert x.dtype == (np.uint8 if np.dtype(sym).itemsize == 1 else np.int64)
    assert np.shares_memory(x, X) == in_place
    assert np.shares_memory(_as_symbols(X.reshape(-1, 1))[0], X) == in_place
    expect = score_sequences(X.astype(np.int64), lengths, sp, tm, em, backend="numpy")
    for b in fasthw6.available_backends():
        np.testing.assert_allclose(score_sequences(X, lengths, sp, tm, em, backend=b), expect,
                                   rtol=1e-12)


def test_float32_close_to_float64(backend):
    rng = np.random.default_rng(2)
    sp, tm, em = random_hmm(4, 6, seed=2)
    X, lengths = ragged(rng, 6, [50, 200, 3])
    l64 = score_sequences(X, lengths, sp, tm, em, backend=backend)
    l32 = score_sequences(X, lengths, sp.astype(np.float32), tm.astype(np.float32),
                          em.astype(np.float32), backend=backend)
    np.testing.assert_allclose(l32, l64, rtol=1e-4)


def test_zero_probabilities_impossible_sequence_is_minus_inf_never_nan(backend):
    sp = np.array([1.0, 0.0])
    tm = np.array([[1.0, 0.0], [0.0, 1.0]])
    em = np.array([[1.0, 0.0], [0.0, 1.0]])
    X, lengths = np.array([0, 0, 0, 1, 1, 0]), [2, 2, 1, 1]
    ll = score_sequences(X, lengths, sp, tm, em, backend=backend)
    np.testing.assert_array_equal(ll, [0.0, -np.inf, -np.inf, 0.0])
    ll2, g = posteriors(X, lengths, sp, tm, em, backend=backend)
    np.testing.assert_array_equal(ll2, ll)
    assert not np.isnan(g).any()
    np.testing.assert_array_equal(g[2:5], 0.0)
    st_ = em_statistics(X, lengths, sp, tm, em, backend=backend)
    assert all(np.isfinite(v[np.isfinite(v)]).all() and not np.isnan(v).any() for v in st_.values())
    assert st_["obs"].sum() == 3.0  # only the two possible sequences count
    lp, path = viterbi(X, lengths, sp, tm, em, backend=backend)
    np.testing.assert_array_equal(lp, [0.0, -np.inf, -np.inf, 0.0])


@pytest.mark.parametrize("b", ["numba", "cython"])
def test_million_symbol_sequence_scores_finite(b):
    if b not in fasthw6.available_backends():
        pytest.skip(f"{b} not available")
    sp, tm, em = random_hmm(4, 8, seed=9)
    X = np.random.default_rng(0).integers(0, 8, 10**6).astype(np.uint8)
    ll = score_sequences(X, None, sp, tm, em, backend=b)
    assert np.isfinite(ll).all() and ll[0] < -1e6
    # the same as the sum over ten pieces, each started from the state distribution it has
    lp, path = viterbi(X, None, sp, tm, em, backend=b)
    assert np.isfinite(lp).all() and lp[0] <= ll[0]


def test_empty_batch_and_empty_sequences(backend):
    sp, tm, em = random_hmm(2, 2, seed=0)
    assert score_sequences(np.zeros(0, int), [], sp, tm, em, backend=backend).shape == (0,)
    np.testing.assert_array_equal(score_sequences([1], [0, 1, 0], sp, tm, em, backend=backend)[[0, 2]], 0.0)


# --------------------------------------------------------------------------- the document
def _doc_run(n_iter):
    """(iteration at which the document's training first holds a NaN or None, its last γ)."""
    _, nans, gamma = document_hmm_run(n_iter)
    return (nans.index(True) if True in nans else None), gamma


def _urn_model(**kw):
    m = CategoricalHMM(n_components=3, init_params="", **kw)
    m.startprob_, m.transmat_, m.emissionprob_ = URN_PI.copy(), URN_A.copy(), URN_B.copy()
    return m


def test_defect1_document_reaches_nan_fasthw6_does_not():
    first_nan, _ = _doc_run(100)
    assert first_nan is not None and 90 <= first_nan <= 100  # about iteration 96 (0-based)
    m = _urn_model(n_iter=100, tol=-np.inf)
    logging_off(lambda: m.fit(URN_O.reshape(-1, 1)))
    assert m.monitor_.iter == 100
    for p in (m.startprob_, m.transmat_, m.emissionprob_):
        assert np.isfinite(p).all()
    assert np.isfinite(list(m.monitor_.history)).all()
    # and the corrected backward is the brute-force β: P(O_{t+1:} | state_t) uses B[:, O[t+1]]
    _, gamma, _, _, _ = brute_force(URN_O, URN_PI, URN_A, URN_B)
    ll, g = posteriors(URN_O, None, URN_PI, URN_A, URN_B, backend="numpy")
    np.testing.assert_allclose(g, gamma, atol=1e-12)


def logging_off(fn):
    import logging

    lg = logging.getLogger("fasthw6")
    old = lg.level
    lg.setLevel(logging.CRITICAL)
    try:
        return fn()
    finally:
        lg.setLevel(old)


def test_defect2_gamma_covers_the_last_step():
    # the document's γ is summed from ξ, so its last column is 0 and B ignores the last symbol
    _, doc_gamma = _doc_run(1)
    assert np.all(doc_gamma[:, -1] == 0)
    for b in fasthw6.available_backends():
        _, g = posteriors(URN_O, None, URN_PI, URN_A, URN_B, backend=b)
        np.testing.assert_allclose(g.sum(axis=1), 1.0, rtol=1e-12)
        stt = em_statistics(URN_O, None, URN_PI, URN_A, URN_B, backend=b)
        np.testing.assert_allclose(stt["obs"].sum(axis=0), np.bincount(URN_O, minlength=2))


def test_defect3_decode_is_the_viterbi_path_not_a_columnwise_argmax():
    sp = np.array([0.6, 0.4])
    tm = np.array([[1.0, 0.0], [0.0, 1.0]])  # no state ever changes
    em = np.array([[1.0, 0.0], [0.5, 0.5]])
    O = np.array([0, 1])
    _, doc_path = _doc_decode(tm, em, sp, O, np.zeros((2, 2)))
    _, _, _, best, best_lp = brute_force(O, sp, tm, em)
    assert best.tolist() == [1, 1]
    assert (doc_path - 1).tolist() == [0, 1]  # per-column argmax: the impossible path 0 -> 1
    for b in fasthw6.available_backends():
        lp, path = viterbi(O, None, sp, tm, em, backend=b)
        assert path.tolist() == best.tolist() and np.isclose(lp[0], best_lp)


def test_defect4_long_sequences_do_not_underflow(backend):
    sp, tm, em = random_hmm(3, 4, seed=4)
    O = np.random.default_rng(4).integers(0, 4, 1500)
    with np.errstate(all="ignore"):
        doc_p = _doc_evaluation_forward(tm, em.copy(), sp, O, np.zeros((3, O.size)))[:, -1].sum()
    assert doc_p == 0.0  # the document's unscaled α underflows: log P = -inf
    # a log-space forward (logaddexp) as the independent truth
    la = np.log(sp) + np.log(em[:, O[0]])
    for t in range(1, O.size):
        la = np.logaddexp.reduce(la[:, None] + np.log(tm), axis=0) + np.log(em[:, O[t]])
    truth = np.logaddexp.reduce(la)
    np.testing.assert_allclose(score_sequences(O, None, sp, tm, em, backend=backend), [truth],
                               rtol=1e-12)
    _, g = posteriors(O, None, sp, tm, em, backend=backend)
    assert np.isfinite(g).all() and np.allclose(g.sum(axis=1), 1)


def test_defect5_unoccupied_state_keeps_its_parameters_instead_of_nan(backend):
    sp = np.array([1.0, 0.0, 0.0])
    tm = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])  # state 2 unreachable
    em = np.array([[0.7, 0.3], [0.4, 0.6], [0.5, 0.5]])
    O = np.array([0, 1, 1, 0, 1])
    with np.errstate(all="ignore"):  # the document's M-step: 0/0 in row 2
        doc_A, doc_B, _, _, _, _, _ = _doc_learn(tm.copy(), em.copy(), sp.copy(), O.astype(np.int32),
                                                 np.array([0, 1]), *(np.zeros((3, 5)) for _ in range(2)),
                                                 np.zeros((3, 3, 5)), np.zeros((3, 5)))
    assert np.isnan(doc_A[2]).all() and np.isnan(doc_B[2]).all()
    m = CategoricalHMM(3, init_params="", n_iter=3, tol=-np.inf)
    m.backend = backend
    m.startprob_, m.transmat_, m.emissionprob_ = sp, tm, em
    m.fit(O.reshape(-1, 1))
    np.testing.assert_array_equal(m.transmat_[2], tm[2])
    np.testing.assert_array_equal(m.emissionprob_[2], em[2])
    assert not np.isnan(m.transmat_).any() and np.allclose(m.transmat_.sum(1), 1)


def test_document_urn_example_100_iterations_and_true_viterbi_path(backend):
    m = _urn_model(n_iter=100, tol=-np.inf)
    m.backend = backend
    logging_off(lambda: m.fit(URN_O))
    hist = np.array(m.monitor_.history)
    assert len(hist) == 100 and np.isfinite(hist).all()
    assert np.all(np.diff(hist) >= -1e-9)
    lp, path = m.decode(URN_O.reshape(-1, 1))
    _, _, _, best, best_lp = brute_force(URN_O, m.startprob_, m.transmat_, m.emissionprob_)
    assert path.tolist() == best.tolist()
    np.testing.assert_allclose(lp, best_lp, rtol=1e-9)


# --------------------------------------------------------------------------- EM properties
@settings(max_examples=20, deadline=None, derandomize=True)
@given(n=st.integers(1, 4), m=st.integers(1, 4), seed=st.integers(0, 2**16),
       lens=st.lists(st.integers(1, 12), min_size=1, max_size=4))
def test_em_log_likelihood_never_decreases(n, m, seed, lens):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, m, sum(lens))
    model = CategoricalHMM(n, n_features=m, random_state=seed, n_iter=15, tol=-np.inf)
    logging_off(lambda: model.fit(X, lens))
    hist = np.array(model.monitor_.history)
    assert np.isfinite(hist).all()
    assert np.all(np.diff(hist) >= -1e-9 * np.maximum(1, np.abs(hist[1:])))
    for p in (model.startprob_, model.transmat_, model.emissionprob_):
        assert not np.isnan(p).any() and np.allclose(p.sum(-1), 1)


def test_priors_above_one_are_pseudocounts():
    sp, tm, em = random_hmm(2, 3, seed=7)
    X = np.array([0, 1, 2, 2, 1, 0, 0])
    stt = em_statistics(X, None, sp, tm, em)
    m = CategoricalHMM(2, init_params="", n_iter=1, startprob_prior=3.0, transmat_prior=2.0,
                       emissionprob_prior=1.5)
    m.startprob_, m.transmat_, m.emissionprob_ = sp, tm, em
    m.fit(X)
    norm = lambda a: a / a.sum(-1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(m.startprob_, norm(stt["start"] + 2.0), rtol=1e-12)
    np.testing.assert_allclose(m.transmat_, norm(stt["trans"] + 1.0), rtol=1e-12)
    np.testing.assert_allclose(m.emissionprob_, norm(stt["obs"] + 0.5), rtol=1e-12)
    assert m.monitor_.iter == 1 and m.monitor_.converged


def test_params_letters_limit_updates_and_init():
    sp, tm, em = random_hmm(3, 4, seed=8)
    X = np.random.default_rng(8).integers(0, 4, 60)
    m = CategoricalHMM(3, init_params="", params="e", n_iter=3)
    m.startprob_, m.transmat_, m.emissionprob_ = sp, tm, em
    m.fit(X)
    np.testing.assert_array_equal(m.startprob_, sp)
    np.testing.assert_array_equal(m.transmat_, tm)
    assert not np.allclose(m.emissionprob_, em)
    m2 = CategoricalHMM(3, init_params="e", params="", n_iter=1, random_state=0)
    m2.startprob_, m2.transmat_ = sp, tm
    logging_off(lambda: m2.fit(X))
    assert m2.emissionprob_.shape == (3, 4) and not np.allclose(m2.emissionprob_, em)


def test_fit_with_random_init_is_reproducible(backend):
    X = np.random.default_rng(3).integers(0, 5, 300)
    a = CategoricalHMM(3, random_state=42, n_iter=5)
    b = CategoricalHMM(3, random_state=42, n_iter=5)
    a.backend = b.backend = backend
    a.fit(X, [100, 200])
    b.fit(X, [100, 200])
    np.testing.assert_array_equal(a.transmat_, b.transmat_)
    assert a.n_features == 5


# --------------------------------------------------------------------------- estimator API
def test_estimator_methods_shapes_and_map_decoding():
    sp, tm, em = random_hmm(3, 4, seed=11)
    m = CategoricalHMM(3, init_params="")
    m.startprob_, m.transmat_, m.emissionprob_ = sp, tm, em
    rng = np.random.default_rng(11)
    X, lengths = ragged(rng, 4, [5, 1, 9])
    for shape in (X, X.reshape(-1, 1)):
        per = m.score_sequences(shape, lengths)
        assert per.shape == (3,) and np.isclose(m.score(shape, lengths), per.sum())
        lp, states = m.decode(shape, lengths)
        assert states.shape == (15,) and np.array_equal(m.predict(shape, lengths), states)
        ll, post = m.score_samples(shape, lengths)
        assert post.shape == (15, 3) and np.isclose(ll, per.sum())
        np.testing.assert_array_equal(m.predict_proba(shape, lengths), post)
    lp, states = m.decode(X, lengths, algorithm="map")
    np.testing.assert_array_equal(states, post.argmax(1))
    np.testing.assert_allclose(lp, post.max(1).sum())
    assert CategoricalHMM(3, algorithm="map").algorithm == "map"
    assert m.get_params()["n_components"] == 3 and m.set_params(n_iter=4).n_iter == 4


def test_sample_chain_follows_the_model(backend):
    m = CategoricalHMM(2, init_params="")
    m.backend = backend
    m.startprob_, m.transmat_ = np.array([1.0, 0.0]), np.array([[0.0, 1.0], [1.0, 0.0]])
    m.emissionprob_ = np.array([[0.9, 0.1, 0.0], [0.0, 0.2, 0.8]])
    X, Z = m.sample(2000, random_state=1)
    assert X.shape == (2000, 1) and Z.tolist()[:4] == [0, 1, 0, 1]
    freq0 = np.bincount(X[Z == 0, 0], minlength=3) / (Z == 0).sum()
    assert abs(freq0[0] - 0.9) < 0.03 and freq0[2] == 0
    X2, Z2 = m.sample(5, random_state=1)
    np.testing.assert_array_equal(X2, X[:5])
    X3, Z3 = m.sample(3, random_state=0, currstate=1)
    assert Z3.tolist() == [1, 0, 1]


def test_save_load_round_trip(tmp_path):
    sp, tm, em = random_hmm(3, 4, seed=12)
    m = CategoricalHMM(3, init_params="")
    m.startprob_, m.transmat_, m.emissionprob_ = sp, tm, em
    p = tmp_path / "m.json"
    m.save(p, symbols=list("abcd"))
    obj = json.loads(p.read_text())
    assert set(obj) == {"format_version", "type", "startprob", "transmat", "emissionprob", "symbols"}
    assert obj["type"] == "categorical" and obj["format_version"] == 1
    m2 = CategoricalHMM.load(p)
    np.testing.assert_array_equal(m2.transmat_, tm)  # exact: JSON floats round-trip
    np.testing.assert_array_equal(m2.emissionprob_, em)
    assert m2.symbols_ == list("abcd") and m2.n_features == 4 and m2.n_components == 3
    X = np.array([0, 3, 2, 1])
    np.testing.assert_array_equal(m2.score_sequences(X, [2, 2]), m.score_sequences(X, [2, 2]))
    m.save(p)
    assert "symbols" not in json.loads(p.read_text())


def test_dtype_float32_estimator():
    sp, tm, em = random_hmm(3, 4, seed=13)
    X = np.random.default_rng(13).integers(0, 4, 400).astype(np.uint8)
    out = {}
    for dt in (np.float32, np.float64):
        m = CategoricalHMM(3, init_params="", n_iter=3, dtype=dt, tol=-np.inf)
        m.startprob_, m.transmat_, m.emissionprob_ = sp, tm, em
        out[dt] = (m.score(X), m.predict_proba(X).dtype, m.fit(X).transmat_)
    assert isinstance(out[np.float32][0], float) and out[np.float32][1] == np.float32
    np.testing.assert_allclose(out[np.float32][0], out[np.float64][0], rtol=1e-4)
    np.testing.assert_allclose(out[np.float32][2], out[np.float64][2], rtol=1e-3, atol=1e-5)


# --------------------------------------------------------------------------- bad input
GOOD = (np.array([0.6, 0.4]), np.array([[0.7, 0.3], [0.2, 0.8]]),
        np.array([[0.5, 0.4, 0.1], [0.1, 0.3, 0.6]]))


@pytest.mark.parametrize("change, pattern", [
    (dict(startprob=[1.2, -0.2]), r"startprob must be non-negative, got -0.2 at 1"),
    (dict(startprob=[np.nan, 1.0]), r"startprob must be finite"),
    (dict(startprob=[0.5, 0.4]), r"startprob sums to 0.9, expected 1"),
    (dict(transmat=[[0.7, 0.3], [0.2, 0.7]]), r"transmat row 1 sums to 0.9, expected 1"),
    (dict(transmat=[[1.0, 0.0, 0.0]] * 2), r"transmat must have shape \(2, 2\)"),
    (dict(transmat=[[np.inf, 0.0], [0.5, 0.5]]), r"transmat must be finite"),
    (dict(emissionprob=[[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]]), r"emissionprob must have shape \(2, 2\)"),
    (dict(emissionprob=[[0.5, 0.5, 0.0], [0.5, 0.6, -0.1]]), r"emissionprob must be non-negative"),
    (dict(emissionprob=[[0.5, 0.5, 0.0], [0.5, 0.4, 0.0]]), r"emissionprob row 1 sums to 0.9"),
    (dict(startprob=[[1.0]]), r"startprob must be a non-empty 1-D array"),
])
def test_bad_parameters(change, pattern):
    args = dict(zip(("startprob", "transmat", "emissionprob"), GOOD))
    args.update(change)
    with pytest.raises(ValueError, match=pattern):
        score_sequences([0, 1], None, **args)


@pytest.mark.parametrize("X, lengths, err, pattern", [
    ([0, 3], None, ValueError, r"X holds symbol 3 but the model emits only symbols 0..2"),
    ([0, -1], None, ValueError, r"X holds a negative symbol -1"),
    ([0.0, 1.0], None, TypeError, r"X must hold integer symbols, got float64 \(use X.astype\(int\)\)"),
    ([0.0, 1.0], None, ValueError, r"X must hold integer symbols"),
    (np.array(["a", "b"]), None, ValueError, r"X must hold integer symbols, got <U1"),
    (np.zeros((2, 2), int), None, ValueError, r"X must have shape \(n_samples,\) or \(n_samples, 1\)"),
    ([0, 1, 2], [2, -1, 2], ValueError, r"lengths must be non-negative, got lengths\[1\] = -1"),
    ([0, 1, 2], [2, 2], ValueError, r"lengths sum to 4 but X holds 3 symbols"),
    ([0, 1, 2], [[3]], ValueError, r"lengths must be 1-D"),
    ([0, 1, 2], [1.5, 1.5], ValueError, r"lengths must hold integers"),
])
def test_bad_symbols_and_lengths(X, lengths, err, pattern):
    with pytest.raises(err, match=pattern):
        score_sequences(X, lengths, *GOOD)
    m = CategoricalHMM(2, init_params="")
    m.startprob_, m.transmat_, m.emissionprob_ = GOOD
    with pytest.raises(err, match=pattern):
        m.decode(X, lengths)


def test_estimator_errors(tmp_path):
    m = CategoricalHMM(2)
    with pytest.raises(NotFittedError, match="call fit"):
        m.score([0, 1])
    m.startprob_, m.transmat_, m.emissionprob_ = GOOD
    m.init_params = ""
    with pytest.raises(ValueError, match="transmat_ row 0 sums to 1.1"):
        m.transmat_ = np.array([[0.8, 0.3], [0.2, 0.8]])
        m.score([0])
    m.transmat_ = GOOD[1]
    with pytest.raises(ValueError, match="algorithm must be 'viterbi' or 'map', got 'best'"):
        m.decode([0], algorithm="best")
    with pytest.raises(ValueError, match=r"emissionprob_ must have shape \(2, 3\)"):
        m.emissionprob_ = np.array([[0.5, 0.5], [0.5, 0.5]])
        m.score([0])
    m.emissionprob_ = GOOD[2]
    with pytest.raises(ValueError, match="n_samples must be a positive int"):
        m.sample(0)
    with pytest.raises(ValueError, match="currstate must lie in"):
        m.sample(3, currstate=5)
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        CategoricalHMM(2, dtype=np.int32, init_params="").fit([0, 1])
    with pytest.raises(ValueError, match="n_components must be a positive int"):
        CategoricalHMM(0).fit([0, 1])
    with pytest.raises(ValueError, match="X holds symbol 5 but the model emits only symbols 0..2"):
        CategoricalHMM(2, n_features=3).fit([0, 5])
    with pytest.raises(ValueError, match="random_state must be"):
        CategoricalHMM(2, random_state="x").fit([0, 1])
    with pytest.raises(ValueError, match="symbols must name the 3 emission columns"):
        m.save(tmp_path / "x.json", symbols=["a"])
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(dict(startprob=[1.0], transmat=[[1.0]])))
    with pytest.raises(ValueError, match="missing key\\(s\\) emissionprob"):
        CategoricalHMM.load(p)
    p.write_text(json.dumps(dict(startprob=[0.5, 0.5], transmat=[[0.7, 0.3], [0.2, 0.7]],
                                 emissionprob=[[1.0], [1.0]])))
    with pytest.raises(ValueError, match="transmat row 1 sums to 0.9"):
        CategoricalHMM.load(p)
    p.write_text("[1]")
    with pytest.raises(ValueError, match="expected a JSON object"):
        CategoricalHMM.load(p)
    with pytest.raises(ValueError, match="backend 'fortran' is unknown"):
        score_sequences([0], None, *GOOD, backend="fortran")


def test_top_level_export():
    assert fasthw6.CategoricalHMM is CategoricalHMM


@pytest.mark.parametrize("dt", [np.uint8, np.int32, np.int64])
def test_symbol_range_kernel_on_large_batches(backend, dt):
    """Above 65536 symbols the range check is one compiled pass over chunks; a bad symbol in any
    chunk, the first or last position included, is still found."""
    from fasthw6.hmm._checks import _as_symbols

    rng = np.random.default_rng(0)
    X = rng.integers(0, 5, 200_003).astype(dt)
    x, hi = _as_symbols(X, 5, backend=backend)
    assert hi == X.max()
    assert np.shares_memory(x, X) == (dt != np.int32)  # read in place; int32 widened to int64
    for pos in (0, 99_999, 200_002):
        Y = X.copy()
        Y[pos] = 9
        with pytest.raises(ValueError, match="holds symbol 9 but the model emits only symbols 0..4"):
            _as_symbols(Y, 5, backend=backend)
        if np.issubdtype(dt, np.signedinteger):
            Y[pos] = -3
            with pytest.raises(ValueError, match="negative symbol -3"):
                _as_symbols(Y, 5, backend=backend)


def _bad_symbols(X, lengths, M):
    """(position, batch with one bad symbol there, the error it must raise, the kernels' view
    of that batch) for a bad symbol at the first and last position, in a lane of a full
    block, near the end of the longest sequence, at the start of the sequence 150 (the partial
    last block), each value M, the dtype's largest and (signed dtypes) -1."""
    off = np.concatenate([[0], np.cumsum(lengths)])
    longest = int(np.argmax(lengths))
    where = [0, X.size - 1, int(off[5]) + 2, int(off[longest + 1]) - 3, int(off[150])]
    values = [M, int(np.iinfo(X.dtype).max)]
    values += [-1] if np.issubdtype(X.dtype, np.signedinteger) else []
    for pos in where:
        for v in values:
            Y = X.copy()
            Y[pos] = v
            pattern = "negative symbol -1" if v < 0 else f"holds symbol {v} but the model emits"
            # the kernel's view of the symbols (as _checks._as_symbols makes it)
            x = Y.view(np.uint8) if Y.itemsize == 1 else Y.astype(np.int64)
            yield pos, Y, pattern, x


@pytest.mark.parametrize("n", [3, 10])  # the per-N lockstep lanes and the GEMM lanes
@pytest.mark.parametrize("dt", [np.uint8, np.int8, np.int16, np.uint16, np.int32, np.uint32,
                                np.int64, np.uint64])
def test_scoring_kernel_checks_every_symbol(backend, dt, n):
    """Scoring skips the separate range pass: its kernel checks each block's symbols before
    scoring them.  A bad symbol anywhere -- first or last position, a lane of a full block, the
    tail a long sequence finishes alone, the partial last block, a sequence of length 1 -- must
    still raise the range error, and a clean batch must score as the checked path does."""
    from fasthw6._backend import get_kernel
    from fasthw6.hmm._checks import _kernel_operands

    rng = np.random.default_rng(7)
    M = 6
    sp, tm, em = random_hmm(n, M, seed=3)
    lengths = np.concatenate([rng.integers(1, 40, 150), [1, 300]])
    X = rng.integers(0, M, int(lengths.sum())).astype(dt)
    off = np.concatenate([[0], np.cumsum(lengths)])
    expect = score_sequences(X.astype(np.int64), lengths, sp, tm, em, backend="numpy")
    np.testing.assert_allclose(score_sequences(X, lengths, sp, tm, em, backend=backend), expect,
                               rtol=1e-12)
    order = np.argsort(lengths, kind="stable")
    for pos, Y, pattern, x in _bad_symbols(X, lengths, M):
        with pytest.raises(ValueError, match=pattern):
            score_sequences(Y, lengths, sp, tm, em, backend=backend)
        got = get_kernel("hmm", "forward_loglik", backend)(
            x, off.astype(np.int64), order, *_kernel_operands(sp, tm, em, np.float64),
            np.empty(lengths.size))
        assert got == pos


@pytest.mark.parametrize("n", [3, 50, 130])  # lockstep lanes, wide lanes, one at a time
@pytest.mark.parametrize("dt", [np.uint8, np.int8, np.int32, np.int64, np.uint64])
def test_viterbi_kernel_checks_every_symbol(backend, dt, n):
    """Decoding skips the separate range pass too: the Viterbi kernel checks each block's (or,
    above VIT_WIDE_MAX_N states, each sequence's) symbols before decoding them.  A bad symbol
    anywhere must raise the range error (``viterbi`` and ``CategoricalHMM.decode``), the kernel
    must return its position, and a clean batch must decode as int64 symbols do on the Cython
    kernel."""
    from fasthw6._backend import get_kernel

    rng = np.random.default_rng(11)
    M = 6
    sp, tm, em = random_hmm(n, M, seed=5)
    lengths = np.concatenate([rng.integers(1, 12, 150), [1, 60]])
    X = rng.integers(0, M, int(lengths.sum())).astype(dt)
    off = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    lp_ref, path_ref = viterbi(X.astype(np.int64), lengths, sp, tm, em, backend="cython")
    lp, path = viterbi(X, lengths, sp, tm, em, backend=backend)
    np.testing.assert_array_equal(path, path_ref)
    np.testing.assert_allclose(lp, lp_ref, rtol=1e-12)
    model = CategoricalHMM(n, init_params="", backend=backend)
    model.startprob_, model.transmat_, model.emissionprob_ = sp, tm, em
    np.testing.assert_array_equal(model.decode(X, lengths)[1], path_ref)
    with np.errstate(divide="ignore"):
        logs = np.log(sp), np.log(tm), np.ascontiguousarray(np.log(em).T)
    bp = np.empty((1, int(lengths.max()), n), np.int8 if n <= 127 else np.int16)
    for pos, Y, pattern, x in _bad_symbols(X, lengths, M):
        with pytest.raises(ValueError, match=pattern):
            viterbi(Y, lengths, sp, tm, em, backend=backend)
        with pytest.raises(ValueError, match=pattern):
            model.decode(Y, lengths)
        got = get_kernel("hmm", "viterbi", backend)(
            x, off, *logs, bp, np.empty(X.size, np.int64), np.empty(lengths.size), M)
        assert got == pos


def test_scoring_range_check_with_wrapping_dtypes():
    """int8 symbols are read as unsigned by the kernels; with more than 128 emission columns a
    negative would wrap into range, so those keep the separate check."""
    M = 200
    sp, tm, em = random_hmm(2, M, seed=4)
    X = np.array([1, 2, -56, 3], np.int8)  # -56 wraps to 200 as uint8: out of range anyway
    with pytest.raises(ValueError, match="negative symbol -56"):
        score_sequences(X, None, sp, tm, em)
    X[2] = -100  # wraps to 156, inside [0, 200): only the separate check can catch it
    with pytest.raises(ValueError, match="negative symbol -100"):
        score_sequences(X, None, sp, tm, em)
    big = np.array([0, 1, 2**32 - 1], np.uint32)  # widened to int64, value kept
    with pytest.raises(ValueError, match=f"holds symbol {2**32 - 1} but"):
        score_sequences(big, None, sp, tm, em)
    huge = np.array([0, 1, 2**64 - 1], np.uint64)  # reads as -1 in the kernel's int64 view
    with pytest.raises(ValueError, match=f"holds symbol {2**64 - 1} but"):
        score_sequences(huge, None, sp, tm, em)


def test_backend_is_a_constructor_parameter():
    m = CategoricalHMM(2, n_features=3, backend="numpy", init_params="", random_state=0)
    assert m.get_params()["backend"] == "numpy"
    m.startprob_, m.transmat_ = np.array([0.5, 0.5]), np.array([[0.9, 0.1], [0.2, 0.8]])
    m.emissionprob_ = np.array([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7]])
    X = np.array([[0], [1], [2], [2]])
    ref = m.score(X)
    assert m.set_params(backend="cython" if "cython" in fasthw6.available_backends()
                        else "numpy").score(X) == pytest.approx(ref, rel=1e-12)
    with pytest.raises(ValueError, match="backend 'gpu' is unknown"):
        m.set_params(backend="gpu").score(X)
