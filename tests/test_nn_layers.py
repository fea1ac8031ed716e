"""Layers, losses and optimizers: finite differences, torch as the oracle, training on digits."""
from __future__ import annotations

import doctest

import numpy as np
import pytest
from conftest import assert_png, numgrad, run_example
from hypothesis import given, settings
from hypothesis import strategies as st

import fasthw6.nn.layers
import fasthw6.nn.losses
import fasthw6.nn.optim
from fasthw6.nn import (
    MLP,
    SGD,
    Adam,
    BatchNorm,
    Linear,
    ReLU,
    Sequential,
    Sigmoid,
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    mse_loss,
    softmax_cross_entropy,
)

TT = {np.dtype(np.float32): dict(rtol=2e-5, atol=2e-6), np.dtype(np.float64): dict(rtol=1e-11, atol=1e-12)}


def _check_layer_grads(layer, x, seed=0, rtol=1e-6, atol=1e-8):
    """backward(R) against finite differences of sum(forward(x) * R) for x and every parameter."""
    r = np.random.default_rng(seed).standard_normal(layer.forward(x).shape)
    layer.forward(x)
    dx = layer.backward(r)
    grads = [g.copy() for g in layer.grads()]

    def f():
        return float(np.sum(layer.forward(x) * r))

    np.testing.assert_allclose(dx, numgrad(f, x), rtol=rtol, atol=atol)
    for p, g in zip(layer.params(), grads):
        np.testing.assert_allclose(g, numgrad(f, p), rtol=rtol, atol=atol)


# ---------------------------------------------------------------- finite differences, float64

@pytest.mark.parametrize("init", ["he", "xavier"])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_finite_differences(init, bias):
    layer = Linear(4, 3, bias=bias, init=init, rng=1)
    _check_layer_grads(layer, np.random.default_rng(2).standard_normal((5, 4)))
    assert len(layer.params()) == (2 if bias else 1)


@pytest.mark.parametrize("shape", [(6, 3), (3, 2, 2, 3)])
@pytest.mark.parametrize("training", [True, False])
def test_batchnorm_finite_differences(backend, shape, training, one_thread):
    rng = np.random.default_rng(3)
    layer = BatchNorm(shape[1], backend=backend)
    layer.gamma[:] = rng.uniform(0.5, 2, shape[1])
    layer.beta[:] = rng.standard_normal(shape[1])
    layer.running_mean[:] = rng.standard_normal(shape[1])
    layer.running_var[:] = rng.uniform(0.5, 2, shape[1])
    layer.train(training)
    _check_layer_grads(layer, rng.standard_normal(shape) * 2 + 1)


def test_activation_finite_differences():
    x = np.random.default_rng(4).standard_normal((4, 5)) * 3
    x[np.abs(x) < 1e-3] = 0.5  # keep finite differences off ReLU's kink
    _check_layer_grads(ReLU(), x.copy())
    _check_layer_grads(Sigmoid(), x.copy())


@pytest.mark.parametrize("batchnorm", [False, True])
@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_mlp_finite_differences(batchnorm, activation, one_thread):
    rng = np.random.default_rng(5)
    net = MLP([5, 6, 4, 3], batchnorm=batchnorm, activation=activation, rng=6)
    x, y = rng.standard_normal((7, 5)), rng.integers(0, 3, 7)
    for layer in net:
        if isinstance(layer, BatchNorm):
            layer.gamma[:] = rng.uniform(0.5, 2, layer.num_features)
            layer.beta[:] = rng.standard_normal(layer.num_features)
    _, d = softmax_cross_entropy(net.forward(x), y)
    dx = net.backward(d)
    grads = [g.copy() for g in net.grads()]

    def f():
        return softmax_cross_entropy(net.forward(x), y)[0]

    np.testing.assert_allclose(dx, numgrad(f, x), rtol=1e-5, atol=1e-9)
    assert len(net.params()) == len(grads) == (8 if batchnorm else 6)
    for p, g in zip(net.params(), grads):
        np.testing.assert_allclose(g, numgrad(f, p), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("fn,lo,hi", [(softmax_cross_entropy, None, None), (mse_loss, None, None),
                                      (binary_cross_entropy, 0.05, 0.95),
                                      (binary_cross_entropy_with_logits, None, None)])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_loss_gradients_finite_differences(fn, lo, hi, reduction):
    rng = np.random.default_rng(7)
    x = rng.uniform(lo, hi, (4, 3)) if lo is not None else rng.standard_normal((4, 3)) * 3
    t = rng.integers(0, 3, 4) if fn is softmax_cross_entropy else rng.uniform(0, 1, (4, 3))
    _, g = fn(x, t, reduction=reduction)
    np.testing.assert_allclose(g, numgrad(lambda: fn(x, t, reduction=reduction)[0], x),
                               rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------- torch as the oracle

def _t(a):
    torch = pytest.importorskip("torch")
    return torch.from_numpy(np.array(a, copy=True))


def test_linear_matches_torch(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    layer = Linear(6, 4, rng=9, dtype=dtype)
    layer.bias[:] = rng.standard_normal(4)
    x, dy = rng.standard_normal((5, 6)).astype(dtype), rng.standard_normal((5, 4)).astype(dtype)
    ref = torch.nn.Linear(6, 4, dtype=torch.float32 if dtype == np.float32 else torch.float64)
    with torch.no_grad():
        ref.weight.copy_(_t(layer.weight.T))
        ref.bias.copy_(_t(layer.bias))
    tx = _t(x).requires_grad_(True)
    ty = ref(tx)
    ty.backward(_t(dy))
    y = layer.forward(x)
    dx = layer.backward(dy)
    for a, b in ((y, ty), (dx, tx.grad), (layer.grad_weight, ref.weight.grad.T),
                 (layer.grad_bias, ref.bias.grad)):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b.detach().numpy(), **TT[dtype])


@pytest.mark.parametrize("shape", [(16, 5), (4, 3, 5, 6)])
def test_batchnorm_layer_matches_torch(backend, dtype, shape):
    torch = pytest.importorskip("torch")
    C = shape[1]
    mod = (torch.nn.BatchNorm1d if len(shape) == 2 else torch.nn.BatchNorm2d)(
        C, eps=1e-5, momentum=0.1, dtype=torch.float32 if dtype == np.float32 else torch.float64)
    layer = BatchNorm(C, dtype=dtype, backend=backend)
    rng = np.random.default_rng(10)
    g0, b0 = rng.uniform(0.5, 2, C).astype(dtype), rng.standard_normal(C).astype(dtype)
    layer.gamma[:], layer.beta[:] = g0, b0
    with torch.no_grad():
        mod.weight.copy_(_t(g0))
        mod.bias.copy_(_t(b0))
    t = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-10)
    for step, training in enumerate([True, True, True, False, False]):
        layer.train(training)
        mod.train(training)
        x = (rng.standard_normal(shape) * 3 + step).astype(dtype)
        dy = rng.standard_normal(shape).astype(dtype)
        tx = _t(x).requires_grad_(True)
        mod.zero_grad()
        ty = mod(tx)
        ty.backward(_t(dy))
        y = layer.forward(x)
        dx = layer.backward(dy)
        for a, b in ((y, ty), (dx, tx.grad), (layer.grad_gamma, mod.weight.grad),
                     (layer.grad_beta, mod.bias.grad), (layer.running_mean, mod.running_mean),
                     (layer.running_var, mod.running_var)):
            assert a.dtype == dtype
            np.testing.assert_allclose(a, b.detach().numpy(), **t)


def test_activations_match_torch(dtype):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(11)
    x = (rng.standard_normal((6, 7)) * 10).astype(dtype)
    dy = rng.standard_normal((6, 7)).astype(dtype)
    for layer, fn in ((ReLU(), torch.relu), (Sigmoid(), torch.sigmoid)):
        tx = _t(x).requires_grad_(True)
        ty = fn(tx)
        ty.backward(_t(dy))
        y, dx = layer.forward(x), layer.backward(dy)
        assert y.dtype == dx.dtype == dtype
        np.testing.assert_allclose(y, ty.detach().numpy(), **TT[dtype])
        np.testing.assert_allclose(dx, tx.grad.numpy(), **TT[dtype])


@pytest.mark.parametrize("reduction", ["mean", "sum", "batchmean", "none"])
def test_losses_match_torch(dtype, reduction):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(12)
    z = (rng.standard_normal((8, 5)) * 4).astype(dtype)
    z[0, 0] = 60  # large logits must stay finite and exact
    z[1, 1] = -60
    t = rng.uniform(0, 1, (8, 5)).astype(dtype)
    t[2] = np.round(t[2])
    p = rng.uniform(0.02, 0.98, (8, 5)).astype(dtype)
    labels = rng.integers(0, 5, 8)
    tred = "sum" if reduction == "batchmean" else reduction
    cases = [
        (mse_loss, z, t, lambda a, b: F.mse_loss(a, b, reduction=tred)),
        (binary_cross_entropy, p, t, lambda a, b: F.binary_cross_entropy(a, b, reduction=tred)),
        (binary_cross_entropy_with_logits, z, t,
         lambda a, b: F.binary_cross_entropy_with_logits(a, b, reduction=tred)),
    ]
    if reduction != "batchmean":
        cases.append((softmax_cross_entropy, z, labels,
                      lambda a, b: F.cross_entropy(a, b, reduction=tred)))
    t_tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    for fn, a, b, ref in cases:
        loss, grad = fn(a, b, reduction=reduction)
        ta = _t(a).requires_grad_(True)
        tl = ref(ta, _t(b))
        if reduction == "batchmean":
            tl = tl / a.shape[0]
        tl.sum().backward()
        assert grad.dtype == dtype, fn.__name__
        if reduction == "none":
            assert loss.shape == tl.shape
        else:
            assert isinstance(loss, float)
        np.testing.assert_allclose(loss, tl.detach().numpy(), **t_tol, err_msg=fn.__name__)
        np.testing.assert_allclose(grad, ta.grad.numpy(), **t_tol, err_msg=fn.__name__)


def test_losses_are_stable_at_extremes():
    loss, g = softmax_cross_entropy(np.array([[1e4, 0.0, -1e4]]), [2])
    assert loss == pytest.approx(2e4) and np.allclose(g, [[1, 0, -1]])
    loss, g = binary_cross_entropy_with_logits(np.array([-800.0, 800.0]), np.array([1.0, 0.0]),
                                               reduction="sum")
    assert loss == pytest.approx(1600.0) and g.tolist() == [-1.0, 1.0]
    loss, g = binary_cross_entropy(np.array([0.0, 1.0]), np.array([1.0, 0.0]), reduction="sum")
    assert loss == 200.0 and np.isfinite(g).all()  # log clamped at -100, as torch


def _torch_opt_run(torch_cls, our_cls, kwargs, dtype, steps=6):
    pytest.importorskip("torch")
    rng = np.random.default_rng(13)
    shapes = [(3, 4), (4,)]
    ps = [rng.standard_normal(s).astype(dtype) for s in shapes]
    gs = [np.zeros_like(p) for p in ps]
    tps = [_t(p).requires_grad_(True) for p in ps]
    opt = our_cls(list(zip(ps, gs)), **kwargs)
    topt = torch_cls(tps, **kwargs)
    for _ in range(steps):
        for g, tp in zip(gs, tps):
            g[...] = rng.standard_normal(g.shape).astype(dtype)
            tp.grad = _t(g)
        opt.step()
        topt.step()
    t = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    for p, tp in zip(ps, tps):
        assert p.dtype == dtype
        np.testing.assert_allclose(p, tp.detach().numpy(), **t)
    assert opt.steps == steps


@pytest.mark.parametrize("kwargs", [dict(lr=0.1), dict(lr=0.05, momentum=0.9),
                                    dict(lr=0.05, momentum=0.5, weight_decay=0.01)])
def test_sgd_matches_torch(dtype, kwargs):
    torch = pytest.importorskip("torch")
    _torch_opt_run(torch.optim.SGD, SGD, kwargs, dtype)


@pytest.mark.parametrize("kwargs", [dict(lr=0.01), dict(lr=0.1, betas=(0.8, 0.99), eps=1e-6),
                                    dict(lr=0.01, weight_decay=0.1)])
def test_adam_matches_torch(dtype, kwargs):
    torch = pytest.importorskip("torch")
    _torch_opt_run(torch.optim.Adam, Adam, kwargs, dtype)


def test_mlp_training_trajectory_matches_torch():
    """Five SGD-momentum steps of a BN sigmoid MLP, then eval mode: losses and weights as torch."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(14)
    net = MLP([8, 6, 5, 3], batchnorm=True, activation="sigmoid", rng=15)
    tlayers = []
    for layer in net:
        if isinstance(layer, Linear):
            lin = torch.nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None,
                                  dtype=torch.float64)
            with torch.no_grad():
                lin.weight.copy_(_t(layer.weight.T))
                if layer.bias is not None:
                    lin.bias.copy_(_t(layer.bias))
            tlayers.append(lin)
        elif isinstance(layer, BatchNorm):
            tlayers.append(torch.nn.BatchNorm1d(layer.num_features, dtype=torch.float64))
        else:
            tlayers.append(torch.nn.Sigmoid())
    tnet = torch.nn.Sequential(*tlayers)
    opt = SGD(net, lr=0.5, momentum=0.9)
    topt = torch.optim.SGD(tnet.parameters(), lr=0.5, momentum=0.9)
    for _ in range(5):
        x, y = rng.standard_normal((10, 8)), rng.integers(0, 3, 10)
        loss, d = softmax_cross_entropy(net.forward(x), y)
        net.backward(d)
        opt.step()
        topt.zero_grad()
        tl = torch.nn.functional.cross_entropy(tnet(_t(x)), _t(y))
        tl.backward()
        topt.step()
        assert loss == pytest.approx(tl.item(), rel=1e-10)
    x = rng.standard_normal((4, 8))
    net.eval()
    tnet.eval()
    np.testing.assert_allclose(net.forward(x), tnet(_t(x)).detach().numpy(), rtol=1e-9, atol=1e-11)


# ---------------------------------------------------------------- behaviour

def test_dtypes_follow_parameters():
    n32 = MLP([4, 5, 3], batchnorm=True, rng=0, dtype=np.float32)
    n64 = MLP([4, 5, 3], batchnorm=True, rng=0, dtype=np.float64)
    assert all(p.dtype == np.float32 for p in n32.params() + n32.grads())
    for p32, p64 in zip(n32.params(), n64.params()):
        np.testing.assert_array_equal(p32, p64.astype(np.float32))  # same seed, rounded
    x = np.random.default_rng(0).standard_normal((6, 4))
    y32 = n32.forward(x.astype(np.float32))
    assert y32.dtype == np.float32 and n32.backward(np.ones_like(y32)).dtype == np.float32
    np.testing.assert_allclose(y32, n64.forward(x), rtol=1e-4, atol=1e-5)
    assert n64.forward(np.ones((2, 4), dtype=np.int64)).dtype == np.float64  # integers converted


def test_mlp_structure_and_modes():
    net = MLP([3, 4, 4, 2], batchnorm=True, activation="sigmoid", rng=0)
    kinds = [type(layer).__name__ for layer in net]
    assert kinds == ["Linear", "BatchNorm", "Sigmoid", "Linear", "BatchNorm", "Sigmoid", "Linear"]
    assert net[0].bias is None and net[-1].bias is not None and len(net) == 7
    assert all(not layer.training for layer in net.eval())
    assert all(layer.training for layer in net.train())
    plain = MLP([3, 4, 4, 2], rng=0)
    assert plain[0].bias is not None and plain[0].init == "he"
    # same seed: the same linear maps with and without batch norm
    np.testing.assert_array_equal(plain[0].weight, MLP([3, 4, 4, 2], batchnorm=True, rng=0)[0].weight)
    assert "Linear(3, 4, bias=False)" in repr(net)


def test_eval_mode_uses_running_statistics(one_thread):
    bn = BatchNorm(2)
    rng = np.random.default_rng(1)
    for _ in range(200):
        bn.forward(rng.standard_normal((64, 2)) * [2.0, 0.5] + [3.0, -1.0])
    np.testing.assert_allclose(bn.running_mean, [3.0, -1.0], atol=0.15)
    np.testing.assert_allclose(bn.running_var, [4.0, 0.25], rtol=0.15)
    before = bn.running_mean.copy()
    y = bn.eval().forward(np.array([[3.0, -1.0]]))  # one sample is fine in eval mode
    np.testing.assert_allclose(y, [[0.0, 0.0]], atol=0.1)
    np.testing.assert_array_equal(bn.running_mean, before)


def test_optimizer_updates_model_in_place():
    net = MLP([4, 3, 2], rng=0)
    w = net[0].weight
    x, y = np.random.default_rng(0).standard_normal((5, 4)), np.array([0, 1, 0, 1, 1])
    opt = Adam(net, lr=0.01)
    _, d = softmax_cross_entropy(net.forward(x), y)
    net.backward(d)
    before = w.copy()
    opt.step()
    assert net[0].weight is w and not np.array_equal(w, before)


def _digits():
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(X))
    return X[idx] / 16.0, y[idx]


def test_training_on_digits_reduces_loss_and_bn_reaches_good_accuracy(one_thread):
    X, y = _digits()
    Xtr, ytr, Xte, yte = X[:1400], y[:1400], X[1400:], y[1400:]
    results = {}
    for bn in (False, True):
        net = MLP([64, 64, 64, 10], batchnorm=bn, activation="sigmoid", rng=0)
        opt = SGD(net, lr=0.1, momentum=0.9)
        order = np.random.default_rng(1)
        curve = []
        for _ in range(6):
            perm, total = order.permutation(len(Xtr)), 0.0
            for s in range(0, len(Xtr), 50):
                i = perm[s:s + 50]
                loss, d = softmax_cross_entropy(net.forward(Xtr[i]), ytr[i])
                net.backward(d)
                opt.step()
                total += loss * len(i)
            curve.append(total / len(Xtr))
        acc = np.mean(np.argmax(net.eval().forward(Xte), axis=1) == yte)
        results[bn] = curve, acc
    plain, bn = results[False], results[True]
    assert bn[0][-1] < 0.5 * bn[0][0] and bn[1] > 0.93
    assert plain[0][-1] < plain[0][0]
    # the document's point: batch norm speeds up a sigmoid network's training
    assert bn[0][-1] < plain[0][-1]


def test_bn_digits_example_writes_png(tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    res = run_example("bn_digits", tmp_path, epochs=2, hidden=(16,), verbose=False)
    assert_png(res["png"], tmp_path)
    for k in ("plain", "batchnorm"):
        assert len(res[k]["loss"]) == 2 and 0 <= res[k]["test_accuracy"][-1] <= 1


@pytest.mark.parametrize("module", [fasthw6.nn.layers, fasthw6.nn.losses, fasthw6.nn.optim])
def test_docstring_examples(module, one_thread):
    res = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE,
                          extraglobs={"np": np})
    assert res.attempted > 0 and res.failed == 0


# ---------------------------------------------------------------- errors at the boundary

def test_layer_errors():
    lin = Linear(3, 2, rng=0)
    with pytest.raises(RuntimeError, match=r"Linear\(3, 2\): backward called before forward"):
        lin.backward(np.ones((1, 2)))
    with pytest.raises(ValueError, match=r"x of Linear\(3, 2\) must have shape \(N, 3\), got \(4, 2\)"):
        lin.forward(np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"must have shape \(N, 3\), got \(3,\)"):
        lin.forward(np.ones(3))
    with pytest.raises(TypeError, match=r"x of Linear\(3, 2\) must be float64 like its parameters, got float32"):
        lin.forward(np.ones((4, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="must be a numeric array"):
        lin.forward(np.array([["a", "b", "c"]]))
    with pytest.raises(ValueError, match="must be finite"):
        lin.forward(np.full((2, 3), np.nan))
    lin.forward(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"dy of Linear\(3, 2\) must have the shape of the forward output, \(4, 2\)"):
        lin.backward(np.ones((4, 3)))
    with pytest.raises(TypeError, match="dy of .* must be float64"):
        lin.backward(np.ones((4, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="init must be one of"):
        Linear(3, 2, init="lecun")
    with pytest.raises(ValueError, match="in_features must be >= 1"):
        Linear(0, 2)
    with pytest.raises(TypeError, match="out_features must be an int"):
        Linear(3, 2.0)
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        Linear(3, 2, dtype=np.int32)
    with pytest.raises(TypeError, match="bias must be a bool"):
        Linear(3, 2, bias=1)
    bn = BatchNorm(3)
    with pytest.raises(RuntimeError, match=r"BatchNorm\(3\): backward called before forward"):
        bn.backward(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"x of BatchNorm\(3\) must have shape \(N, 3\) or \(N, 3, H, W\), got \(4, 2\)"):
        bn.forward(np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"got \(4, 3, 5\)"):
        bn.forward(np.ones((4, 3, 5)))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        bn.forward(np.ones((1, 3)))
    with pytest.raises(ValueError, match="x must be finite"):
        bn.forward(np.full((4, 3), np.inf))
    with pytest.raises(ValueError, match=r"eps must be in \(0.0, inf\)"):
        BatchNorm(3, eps=0)
    with pytest.raises(ValueError, match=r"momentum must be in \[0.0, 1.0\]"):
        BatchNorm(3, momentum=1.5)
    with pytest.raises(ValueError, match="backend"):
        BatchNorm(3, backend="fortran")
    bn.forward(np.random.default_rng(0).standard_normal((4, 3)))
    with pytest.raises(ValueError, match=r"dy of BatchNorm\(3\) must have the shape"):
        bn.backward(np.ones((4, 2)))
    for act in (ReLU(), Sigmoid()):
        with pytest.raises(RuntimeError, match="backward called before forward"):
            act.backward(np.ones(2))
        act.forward(np.ones((2, 2), dtype=np.float32))
        with pytest.raises(TypeError, match="dy of .* must be float32"):
            act.backward(np.ones((2, 2)))
        with pytest.raises(ValueError, match=r"must have the shape of the forward output, \(2, 2\)"):
            act.backward(np.ones((2, 3), dtype=np.float32))
    with pytest.raises(TypeError, match="mode must be a bool"):
        ReLU().train("yes")


def test_container_errors():
    with pytest.raises(ValueError, match="at least one layer"):
        Sequential()
    with pytest.raises(TypeError, match="layer 1 must be a fasthw6.nn Layer, got function"):
        Sequential(ReLU(), lambda x: x)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        Sequential(ReLU()).backward(np.ones(2))
    with pytest.raises(ValueError, match="at least an input and an output size"):
        MLP([3])
    with pytest.raises(TypeError, match="sizes must be a sequence of ints"):
        MLP(5)
    with pytest.raises(ValueError, match="sizes entry must be >= 1"):
        MLP([3, 0, 2])
    with pytest.raises(ValueError, match="activation must be one of"):
        MLP([3, 2], activation="tanh")
    with pytest.raises(TypeError, match="batchnorm must be a bool"):
        MLP([3, 2], batchnorm="yes")


def test_loss_errors():
    z = np.zeros((3, 4))
    with pytest.raises(TypeError, match="labels must hold integer class indices, got dtype float64"):
        softmax_cross_entropy(z, np.zeros(3))
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\)"):
        softmax_cross_entropy(z, np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\) for 4 classes, found 4"):
        softmax_cross_entropy(z, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match="found -1"):
        softmax_cross_entropy(z, np.array([0, -1, 1]))
    with pytest.raises(ValueError, match="logits must be 2-D"):
        softmax_cross_entropy(np.zeros(3), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="logits must be finite"):
        softmax_cross_entropy(np.full((1, 2), np.nan), [0])
    with pytest.raises(ValueError, match="reduction must be one of"):
        softmax_cross_entropy(z, np.zeros(3, dtype=int), reduction="batchmean")
    with pytest.raises(ValueError, match="reduction must be one of"):
        mse_loss(z, z, reduction="avg")
    with pytest.raises(ValueError, match=r"target must have the shape of pred, \(3, 4\), got \(4, 3\)"):
        mse_loss(z, z.T)
    with pytest.raises(ValueError, match="pred must be a non-empty array"):
        mse_loss(np.zeros((0, 2)), np.zeros((0, 2)))
    with pytest.raises(ValueError, match=r"target must lie in \[0, 1\].*X / 16"):
        binary_cross_entropy_with_logits(z, z + 16)
    with pytest.raises(ValueError, match=r"probs must lie in \[0, 1\]"):
        binary_cross_entropy(z - 0.1, z)
    with pytest.raises(ValueError, match=r"target must lie in \[0, 1\]"):
        binary_cross_entropy(z, z + 2)


def test_optimizer_errors():
    p, g = np.zeros(3), np.zeros(3)
    with pytest.raises(ValueError, match=r"lr must be in \(0.0, inf\)"):
        SGD([(p, g)], lr=0)
    with pytest.raises(ValueError, match=r"momentum must be in \[0.0, 1.0\)"):
        SGD([(p, g)], momentum=1.0)
    with pytest.raises(ValueError, match="weight_decay must be in"):
        SGD([(p, g)], weight_decay=-1)
    with pytest.raises(TypeError, match="lr must be a real number"):
        Adam([(p, g)], lr="fast")
    with pytest.raises(ValueError, match=r"betas\[1\] must be in \[0.0, 1.0\)"):
        Adam([(p, g)], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="betas must be a pair"):
        Adam([(p, g)], betas=0.9)
    with pytest.raises(ValueError, match="eps must be in"):
        Adam([(p, g)], eps=0)
    with pytest.raises(ValueError, match="the optimizer got no parameters"):
        SGD([])
    with pytest.raises(ValueError, match="the optimizer got no parameters"):
        SGD(ReLU())
    with pytest.raises(TypeError, match="expected a model with params"):
        SGD(3)
    with pytest.raises(TypeError, match="param 0 must be a float32/float64 ndarray .* got list"):
        SGD([([0.0], g)])
    with pytest.raises(TypeError, match="grad 0 must be a float32/float64 ndarray .* got ndarray int64"):
        SGD([(p, np.zeros(3, dtype=np.int64))])
    with pytest.raises(ValueError, match="grad 0 must match its param"):
        SGD([(p, np.zeros(4))])
    with pytest.raises(ValueError, match="grad 0 must match its param"):
        SGD([(p, np.zeros(3, dtype=np.float32))])
    with pytest.raises(ValueError, match="entry 0 must be a .param, grad. pair"):
        SGD([(p, g, g)])
    with pytest.raises(ValueError, match="param 1 appears more than once"):
        SGD([(p, g), (p, np.zeros(3))])
    ro = np.zeros(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="param 0 must be writeable"):
        Adam([(ro, g)])


def _torch_copy(net, torch):
    """The same network in torch (float64), weights copied."""
    mods = []
    for layer in net:
        if isinstance(layer, Linear):
            lin = torch.nn.Linear(layer.in_features, layer.out_features,
                                  bias=layer.bias is not None, dtype=torch.float64)
            with torch.no_grad():
                lin.weight.copy_(_t(layer.weight.T.astype(np.float64)))
                if layer.bias is not None:
                    lin.bias.copy_(_t(layer.bias.astype(np.float64)))
            mods.append(lin)
        elif isinstance(layer, BatchNorm):
            mods.append(torch.nn.BatchNorm1d(layer.num_features, dtype=torch.float64))
        else:
            mods.append(torch.nn.ReLU() if isinstance(layer, ReLU) else torch.nn.Sigmoid())
    return torch.nn.Sequential(*mods)


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(1, 7), min_size=2, max_size=4), n=st.integers(2, 9),
       batchnorm=st.booleans(), activation=st.sampled_from(["relu", "sigmoid"]),
       f32=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_property_random_mlps_match_torch(sizes, n, batchnorm, activation, f32, seed):
    torch = pytest.importorskip("torch")
    dtype = np.float32 if f32 else np.float64
    net = MLP(sizes, batchnorm=batchnorm, activation=activation, rng=seed, dtype=dtype)
    tnet = _torch_copy(net, torch)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, sizes[0])).astype(dtype)
    dy = rng.standard_normal((n, sizes[-1])).astype(dtype)
    y = net.forward(x)
    dx = net.backward(dy)
    tx = _t(x.astype(np.float64)).requires_grad_(True)
    ty = tnet(tx)
    ty.backward(_t(dy.astype(np.float64)))
    assert y.dtype == dx.dtype == dtype and y.shape == (n, sizes[-1]) and dx.shape == x.shape
    # float32 through batch norm of a near-constant feature loses digits: compare loosely there
    t = dict(rtol=2e-3, atol=2e-3) if f32 else dict(rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(y, ty.detach().numpy(), **t)
    np.testing.assert_allclose(dx, tx.grad.numpy(), **t)
    tgrads = [p.grad.numpy().T if p.grad.ndim == 2 else p.grad.numpy() for p in tnet.parameters()]
    assert len(tgrads) == len(net.grads())
    for g, tg in zip(net.grads(), tgrads):
        assert g.dtype == dtype and g.shape == tg.shape
        np.testing.assert_allclose(g, tg, **t)


@pytest.mark.parametrize("opt", ["sgd", "sgd_momentum", "adam"])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_optimizers_refuse_non_finite_gradients_before_updating(opt, dt):
    from fasthw6.nn import SGD, Adam
    make = {"sgd": lambda pr: SGD(pr, lr=0.1), "sgd_momentum": lambda pr: SGD(pr, lr=0.1, momentum=0.9),
            "adam": lambda pr: Adam(pr, lr=0.1)}[opt]
    p0, p1 = np.ones(3, dt), np.ones((2, 2), dt)
    g0, g1 = np.full(3, 0.5, dt), np.full((2, 2), 0.5, dt)
    o = make([(p0, g0), (p1, g1)])
    for bad in (np.nan, np.inf, -np.inf):
        g1[1, 0] = bad
        with pytest.raises(ValueError, match=r"grad 1 holds .* at flat index 2: .*no parameter was updated"):
            o.step()
        np.testing.assert_array_equal(p0, 1.0)
        np.testing.assert_array_equal(p1, 1.0)
    # huge but finite gradients (g . g overflows) are applied, not refused
    g1[...] = 1e30 if dt == np.float32 else 1e300
    o.step()
    assert o.steps == 1 and np.isfinite(p1).all() and (p0 < 1).all()
