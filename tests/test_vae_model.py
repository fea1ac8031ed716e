"""The VAE model: finite-difference and torch gradients, training on digits, the example script."""
from __future__ import annotations

import doctest

import numpy as np
import pytest
from conftest import assert_png, numgrad, run_example

import fasthw6.vae.model
from fasthw6.nn import Linear
from fasthw6.vae import VAE


def _tiny(activation="relu", beta=1.0, backend=None):
    vae = VAE(5, latent_dim=2, hidden=(4,), activation=activation, beta=beta, rng=0, backend=backend)
    rng = np.random.default_rng(1)
    for p in vae.params():  # non-zero biases, so their gradients are exercised too
        p += 0.1 * rng.standard_normal(p.shape)
    return vae, rng.uniform(0, 1, (6, 5)), rng.standard_normal((6, 2))


@pytest.mark.parametrize("activation,beta", [("relu", 1.0), ("sigmoid", 0.5)])
def test_gradients_match_finite_differences(backend, activation, beta, one_thread):
    vae, X, eps = _tiny(activation, beta, backend)
    vae.forward(X, eps)
    vae.backward()
    grads = [g.copy() for g in vae.grads()]
    assert len(grads) == len(vae.params()) == 8

    def f():
        return vae.forward(X, eps)[0]

    for p, g in zip(vae.params(), grads):
        np.testing.assert_allclose(g, numgrad(f, p), rtol=1e-5, atol=1e-8)


def test_loss_and_gradients_match_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    vae, X, eps = _tiny(beta=0.7)
    loss, rec, kl = vae.forward(X, eps)
    vae.backward()
    tp = [torch.from_numpy(p.copy()).requires_grad_(True) for p in vae.params()]

    def mlp(h, ps):
        for i in range(0, len(ps), 2):
            h = h @ ps[i] + ps[i + 1]
            if i + 2 < len(ps):
                h = torch.relu(h)
        return h

    h = mlp(torch.from_numpy(X), tp[:4])
    mu, lv = h[:, :2], h[:, 2:]
    z = mu + torch.exp(0.5 * lv) * torch.from_numpy(eps)
    tkl = 0.5 * (mu ** 2 + lv.exp() - lv - 1).sum(1).mean()
    trec = F.binary_cross_entropy_with_logits(mlp(z, tp[4:]), torch.from_numpy(X), reduction="sum") / 6
    tloss = trec + 0.7 * tkl
    tloss.backward()
    assert (loss, rec, kl) == pytest.approx((tloss.item(), trec.item(), tkl.item()), rel=1e-12)
    for g, t in zip(vae.grads(), tp):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-12)


def _digits(n=600):
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X[:n] / 16.0, y[:n]


def test_training_reduces_loss_and_reconstructs(one_thread):
    X, _ = _digits()
    vae = VAE(64, 2, (32,), rng=0).fit(X, epochs=25, batch_size=32, lr=3e-3)
    h = vae.history_
    assert len(h["loss"]) == 25 and set(h) == {"loss", "reconstruction", "kl"}
    assert h["loss"][-1] < 0.75 * h["loss"][0]
    assert h["loss"][-1] == pytest.approx(h["reconstruction"][-1] + h["kl"][-1])
    assert h["kl"][-1] > 0.5  # the latent code carries information (no posterior collapse)
    # reconstructing from the code beats predicting the mean image for every digit
    rec = vae.reconstruct(X)
    assert np.mean((rec - X) ** 2) < 0.8 * np.mean((X.mean(0) - X) ** 2)
    mu, logvar = vae.encode(X)
    assert mu.shape == logvar.shape == (len(X), 2)
    s = vae.sample(7, rng=3)
    assert s.shape == (7, 64) and (s > 0).all() and (s < 1).all()
    np.testing.assert_array_equal(s, vae.sample(7, rng=3))


def test_seeded_fit_is_reproducible_and_float32_works(one_thread):
    X, _ = _digits(200)
    a = VAE(64, 2, (16,), rng=5).fit(X, epochs=3, batch_size=50)
    b = VAE(64, 2, (16,), rng=5).fit(X, epochs=3, batch_size=50)
    assert a.history_ == b.history_
    c = VAE(64, 2, (16,), rng=5, dtype=np.float32).fit(X, epochs=3, batch_size=50)
    assert all(p.dtype == np.float32 for p in c.params())
    assert c.decode(np.zeros((2, 2))).dtype == np.float32
    np.testing.assert_allclose(c.history_["loss"], a.history_["loss"], rtol=1e-3)


def test_vae_digits_example_writes_pngs(tmp_path):
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    res = run_example("vae_digits", tmp_path, epochs=3, hidden=(16,), grid=4, verbose=False)
    assert set(res["pngs"]) == {"reconstructions", "samples", "latent_walk", "latent_space"}
    for p in res["pngs"].values():
        assert_png(p, tmp_path)
    assert len(res["history"]["loss"]) == 3 and np.isfinite(res["test_loss"]).all()


def test_docstring_examples(one_thread):
    res = doctest.testmod(fasthw6.vae.model, optionflags=doctest.ELLIPSIS, extraglobs={"np": np})
    assert res.attempted > 0 and res.failed == 0


def test_errors():
    vae = VAE(4, 2, (3,), rng=0)
    X = np.full((3, 4), 0.5)
    with pytest.raises(RuntimeError, match="VAE.backward called before forward"):
        vae.backward()
    with pytest.raises(ValueError, match=r"X must lie in \[0, 1\].*X / 16 for load_digits"):
        vae.fit(X * 16)
    with pytest.raises(ValueError, match=r"X must have 4 columns \(n_features\), got shape \(3, 5\)"):
        vae.encode(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="X must be 2-D"):
        vae.fit(np.zeros(4))
    with pytest.raises(ValueError, match="X must hold at least one sample"):
        vae.fit(np.zeros((0, 4)))
    with pytest.raises(ValueError, match="X must be finite"):
        vae.fit(np.full((2, 4), np.nan))
    with pytest.raises(ValueError, match=r"z must have 2 columns \(latent_dim\), got shape \(3, 3\)"):
        vae.decode(np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"eps must have 2 columns"):
        vae.forward(X, np.zeros((3, 1)))
    with pytest.raises(ValueError, match=r"eps must have one row per sample of X \(3\), got 2"):
        vae.forward(X, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        vae.fit(X, epochs=0)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        vae.fit(X, batch_size=2.5)
    with pytest.raises(ValueError, match=r"lr must be in \(0.0, inf\)"):
        vae.fit(X, lr=-1)
    with pytest.raises(ValueError, match="n must be >= 1"):
        vae.sample(0)
    with pytest.raises(ValueError, match="latent_dim must be >= 1"):
        VAE(4, 0)
    with pytest.raises(TypeError, match="hidden must be a sequence of ints"):
        VAE(4, 2, hidden=8)
    with pytest.raises(ValueError, match=r"beta must be in \[0.0, inf\)"):
        VAE(4, 2, beta=-1)
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        VAE(4, 2, dtype=np.float16)
    assert isinstance(vae.encoder[0], Linear)
