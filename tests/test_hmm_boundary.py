"""Boundary checks of the HMM entry points that guard the kernels (which check nothing): lengths
whose int64 sum wraps, lengths given in odd types, symbols in non-native byte order."""
from __future__ import annotations

import numpy as np
import pytest

from fasthw6 import distributed as D
from fasthw6.hmm import CategoricalHMM, em_statistics, posteriors, score_sequences, viterbi
from fasthw6.seqio import read_sequences

BACKENDS = ["numba", "cython", "numpy"]
SP, TM = [0.6, 0.4], [[0.7, 0.3], [0.2, 0.8]]
EM = [[0.5, 0.4, 0.1], [0.1, 0.3, 0.6]]
X3 = np.array([0, 1, 2])
# each length fits int64, their int64 sum wraps to 3 == len(X3): offsets far outside X
WRAP = np.array([2**62, 2**62, 2**62, 2**62 + 3], np.int64)
WRAP_SUM = r"lengths sum to 18446744073709551619 but X holds 3 symbols"
FUNCS = [score_sequences, posteriors, em_statistics, viterbi]


def model():
    m = CategoricalHMM(2, init_params="")
    m.startprob_, m.transmat_, m.emissionprob_ = np.array(SP), np.array(TM), np.array(EM)
    return m


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("func", FUNCS, ids=lambda f: f.__name__)
def test_wrapping_lengths_are_refused(func, backend):
    kw = {} if func is viterbi else {"dtype": np.float64}
    with pytest.raises(ValueError, match=WRAP_SUM):
        func(X3, WRAP, SP, TM, EM, backend=backend, **kw)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("method", ["score", "score_sequences", "score_samples", "predict_proba",
                                    "decode", "predict", "fit"])
def test_wrapping_lengths_are_refused_by_the_estimator(method, backend):
    m = model()
    m.backend = backend
    with pytest.raises(ValueError, match=WRAP_SUM):
        getattr(m, method)(X3, WRAP)


def test_wrapping_lengths_are_refused_by_distributed():
    with pytest.raises(ValueError, match=WRAP_SUM):
        D.split_partitions(X3, WRAP, 2)
    with pytest.raises(ValueError, match=r"sequences\[0\]: lengths sum to 18446744073709551619"):
        D._partitions([(X3, WRAP)])


def test_wrapping_lengths_are_refused_by_the_npz_reader(tmp_path):
    p = tmp_path / "wrap.npz"
    np.savez(p, X=X3, lengths=WRAP)
    with pytest.raises(ValueError, match=WRAP_SUM):
        read_sequences(str(p))


@pytest.mark.parametrize("lengths, pattern", [
    (np.array([2**64 - 1, 4], np.uint64), r"lengths sum to 18446744073709551619 but X holds 3"),
    ([np.inf], r"lengths must hold finite whole numbers, got lengths\[0\] = inf"),
    ([1.0, np.nan], r"lengths must hold finite whole numbers, got lengths\[1\] = nan"),
    ([1e300], r"lengths sum to 1e\+300 but X holds 3 symbols"),
    ([1.5, 1.5], r"lengths must hold integers, got float64 with lengths\[0\] = 1.5"),
    ([-1.0, 4.0], r"lengths must be non-negative, got lengths\[0\] = -1.0"),
    ([True, True, True], r"lengths must hold integers, got bool"),
    (["1", "2"], r"lengths must hold integers"),
])
def test_lengths_messages_name_the_value_given(lengths, pattern):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "invalid value encountered in cast"
        with pytest.raises(ValueError, match=pattern):
            score_sequences(X3, lengths, SP, TM, EM)


def test_whole_float_lengths_still_accepted():
    np.testing.assert_array_equal(score_sequences(X3, [1.0, 2.0], SP, TM, EM),
                                  score_sequences(X3, [1, 2], SP, TM, EM))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dt", [">i2", ">i4", ">i8", ">u2", ">u4", ">u8"])
def test_symbols_in_non_native_byte_order(dt, backend):
    X = np.array([0, 1, 2, 2, 0], dtype=dt)
    native = X.astype(np.dtype(dt).newbyteorder("="))
    kw = dict(backend=backend)
    np.testing.assert_array_equal(score_sequences(X, [2, 3], SP, TM, EM, **kw),
                                  score_sequences(native, [2, 3], SP, TM, EM, **kw))
    bad = np.array([0, 3], dtype=dt)
    with pytest.raises(ValueError, match="X holds symbol 3"):
        score_sequences(bad, None, SP, TM, EM, **kw)
    if backend != "numpy" and dt != ">i8":
        # the conversion is made once, at the boundary, for every entry point: the compiled
        # backends run them all for one dtype (each symbol dtype compiles its own kernels, 18-48 s
        # per dtype from a cold cache), the reference for all six
        return
    for f in (posteriors, viterbi):
        for a, b in zip(f(X, [2, 3], SP, TM, EM, **kw), f(native, [2, 3], SP, TM, EM, **kw)):
            np.testing.assert_array_equal(a, b)
    st, st0 = em_statistics(X, None, SP, TM, EM, **kw), em_statistics(native, None, SP, TM, EM, **kw)
    for k in st0:
        np.testing.assert_array_equal(st[k], st0[k])
    m = model()
    m.backend = backend
    np.testing.assert_array_equal(m.decode(X)[1], m.decode(native)[1])
    fits = [CategoricalHMM(2, random_state=0, n_iter=3) for _ in range(2)]
    for f, x in zip(fits, (X, native)):
        f.backend = backend
        f.fit(np.tile(x, 10))
    np.testing.assert_array_equal(fits[0].emissionprob_, fits[1].emissionprob_)


ONE = dict(startprob=[1.0], transmat=[[1.0]], emissionprob=[[0.5, 0.5]])


@pytest.mark.parametrize("symbols, pattern", [
    ("ab", r"symbols must be a list of strings, got str"),
    (5, r"symbols must be a list of strings, got int"),
    (["a"], r"symbols must name the 2 emission columns, got 1 names"),
    (["a", "a"], r"symbols must be distinct, 'a' appears twice"),
    (["", "c"], r"symbols\[0\] is empty"),
    (["a b", "c"], r"symbols\[0\] = 'a b' contains whitespace"),
    (["a", "c\n"], r"symbols\[1\] = 'c\\n' contains whitespace"),
    ([0, 1], r"symbols\[0\] must be a string, got 0"),
])
def test_load_validates_symbols(tmp_path, symbols, pattern):
    import json

    p = tmp_path / "m.json"
    p.write_text(json.dumps(dict(ONE, symbols=symbols)))
    with pytest.raises(ValueError, match=pattern):
        CategoricalHMM.load(p)


@pytest.mark.parametrize("symbols, pattern", [
    (["", "c"], r"symbols\[0\] is empty"),
    (["a b", "c"], r"symbols\[0\] = 'a b' contains whitespace"),
    (["a", "a"], r"symbols must be distinct"),
    (["a"], r"symbols must name the 2 emission columns, got 1 names"),
])
def test_save_validates_symbols(tmp_path, symbols, pattern):
    import json

    p = tmp_path / "good.json"
    p.write_text(json.dumps(dict(ONE, symbols=["x", "y"])))
    m = CategoricalHMM.load(p)
    assert m.symbols_ == ["x", "y"]
    with pytest.raises(ValueError, match=pattern):
        m.save(tmp_path / "o.json", symbols=symbols)
    assert not (tmp_path / "o.json").exists()


X6 = np.array([0, 1, 2, 2, 0, 1])


@pytest.mark.parametrize("kwargs, X, lengths, pattern", [
    ({}, np.array([], int), None, r"X must not be empty"),
    ({}, np.array([], int), [0, 0], r"X must not be empty"),
    (dict(transmat_prior=np.ones(3)), X6, None,
     r"transmat_prior must be a scalar or an array broadcastable to \(2, 2\), got shape \(3,\)"),
    (dict(transmat_prior=float("nan")), X6, None, r"transmat_prior must be finite, got nan"),
    (dict(startprob_prior=[1.0, np.inf]), X6, None, r"startprob_prior must be finite, found inf"),
    (dict(emissionprob_prior=np.ones((2, 4))), X6, None,
     r"emissionprob_prior must be a scalar or an array broadcastable to \(2, 3\)"),
    (dict(startprob_prior="a"), X6, None, r"startprob_prior must be a number or an array"),
    (dict(n_features=-1), X6, None, r"n_features must be a positive int or None, got -1"),
    (dict(n_features="3"), X6, None, r"n_features must be a positive int or None, got '3'"),
    (dict(n_features=3.0), X6, None, r"n_features must be a positive int or None, got 3.0"),
    (dict(n_iter=2.5), X6, None, r"n_iter must be an int >= 0, got 2.5"),
    (dict(n_iter=-1), X6, None, r"n_iter must be an int >= 0, got -1"),
    (dict(tol=float("nan")), X6, None, r"tol must be a real number, got nan"),
])
def test_constructor_values_are_checked_by_fit(kwargs, X, lengths, pattern):
    m = CategoricalHMM(2, random_state=0, **kwargs)
    with pytest.raises(ValueError, match=pattern):
        m.fit(X, lengths)


def test_n_features_checked_when_scoring():
    m = model()
    m.n_features = -1
    with pytest.raises(ValueError, match=r"n_features must be a positive int or None, got -1"):
        m.score(X3)


@pytest.mark.parametrize("currstate", [0.7, "a", 2, -1, True])
def test_sample_currstate_checked(currstate):
    with pytest.raises(ValueError, match=r"currstate must lie in \[0, 2\) \(an int, a state index\)"):
        model().sample(3, currstate=currstate)


def test_priors_broadcast_and_sample_currstate_numpy_int_still_work():
    m = CategoricalHMM(2, random_state=0, n_iter=2, transmat_prior=np.full((2, 2), 2.0),
                       startprob_prior=[1, 2], emissionprob_prior=np.ones((1, 3)))
    m.fit(np.tile(X6, 5))
    assert np.allclose(m.transmat_.sum(axis=1), 1)
    assert model().sample(3, currstate=np.int64(1), random_state=0)[1][0] == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_probability_underflow_is_refused(backend):
    em = np.array([[1 - 1e-50, 1e-50, 0.0], [1 - 1e-50, 1e-50, 0.0]])
    m = CategoricalHMM(2, init_params="", dtype=np.float32)
    m.backend = backend
    m.startprob_, m.transmat_, m.emissionprob_ = np.array(SP), np.array(TM), em
    pattern = r"emissionprob\[0, 1\] = 1e-50 underflows to 0 in float32, .* use dtype=np.float64"
    with pytest.raises(ValueError, match=pattern):
        m.score([0, 1, 0])
    for f in (score_sequences, posteriors, em_statistics):
        with pytest.raises(ValueError, match=pattern):
            f([0, 1, 0], None, SP, TM, em, dtype=np.float32, backend=backend)
    with pytest.raises(ValueError, match=r"transmat\[0, 1\] = 1e-60 underflows"):
        score_sequences([0], None, SP, [[1 - 1e-60, 1e-60], [0.2, 0.8]], EM, dtype=np.float32)
    # float64 keeps it finite; float32 subnormals that survive the cast are accepted
    m.dtype = np.float64
    assert np.isfinite(m.score([0, 1, 0]))
    ok = np.array([[1 - 1e-40, 1e-40, 0.0], [0.5, 0.5, 0.0]])
    assert np.isfinite(score_sequences([0, 1], None, SP, TM, ok, dtype=np.float32, backend=backend))


def test_float32_fit_stores_probabilities_that_leave_float32_as_zero():
    # state 0 only ever emits symbol 0: its tiny start value for symbol 1 (a float32 subnormal)
    # shrinks below float32's range in the first M-step; stored as is, the next E-step's operand
    # check refused the model the fit itself had made
    rng = np.random.default_rng(0)
    st = np.zeros(2000, int)
    for t in range(1, st.size):
        st[t] = st[t - 1] if rng.random() < 0.95 else 1 - st[t - 1]
    X = np.where(st == 0, 0, rng.choice([1, 2], st.size))
    m = CategoricalHMM(2, init_params="", dtype=np.float32, n_iter=5, tol=-np.inf)
    m.startprob_, m.transmat_ = np.array([0.5, 0.5]), np.array([[0.9, 0.1], [0.1, 0.9]])
    m.emissionprob_ = np.array([[1 - 2e-45, 2e-45, 0.0], [0.05, 0.45, 0.5]])
    m.fit(X)
    for a in (m.startprob_, m.transmat_, m.emissionprob_):
        assert ((a == 0) | (a.astype(np.float32) != 0)).all()
    assert m.emissionprob_[0, 1] == 0.0
    assert np.isfinite(m.score(X))
