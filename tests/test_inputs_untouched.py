"""No public function modifies an argument it does not document as an output (issue 19).

Every case hands a public function arrays it can take without a copy (C-contiguous, of the
working dtype: the arrays the kernels then see themselves), and checks afterwards that each of
them, and every other argument, still holds what it held before.  Outputs documented as written
in place (batch norm's running statistics, an optimizer's parameters, a layer's gradient
buffers) are not among the checked arguments.  Kernel cases run on every backend.
"""
from __future__ import annotations

import copy
import io

import numpy as np
import pytest

import fasthw6
from fasthw6 import nn, vae
from fasthw6.hmm import (CategoricalHMM, GaussianHMM, GMMHMM, MultinomialHMM, PoissonHMM,
                         em_statistics, frames_statistics, posteriors, posteriors_frames,
                         score_frames, score_sequences, viterbi, viterbi_frames)
from fasthw6.seqio import format_sequences, iter_chunks, read_sequences


def _rng(seed=0):
    return np.random.default_rng(seed)


def _normal(*shape, dtype=np.float64, seed=0):
    return _rng(seed).standard_normal(shape).astype(dtype)


def _same(a, b, where="argument"):
    """a (after the call) equals b (the copy taken before): values, dtype and shape."""
    if isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray), f"{where} is no longer an ndarray"
        assert a.dtype == b.dtype and a.shape == b.shape, f"{where} changed dtype or shape"
        np.testing.assert_array_equal(a, b, err_msg=f"{where} was modified in place")
    elif isinstance(b, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), f"{where} changed length"
        for i, (u, v) in enumerate(zip(a, b)):
            _same(u, v, f"{where}[{i}]")
    elif isinstance(b, dict):
        assert a.keys() == b.keys(), f"{where} changed keys"
        for k in b:
            _same(a[k], b[k], f"{where}[{k!r}]")
    else:
        assert a == b, f"{where} changed: {b!r} -> {a!r}"


def _check(args: dict, call):
    """Run ``call(**args)`` and assert that no argument changed."""
    before = copy.deepcopy(args)
    call(**args)
    for name in args:
        _same(args[name], before[name], name)


# --------------------------------------------------------------------------- kernels (backend=)
def _hmm_params(n=3, m=4, seed=1):
    rng = _rng(seed)
    return (rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(n), size=n),
            rng.dirichlet(np.ones(m), size=n))


def _symbols(m=4, lengths=(7, 1, 12, 5), dtype=np.int64, seed=2):
    L = np.asarray(lengths, dtype=np.int64)
    return _rng(seed).integers(0, m, int(L.sum())).astype(dtype), L


def _hmm_args(dtype=np.int64):
    X, L = _symbols(dtype=dtype)
    sp, tm, em = _hmm_params()
    return dict(X=X, lengths=L, startprob=sp, transmat=tm, emissionprob=em)


def _frames_args(dtype=np.float64):
    X, L = _symbols()
    sp, tm, em = _hmm_params()
    flp = np.log(em[:, X].T).astype(dtype)
    flp[3, 1] = -np.inf
    return dict(framelogprob=flp, lengths=L, startprob=sp, transmat=tm)


def _svm_fit(X, y, b):
    return fasthw6.HardMarginSVC(backend=b).fit(X, y)


def _svm_predict(X, Xtest, y, b):
    clf = fasthw6.HardMarginSVC(backend=b).fit(X, y)
    clf.predict(Xtest)
    clf.decision_function(Xtest)


def _bn_backward(x, dy, gamma, beta, b):
    rm, rv = np.zeros(x.shape[1], x.dtype), np.ones(x.shape[1], x.dtype)
    _, cache = nn.batchnorm_forward(x, gamma, beta, 1e-5, True, rm, rv, backend=b)
    nn.batchnorm_backward(dy, cache, backend=b)


def _bn_eval(x, gamma, beta, b):
    rm, rv = np.full(x.shape[1], 0.5, x.dtype), np.full(x.shape[1], 2.0, x.dtype)
    y, cache = nn.batchnorm_forward(x, gamma, beta, 1e-5, False, rm, rv, backend=b)
    nn.batchnorm_backward(np.ones_like(y), cache, backend=b)


def _hmm_model(cls, X, lengths, b, **params):
    """fit from parameters the caller set (init_params=""), then every query."""
    m = cls(n_components=params.pop("n", 2), init_params="", n_iter=3, backend=b, **params.pop("kw", {}))
    for k, v in params.items():
        setattr(m, k, v)
    m.fit(X, lengths)
    m.score(X, lengths)
    m.score_samples(X, lengths)
    m.predict(X, lengths)
    m.predict_proba(X, lengths)
    m.decode(X, lengths)
    m.score_sequences(X, lengths)


def _gauss_args():
    X = _normal(30, 2, seed=4)
    X[15:] += 3.0
    return dict(X=X, lengths=np.array([10, 20]), startprob_=np.array([0.6, 0.4]),
                transmat_=np.array([[0.8, 0.2], [0.3, 0.7]]),
                means_=np.array([[0.0, 0.0], [3.0, 3.0]]), covars_=np.ones((2, 2)))


KERNEL_CASES = [
    pytest.param(lambda: dict(x=_normal(2, 3, 9, 8), weight=_normal(4, 3, 3, 2, seed=1),
                              bias=_normal(4, seed=2)),
                 lambda x, weight, bias, b: fasthw6.conv2d(x, weight, bias, stride=2, padding=1,
                                                           activation="relu", backend=b),
                 id="conv2d"),
    pytest.param(lambda: dict(x=_normal(9, 8, dtype=np.float32), weight=_normal(3, 3, dtype=np.float32)),
                 lambda x, weight, b: fasthw6.conv2d(x, weight, backend=b), id="conv2d-2d-f32"),
    pytest.param(lambda: dict(x=_normal(2, 3, 5, 4), weight=_normal(3, 2, 3, 3, seed=1),
                              bias=_normal(2, seed=2)),
                 lambda x, weight, bias, b: fasthw6.conv_transpose2d(
                     x, weight, bias, stride=2, padding=1, output_padding=1, backend=b),
                 id="conv_transpose2d"),
    pytest.param(lambda: dict(x=_normal(2, 8, 5, 4), weight=_normal(8, 8, 3, 3, seed=1),
                              bias=_normal(8, seed=2)),  # 64 channel pairs: the GEMM path
                 lambda x, weight, bias, b: fasthw6.conv_transpose2d(
                     x, weight, bias, stride=2, activation="relu", backend=b),
                 id="conv_transpose2d-gemm"),
    pytest.param(lambda: dict(x=_normal(4, 5), kernel=_normal(3, 3, seed=1)),
                 lambda x, kernel, b: fasthw6.subpixel_conv2d(x, kernel, stride=2, backend=b),
                 id="subpixel_conv2d"),
    pytest.param(lambda: dict(x=_normal(16, 600), gamma=_normal(600, seed=1),
                              beta=_normal(600, seed=2)),  # two column slices
                 lambda x, gamma, beta, b: nn.batchnorm_forward(
                     x, gamma, beta, 1e-5, True, np.zeros(600), np.ones(600), backend=b),
                 id="batchnorm_forward-2d"),
    pytest.param(lambda: dict(x=_normal(4, 3, 5, 6, dtype=np.float32),
                              gamma=_normal(3, seed=1), beta=_normal(3, seed=2)),
                 lambda x, gamma, beta, b: nn.batchnorm_forward(x, gamma, beta, backend=b),
                 id="batchnorm_forward-4d-f32"),
    pytest.param(lambda: dict(x=_normal(16, 600), dy=_normal(16, 600, seed=3),
                              gamma=_normal(600, seed=1), beta=_normal(600, seed=2)),
                 _bn_backward, id="batchnorm_backward-2d"),
    pytest.param(lambda: dict(x=_normal(4, 3, 5, 6), dy=_normal(4, 3, 5, 6, seed=3),
                              gamma=_normal(3, seed=1), beta=_normal(3, seed=2)),
                 _bn_backward, id="batchnorm_backward-4d"),
    pytest.param(lambda: dict(x=_normal(4, 3, 5, 6), gamma=_normal(3, seed=1),
                              beta=_normal(3, seed=2)),
                 _bn_eval, id="batchnorm-eval"),
    pytest.param(lambda: dict(x=_normal(6, 3), gamma=_normal(3, seed=1), beta=_normal(3, seed=2),
                              dy=_normal(6, 3, seed=3)),
                 lambda x, gamma, beta, dy, b: nn.batchnorm_forward_backward(x, gamma, beta, dy,
                                                                             backend=b),
                 id="batchnorm_forward_backward"),
    pytest.param(lambda: dict(mu=_normal(5, 3), logvar=_normal(5, 3, seed=1)),
                 lambda mu, logvar, b: vae.kl_divergence(mu, logvar, backend=b), id="kl_divergence"),
    pytest.param(lambda: dict(mu=_normal(5, 3), sigma=np.abs(_normal(5, 3, seed=1)) + 0.1,
                              dkl=np.arange(5.0)),
                 lambda mu, sigma, dkl, b: vae.kl_divergence_grad(mu, sigma=sigma, dkl=dkl, backend=b),
                 id="kl_divergence_grad-sigma"),
    pytest.param(lambda: dict(mu=_normal(5, 3, dtype=np.float32),
                              logvar=_normal(5, 3, seed=1, dtype=np.float32),
                              eps=_normal(5, 3, seed=2, dtype=np.float32)),
                 lambda mu, logvar, eps, b: vae.latent_forward(mu, logvar, eps, backend=b),
                 id="latent_forward-f32"),
    pytest.param(lambda: dict(dz=_normal(5, 3, seed=3), dkl=np.arange(5.0), mu=_normal(5, 3),
                              logvar=_normal(5, 3, seed=1), eps=_normal(5, 3, seed=2)),
                 lambda dz, dkl, mu, logvar, eps, b: vae.latent_backward(dz, dkl, mu, logvar, eps,
                                                                         backend=b),
                 id="latent_backward"),
    pytest.param(lambda: dict(mu=_normal(3), logvar=_normal(3, seed=1), eps=_normal(3, seed=2)),
                 lambda mu, logvar, eps, b: vae.reparameterize(mu, logvar, eps, backend=b),
                 id="reparameterize-1d"),
    pytest.param(lambda: dict(dz=_normal(5, 3, seed=3), mu=_normal(5, 3),
                              sigma=np.abs(_normal(5, 3, seed=1)) + 0.1, eps=_normal(5, 3, seed=2)),
                 lambda dz, mu, sigma, eps, b: vae.reparameterize_backward(dz, mu, sigma=sigma,
                                                                           eps=eps, backend=b),
                 id="reparameterize_backward-sigma"),
    # one feature: X.T is contiguous already, the case where fit scaled the caller's X
    pytest.param(lambda: dict(X=np.array([[1000.0], [2000.0], [-1000.0], [-3000.0]]),
                              y=np.array([1, 1, 0, 0])),
                 _svm_fit, id="svm-fit-1feature"),
    pytest.param(lambda: dict(X=np.array([[1e-3, 1000.0], [2e-3, 1500.0], [-1e-3, -900.0],
                                          [-3e-3, -2000.0], [5e-4, 800.0]]),
                              y=np.array([1, 1, -1, -1, 1])),
                 _svm_fit, id="svm-fit-badly-scaled"),
    pytest.param(lambda: dict(X=np.array([[1.0, -1.0], [-1.0, -1.0], [2.0, 0.5]]),
                              Xtest=np.array([[0.5, 3.0], [-2.0, 0.0]]), y=np.array([1, -1, 1])),
                 _svm_predict, id="svm-predict"),
    pytest.param(lambda: _hmm_args(), lambda b, **a: score_sequences(**a, backend=b),
                 id="hmm-score_sequences"),
    pytest.param(lambda: _hmm_args(np.uint8), lambda b, **a: viterbi(**a, backend=b),
                 id="hmm-viterbi-uint8"),
    pytest.param(lambda: _hmm_args(), lambda b, **a: posteriors(**a, backend=b),
                 id="hmm-posteriors"),
    pytest.param(lambda: _hmm_args(np.int32), lambda b, **a: em_statistics(**a, backend=b),
                 id="hmm-em_statistics"),
    pytest.param(lambda: _frames_args(), lambda b, **a: score_frames(**a, backend=b),
                 id="hmm-score_frames"),
    pytest.param(lambda: _frames_args(np.float32), lambda b, **a: viterbi_frames(**a, backend=b),
                 id="hmm-viterbi_frames-f32"),
    pytest.param(lambda: _frames_args(), lambda b, **a: posteriors_frames(**a, backend=b),
                 id="hmm-posteriors_frames"),
    pytest.param(lambda: _frames_args(), lambda b, **a: frames_statistics(**a, backend=b),
                 id="hmm-frames_statistics"),
    pytest.param(lambda: dict(X=_symbols()[0][:, None], lengths=_symbols()[1],
                              startprob_=_hmm_params()[0], transmat_=_hmm_params()[1],
                              emissionprob_=_hmm_params()[2]),
                 lambda X, lengths, b, **p: _hmm_model(CategoricalHMM, X, lengths, b, n=3, **p),
                 id="CategoricalHMM"),
    pytest.param(_gauss_args,
                 lambda X, lengths, b, **p: _hmm_model(GaussianHMM, X, lengths, b, **p),
                 id="GaussianHMM"),
    pytest.param(lambda: dict(X=_rng(5).poisson(3.0, (30, 2)), lengths=np.array([30]),
                              startprob_=np.array([0.5, 0.5]),
                              transmat_=np.array([[0.9, 0.1], [0.2, 0.8]]),
                              lambdas_=np.array([[1.0, 2.0], [4.0, 3.0]])),
                 lambda X, lengths, b, **p: _hmm_model(PoissonHMM, X, lengths, b, **p),
                 id="PoissonHMM"),
    pytest.param(lambda: dict(X=_rng(6).multinomial(5, [0.2, 0.3, 0.5], 20), lengths=np.array([20]),
                              startprob_=np.array([0.5, 0.5]),
                              transmat_=np.array([[0.9, 0.1], [0.2, 0.8]]),
                              emissionprob_=np.array([[0.2, 0.3, 0.5], [0.6, 0.2, 0.2]])),
                 lambda X, lengths, b, **p: _hmm_model(MultinomialHMM, X, lengths, b,
                                                       kw=dict(n_trials=5), **p),
                 id="MultinomialHMM"),
    pytest.param(lambda: dict(**_gauss_args(), weights_=np.ones((2, 1))),
                 lambda X, lengths, b, covars_, means_, **p: _hmm_model(
                     GMMHMM, X, lengths, b, means_=means_[:, None, :], covars_=covars_[:, None, :],
                     **p),
                 id="GMMHMM"),
]


@pytest.mark.parametrize("make, call", KERNEL_CASES)
def test_kernel_functions_leave_their_arguments_alone(make, call, backend):
    _check(make(), lambda **a: call(b=backend, **a))


def test_svm_reports_in_the_callers_units(backend):
    """fit solves a power-of-two rescaling of X: the support vectors and the range error still
    quote the caller's values (a scaled copy once leaked into both)."""
    X = np.array([[1000.0], [2000.0], [-1000.0], [-3000.0]])
    clf = fasthw6.HardMarginSVC(backend=backend).fit(X, [1, 1, 0, 0])
    np.testing.assert_array_equal(clf.support_vectors_, [[1000.0], [-1000.0]])
    np.testing.assert_allclose(clf.decision_function(X), [1, 2, -1, -3], rtol=1e-12)
    huge = np.array([[1e300], [2e300], [-1e300], [-3e300]])
    with pytest.raises(ValueError, match=r"max \|x\| = 3e\+300\)"):
        fasthw6.HardMarginSVC(backend=backend).fit(huge, [1, 1, 0, 0])
    np.testing.assert_array_equal(huge, [[1e300], [2e300], [-1e300], [-3e300]])


# --------------------------------------------------------------------------- everything else
def _linear(x, dy):
    lin = nn.Linear(3, 2, rng=0)
    lin.forward(x)
    lin.backward(dy)


def _mlp(x, dy):
    net = nn.MLP([3, 4, 2], batchnorm=True, rng=0)
    net.forward(x)
    net.backward(dy)
    net.eval().forward(x)


def _activation(layer, x, dy):
    layer.forward(x)
    layer.backward(dy)


def _optimizer(opt, grads):
    params = [np.ones_like(g) for g in grads]
    o = opt(list(zip(params, grads)))
    o.step()
    o.step()


def _vae(X, eps, z):
    m = vae.VAE(4, latent_dim=2, hidden=(3,), rng=0)
    m.fit(X, epochs=2, batch_size=4)
    m.forward(X, eps)
    m.backward()
    m.encode(X)
    m.decode(z)
    m.reconstruct(X)


def _seqio(data, X, lengths):
    read_sequences(io.BytesIO(data), n_symbols=3)
    list(iter_chunks(io.BytesIO(data), n_symbols=3, chunk_bytes=4))
    format_sequences(X, lengths)


def _distributed(parts, startprob, transmat, emissionprob):
    pytest.importorskip("dask")
    from fasthw6 import distributed

    m = CategoricalHMM(3, init_params="")
    m.startprob_, m.transmat_, m.emissionprob_ = startprob, transmat, emissionprob
    distributed.score_sequences(m, parts)


OTHER_CASES = [
    pytest.param(lambda: dict(x=_normal(3, 4)), lambda x: fasthw6.relu(x), id="relu"),
    pytest.param(lambda: dict(x=_normal(2, 3, 4)), lambda x: fasthw6.zero_interpolate(x, 3),
                 id="zero_interpolate"),
    pytest.param(lambda: dict(x=_normal(5, 3), dy=_normal(5, 2, seed=1)), _linear, id="Linear"),
    pytest.param(lambda: dict(x=_normal(5, 3), dy=_normal(5, 2, seed=1)), _mlp, id="MLP-batchnorm"),
    pytest.param(lambda: dict(x=_normal(5, 3), dy=_normal(5, 3, seed=1)),
                 lambda x, dy: _activation(nn.ReLU(), x, dy), id="ReLU"),
    pytest.param(lambda: dict(x=_normal(5, 3), dy=_normal(5, 3, seed=1)),
                 lambda x, dy: _activation(nn.Sigmoid(), x, dy), id="Sigmoid"),
    pytest.param(lambda: dict(x=_normal(4, 3, 2, 2), dy=_normal(4, 3, 2, 2, seed=1)),
                 lambda x, dy: _activation(nn.BatchNorm(3), x, dy), id="BatchNorm-layer"),
    pytest.param(lambda: dict(grads=[_normal(3, 2), _normal(2, seed=1)]),
                 lambda grads: _optimizer(lambda p: nn.SGD(p, lr=0.1, momentum=0.9), grads),
                 id="SGD-momentum"),
    pytest.param(lambda: dict(grads=[_normal(3, 2), _normal(2, seed=1)]),
                 lambda grads: _optimizer(lambda p: nn.SGD(p, lr=0.1, momentum=0.9,
                                                           weight_decay=0.1), grads),
                 id="SGD-weight-decay"),
    pytest.param(lambda: dict(grads=[_normal(3, 2, dtype=np.float32), _normal(2, seed=1)]),
                 lambda grads: _optimizer(lambda p: nn.Adam(p, weight_decay=0.1), grads),
                 id="Adam"),
    pytest.param(lambda: dict(logits=_normal(4, 3), labels=np.array([0, 2, 1, 2])),
                 lambda logits, labels: [nn.softmax_cross_entropy(logits, labels, reduction=r)
                                         for r in ("mean", "sum", "none")],
                 id="softmax_cross_entropy"),
    pytest.param(lambda: dict(pred=_normal(4, 3), target=_normal(4, 3, seed=1)),
                 lambda pred, target: [nn.mse_loss(pred, target, reduction=r)
                                       for r in ("mean", "sum", "batchmean", "none")],
                 id="mse_loss"),
    pytest.param(lambda: dict(probs=_rng(1).uniform(size=(4, 3)), target=_rng(2).uniform(size=(4, 3))),
                 lambda probs, target: [nn.binary_cross_entropy(probs, target, reduction=r)
                                        for r in ("mean", "sum", "batchmean", "none")],
                 id="binary_cross_entropy"),
    pytest.param(lambda: dict(logits=_normal(4, 3), target=_rng(2).uniform(size=(4, 3))),
                 lambda logits, target: [nn.binary_cross_entropy_with_logits(logits, target,
                                                                             reduction=r)
                                         for r in ("mean", "sum", "batchmean", "none")],
                 id="binary_cross_entropy_with_logits"),
    pytest.param(lambda: dict(X=_rng(3).uniform(size=(8, 4)), eps=_normal(8, 2, seed=1),
                              z=_normal(3, 2, seed=2)),
                 _vae, id="VAE"),
    pytest.param(lambda: dict(data=b"0 1 2\n2 2\n\n1\n", X=np.array([0, 1, 2, 2, 2, 1]),
                              lengths=[3, 2, 0, 1]),
                 _seqio, id="seqio"),
    pytest.param(lambda: dict(parts=[_symbols()[:2], _symbols(seed=3)[:2]],
                              startprob=_hmm_params()[0], transmat=_hmm_params()[1],
                              emissionprob=_hmm_params()[2]),
                 _distributed, id="distributed-score_sequences"),
]


@pytest.mark.parametrize("make, call", OTHER_CASES)
def test_other_functions_leave_their_arguments_alone(make, call):
    _check(make(), call)
