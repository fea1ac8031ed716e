"""score_models / predict_model (issue 15): every sequence under many models in one pass, equal
to score_sequences per model on every backend; bad input; the CLI's multi-model score."""
import json

import numpy as np
import pytest

import fasthw6
from fasthw6 import CategoricalHMM, GaussianHMM
from fasthw6.hmm import predict_model, score_models, score_sequences
from fasthw6.hmm import multi as multi_mod

BACKENDS = fasthw6.available_backends()
COMPILED = [b for b in BACKENDS if b != "numpy"]


def _model(rng, n, m, zeros=False):
    sp = rng.dirichlet(np.ones(n))
    tm = rng.dirichlet(np.ones(n), n)
    em = rng.dirichlet(np.ones(m), n)
    if zeros:  # symbol m-1 impossible, state 0 never starts
        em[:, m - 1] = 0
        em /= em.sum(1, keepdims=True)
        if n > 1:
            sp[0] = 0
            sp /= sp.sum()
    return sp, tm, em


def _batch(rng, m, n_seq=45, max_len=40):
    lens = rng.integers(0, max_len, n_seq)
    lens[3] = 0
    lens[7] = 1
    X = rng.integers(0, m, int(lens.sum()))
    return X, lens


def _separate(models, X, lens, backend, dtype=None):
    return np.column_stack([score_sequences(X, lens, *mdl, backend=backend, dtype=dtype)
                            for mdl in models])


@pytest.mark.parametrize("route", ["rule", "kernel"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("K", [1, 3, 20])
def test_equals_score_sequences(backend, K, route, monkeypatch):
    """``route="kernel"``: every model through the many-model kernel (several sequence slots
    at K = 1 and 3, a partial second group at K = 20), which the API's rule would send model
    by model at those K; ``"rule"``: as the API chooses."""
    if route == "kernel":
        monkeypatch.setattr(multi_mod, "_kernel_models", lambda ops, backend: len(ops))
    rng = np.random.default_rng(K)
    M = 5
    models = [_model(rng, int(rng.integers(1, 9)), M, zeros=(k % 3 == 1)) for k in range(K)]
    X, lens = _batch(rng, M, n_seq=12 if backend == "numpy" else 45)
    X[:2] = M - 1  # the sequence holding these is impossible under the zero-emission models
    out = score_models(models, X, lens, backend=backend)
    ref = _separate(models, X, lens, "numba" if "numba" in BACKENDS else backend)
    assert out.shape == (len(lens), K) and out.dtype == np.float64
    assert np.all(out[lens == 0] == 0.0)
    assert np.isneginf(out).any() == np.isneginf(ref).any()
    assert np.array_equal(np.isneginf(out), np.isneginf(ref))
    fin = np.isfinite(ref)
    if backend == "numpy":
        np.testing.assert_allclose(out[fin], ref[fin], rtol=1e-12)
    else:  # the same operations per chain: bit for bit
        assert np.array_equal(out, ref)


def test_which_models_the_kernel_takes():
    """Whole groups of 16 models, and a group of at least MIN_GROUP; the rest model by model;
    none above 8 states."""
    def ops(K, n=8):
        return [(np.ones(n),)] * K
    W, low = multi_mod.MULTI_LANES, multi_mod.MIN_GROUP
    take = multi_mod._kernel_models
    assert take(ops(low - 1), "numba") == 0 and take(ops(low), "numba") == low
    assert take(ops(W), "numba") == W and take(ops(64), "numba") == 64
    assert take(ops(W + low - 1), "numba") == W and take(ops(W + low), "numba") == W + low
    assert take(ops(64, n=9), "numba") == 0 and take(ops(64), "cython") == 64


@pytest.mark.parametrize("route", ["rule", "kernel"])
def test_many_groups_and_estimators(route, monkeypatch):
    """More models than the kernel's lanes (several groups, a partial last one), estimators and
    triples mixed, uint8 symbols, a long sequence next to short ones (the tails)."""
    if route == "kernel":
        monkeypatch.setattr(multi_mod, "_kernel_models", lambda ops, backend: len(ops))
    rng = np.random.default_rng(1)
    M = 4
    triples = [_model(rng, 3, M) for _ in range(multi_mod.MULTI_LANES * 2 + 3)]
    est = CategoricalHMM(3, init_params="")
    est.startprob_, est.transmat_, est.emissionprob_ = triples[0]
    models = [est] + triples[1:]
    lens = np.array([5, 300, 7, 0, 9])
    X = rng.integers(0, M, lens.sum()).astype(np.uint8)
    # Cython only: numba's uint8 variants would compile for this test alone (a minute of CI);
    # numba and Cython agree bit for bit on the int64 path (test_equals_score_sequences)
    backend = "cython" if "cython" in BACKENDS else "numpy"
    ref = _separate(triples, X, lens, backend)
    assert np.array_equal(score_models(models, X, lens, backend=backend), ref)


def test_large_n_models():
    rng = np.random.default_rng(2)
    models = [_model(rng, 12, 3), _model(rng, 2, 3)]
    X, lens = _batch(rng, 3, n_seq=10)
    out = score_models(models, X, lens)
    np.testing.assert_allclose(out, _separate(models, X, lens, None), rtol=1e-12)


@pytest.mark.parametrize("backend", [b for b in COMPILED if b == "cython"])
def test_float32(backend):  # Cython only, as above: no float32 numba compile for this test
    rng = np.random.default_rng(3)
    models = [tuple(a.astype(np.float32) for a in _model(rng, 4, 6)) for _ in range(5)]
    X, lens = _batch(rng, 6, n_seq=20)
    out = score_models(models, X, lens, backend="cython")
    assert out.dtype == np.float64
    assert np.array_equal(out, _separate(models, X, lens, "cython"))


def test_predict_model():
    a = ([1.0], [[1.0]], [[0.5, 0.5, 0.0]])
    b = ([1.0], [[1.0]], [[0.9, 0.1, 0.0]])
    c = ([1.0], [[1.0]], [[0.9, 0.1, 0.0]])  # c ties with b: b wins
    X = [0, 0, 1, 2]
    assert predict_model([a, b, c], X, [2, 1, 1, 0]).tolist() == [1, 0, -1, 0]
    assert predict_model([a, b], X, [2, 1, 1, 0]).dtype == np.int64
    rng = np.random.default_rng(4)
    models = [_model(rng, 3, 4) for _ in range(6)]
    X, lens = _batch(rng, 4)
    assert np.array_equal(predict_model(models, X, lens),
                          np.argmax(_separate(models, X, lens, None), axis=1))


def test_bad_input():
    rng = np.random.default_rng(5)
    a, b = _model(rng, 2, 3), _model(rng, 2, 4)
    with pytest.raises(ValueError, match="alphabet size: model 0 emits 3 symbols, model 1 emits 4"):
        score_models([a, b], [0, 1], None)
    with pytest.raises(ValueError, match="models is empty"):
        score_models([], [0, 1], None)
    with pytest.raises(ValueError, match="symbol 7 at position 4, outside 0..2"):
        score_models([a, a], [0, 1, 2, 0, 7, 1], [3, 3])
    with pytest.raises(ValueError, match="symbol -1 at position 1"):
        score_models([a, a], [0, -1], None)
    bad = (a[0], a[1], np.full((2, 3), 0.5))
    with pytest.raises(ValueError, match="emissionprob of model 1 row 0"):
        score_models([a, bad], [0], None)
    with pytest.raises(TypeError, match="model 1 must be"):
        score_models([a, "b"], [0], None)
    g = GaussianHMM(2)
    with pytest.raises(ValueError, match="mix symbol and frame models"):
        score_models([a, g], [0], None)


def test_frame_models_loop():
    rng = np.random.default_rng(6)
    models = []
    for _ in range(2):
        g = GaussianHMM(2, covariance_type="diag", init_params="")
        g.startprob_, g.transmat_ = np.array([0.6, 0.4]), np.array([[0.7, 0.3], [0.2, 0.8]])
        g.means_ = rng.normal(size=(2, 3))
        g.covars_ = np.ones((2, 3))
        models.append(g)
    X = rng.normal(size=(10, 3))
    out = score_models(models, X, [4, 6])
    assert np.array_equal(out, np.column_stack([m.score_sequences(X, [4, 6]) for m in models]))


def test_kernel_constants_agree():
    from fasthw6.hmm._numba import multi as nb

    assert nb.MULTI_LANES == multi_mod.MULTI_LANES


def _save(path, mdl):
    sp, tm, em = mdl
    path.write_text(json.dumps(dict(type="categorical", startprob=sp.tolist(),
                                    transmat=tm.tolist(), emissionprob=em.tolist())))
    return str(path)


def test_cli_multi_model(tmp_path):
    from fasthw6.cli import main

    rng = np.random.default_rng(7)
    models = [_model(rng, 2, 3), _model(rng, 3, 3)]
    models[1][2][:, 2] = [0.0, 0.0, 0.0]
    models[1][2][:] = models[1][2] / models[1][2].sum(1, keepdims=True)
    pa, pb = _save(tmp_path / "alpha.json", models[0]), _save(tmp_path / "beta.json", models[1])
    seqs = tmp_path / "s.txt"
    seqs.write_text("0 1 1\n2 2\n0\n1 0 0 1\n")
    out = tmp_path / "o.csv"
    assert main(["score", "-m", pa, "-m", pb, str(seqs), "-o", str(out), "--best"]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "index,length,alpha,beta,best"
    X = np.array([0, 1, 1, 2, 2, 0, 1, 0, 0, 1])
    lens = [3, 2, 1, 4]
    ref = _separate(models, X, lens, None)
    for i, line in enumerate(lines[1:]):
        f = line.split(",")
        assert f[:2] == [str(i), str(lens[i])]
        assert [float(v) for v in f[2:4]] == ref[i].tolist()
        assert f[4] == ["alpha", "beta"][int(np.argmax(ref[i]))]
    # one model: the single-model format, unchanged
    one = tmp_path / "one.csv"
    assert main(["score", "-m", pa, str(seqs), "-o", str(one)]) == 0
    assert one.read_text().splitlines()[0] == "index,length,log_likelihood"
    # models that disagree on the alphabet
    pc = _save(tmp_path / "gamma.json", _model(rng, 2, 4))
    assert main(["score", "-m", pa, "-m", pc, str(seqs), "-o", str(out)]) == 2
