"""VAE latent layer: the document's KL formula, reparameterisation, gradients, every backend."""
from __future__ import annotations

import numpy as np
import pytest

import fasthw6
from fasthw6._backend import comparisons
from fasthw6.vae import (kl_divergence, kl_divergence_grad, latent_backward, latent_forward,
                         reparameterize, reparameterize_backward)


def _data(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return tuple(rng.standard_normal(shape).astype(dtype) for _ in range(4))


def test_document_formula_literal(backend):
    # 1/2 sum(mu^2 + sigma^2 - log sigma^2 - 1) with mu = (1, 0), sigma = (1, e): 1/2 (1 + e^2 - 2 - 1)
    mu, sigma = np.array([1.0, 0.0]), np.array([1.0, np.e])
    want = 0.5 * (1 + 0 + 1 + np.e ** 2 - 0 - 2 - 1 - 1)
    assert kl_divergence(mu, sigma=sigma, backend=backend) == pytest.approx(want, rel=1e-14)
    assert kl_divergence(mu, 2 * np.log(sigma), backend=backend) == pytest.approx(want, rel=1e-14)
    assert kl_divergence(np.zeros(3), np.zeros(3), backend=backend) == 0.0


@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (300, 17)])
def test_backends_match_reference(backend, dtype, tol, shape):
    mu, lv, eps, dz = _data(shape, dtype)
    gkl = np.linspace(0.5, 2, shape[0])
    z, kl = latent_forward(mu, lv, eps, backend=backend)
    dmu, dlv = latent_backward(dz, gkl, mu, lv, eps, backend=backend)
    rz, rkl = latent_forward(mu.astype(float), lv.astype(float), eps.astype(float), backend="numpy")
    rdmu, rdlv = latent_backward(dz.astype(float), gkl, mu.astype(float), lv.astype(float),
                                 eps.astype(float), backend="numpy")
    assert z.dtype == dtype and dmu.dtype == dtype and kl.dtype == np.float64
    for a, r in ((z, rz), (kl, rkl), (dmu, rdmu), (dlv, rdlv)):
        np.testing.assert_allclose(a, r, **tol)
    # sigma parameterisation
    s = np.exp(0.5 * lv.astype(np.float64)).astype(dtype)
    z2, kl2 = latent_forward(mu, eps=eps, sigma=s, backend=backend)
    np.testing.assert_allclose(z2, rz, **tol)
    np.testing.assert_allclose(kl2, rkl, rtol=tol["rtol"] * 10, atol=tol["atol"] * 10)


FORWARD = comparisons("latent_forward", latent_forward)
BACKWARD = comparisons("latent_backward", latent_backward)


@pytest.mark.parametrize("impl", list(FORWARD))
def test_every_registered_implementation_agrees(impl):
    """Every backend and anchor of the comparisons registry (the benchmark's list) against the
    reference backend, forward and backward, float64."""
    f, b = FORWARD[impl], BACKWARD.get(impl)
    if f is None or b is None:
        pytest.skip(f"{impl} not available")
    mu, lv, eps, dz = _data((40, 8), np.float64, seed=1)
    gkl = np.linspace(0.5, 2.0, 40)
    z, kl = f(mu, lv, eps)
    dmu, dlv = b(dz, gkl, mu, lv, eps)
    rz, rkl = latent_forward(mu, lv, eps, backend="numpy")
    rdmu, rdlv = latent_backward(dz, gkl, mu, lv, eps, backend="numpy")
    for got, want in ((z, rz), (kl, rkl), (dmu, rdmu), (dlv, rdlv)):
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-15)


def test_plain_numpy_expressions_and_split_functions(backend):
    mu, lv, eps, dz = _data((40, 8), np.float64, seed=1)
    std = np.exp(0.5 * lv)
    np.testing.assert_allclose(kl_divergence(mu, lv, backend=backend),
                               0.5 * np.sum(mu ** 2 + std ** 2 - lv - 1, axis=1), rtol=1e-13)
    np.testing.assert_allclose(reparameterize(mu, lv, eps, backend=backend), mu + std * eps, rtol=1e-14)
    dmu, dlv = kl_divergence_grad(mu, lv, backend=backend)
    np.testing.assert_allclose(dmu, mu)
    np.testing.assert_allclose(dlv, 0.5 * (std ** 2 - 1), rtol=1e-13, atol=1e-15)
    dmu, dlv = reparameterize_backward(dz, mu, lv, eps, backend=backend)
    np.testing.assert_allclose(dmu, dz)
    np.testing.assert_allclose(dlv, 0.5 * dz * eps * std, rtol=1e-13, atol=1e-15)
    dmu, ds = kl_divergence_grad(mu, sigma=std, backend=backend)
    np.testing.assert_allclose(ds, std - 1 / std, rtol=1e-13, atol=1e-14)


def test_gradients_match_finite_differences(backend):
    mu, lv, eps, dz = _data((3, 4), np.float64, seed=2)
    gkl = np.array([1.0, 0.5, 2.0])

    def loss(m, v):
        z, kl = latent_forward(m, v, eps, backend=backend)
        return float(np.sum(z * dz) + np.sum(kl * gkl))

    dmu, dlv = latent_backward(dz, gkl, mu, lv, eps, backend=backend)
    h = 1e-6
    for which, grad in ((0, dmu), (1, dlv)):
        num = np.zeros_like(mu)
        for i in np.ndindex(mu.shape):
            p, m = [mu.copy(), lv.copy()], [mu.copy(), lv.copy()]
            p[which][i] += h
            m[which][i] -= h
            num[i] = (loss(*p) - loss(*m)) / (2 * h)
        np.testing.assert_allclose(grad, num, rtol=1e-6, atol=1e-8)


def test_reparameterize_draws_from_the_right_distribution():
    z = reparameterize(np.full((20000, 2), 3.0), np.full((20000, 2), np.log(4.0)), rng=0)
    assert abs(z.mean() - 3.0) < 0.05 and abs(z.std() - 2.0) < 0.05


def test_exp_covers_extreme_log_variances(backend):
    lv = np.array([[-700.0, -50.0, -1e-3, 0.0, 30.0, 700.0]])
    z, _ = latent_forward(np.zeros_like(lv), lv, np.ones_like(lv), backend=backend)
    np.testing.assert_allclose(z, np.exp(0.5 * lv), rtol=2e-15)


def test_errors():
    mu = np.zeros((2, 3))
    with pytest.raises(TypeError, match="exactly one of logvar"):
        kl_divergence(mu)
    with pytest.raises(TypeError, match="exactly one of logvar"):
        kl_divergence(mu, mu, sigma=mu)
    with pytest.raises(ValueError, match="logvar must have the shape of mu"):
        kl_divergence(mu, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="row 1"):
        kl_divergence(mu, np.array([[0, 0, 0], [0, np.nan, 0]]))
    with pytest.raises(ValueError, match="sigma > 0"):
        kl_divergence(mu, sigma=np.array([[1, 1, 1], [1, -1, 1]]))
    with pytest.raises(ValueError, match="overflow"):
        kl_divergence(mu, np.full((2, 3), 2000.0))
    with pytest.raises(ValueError, match="row 0"):
        reparameterize(mu, mu, np.array([[np.inf, 0, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match="not finite"):
        reparameterize_backward(np.array([[np.nan, 0, 0], [0, 0, 0]]), mu, mu, mu)
    with pytest.raises(TypeError, match="eps is required"):
        latent_forward(mu, mu)
    with pytest.raises(ValueError, match="dkl must be a scalar or have one entry per sample"):
        latent_backward(mu, np.ones(3), mu, mu, mu)
    with pytest.raises(ValueError, match="mu must not be empty"):
        kl_divergence(np.zeros((0, 3)), np.zeros((0, 3)))


def test_top_level_exports():
    assert fasthw6.kl_divergence is kl_divergence and fasthw6.reparameterize is reparameterize


def test_scalar_dkl_broadcasts_over_samples(backend):
    mu, lv, eps, dz = _data((5, 3), np.float64, seed=2)
    std = np.exp(0.5 * lv)
    dmu, dlv = latent_backward(dz, 0.25, mu, lv, eps, backend=backend)
    np.testing.assert_allclose(dmu, dz + 0.25 * mu, rtol=1e-13)
    np.testing.assert_allclose(dlv, 0.5 * dz * eps * std + 0.125 * (std ** 2 - 1), rtol=1e-12, atol=1e-15)
    dmu, _ = kl_divergence_grad(mu, lv, dkl=np.float64(2.0), backend=backend)
    np.testing.assert_allclose(dmu, 2.0 * mu)


def test_overflowing_outputs_raise_on_every_backend(backend):
    # float32 results are rounded from float64 locals; the check must see the stored value
    mu = np.zeros((2, 2), np.float32)
    lv = np.array([[0, 0], [0, 180]], np.float32)
    one = np.ones((2, 2), np.float32)
    with pytest.raises(ValueError, match="z = mu \\+ exp\\(logvar / 2\\) \\* eps overflows float32 in row 1"):
        latent_forward(mu, lv, one, backend=backend)
    with pytest.raises(ValueError, match="overflows float32 in row 1"):
        reparameterize(mu, lv, one, backend=backend)
    with pytest.raises(ValueError, match="overflows float64 in row 0"):
        reparameterize(np.zeros(2), np.full(2, 600.0), np.full(2, 1e200), backend=backend)
    with pytest.raises(ValueError, match="overflows float64 in row 0"):
        reparameterize(np.zeros(2), sigma=np.full(2, 1e150), eps=np.full(2, 1e200), backend=backend)
    with pytest.raises(ValueError, match="gradient of row 1 is not finite in float32"):
        kl_divergence_grad(mu, lv, backend=backend)
    with pytest.raises(ValueError, match="gradient of row 1 is not finite in float32"):
        latent_backward(one, 1.0, mu, lv, one, backend=backend)
    with pytest.raises(ValueError, match="gradient of row 1 is not finite in float32"):
        reparameterize_backward(one * 1e30, mu, lv, one, backend=backend)
    with pytest.raises(ValueError, match="gradient of row 0 is not finite in float64"):
        reparameterize_backward([1e300], [0.0], sigma=[1e10], eps=[1e10], backend=backend)
    # the KL alone is float64 and finite here, and kl_divergence returns no z to overflow
    kl = kl_divergence(mu, lv, backend=backend)
    assert np.isfinite(kl).all() and kl[1] > 1e77


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_read_only_inputs_match_numba(dt):
    # e.g. np.load(..., mmap_mode="r"): the Cython memoryviews of inputs are const
    if "cython" not in fasthw6.available_backends():
        pytest.skip("cython backend not built")

    def ro(a):
        a = np.array(a)
        a.setflags(write=False)
        return a

    mu, lv, eps, dz = _data((4, 3), dt, seed=4)
    s = np.exp(0.5 * lv)
    calls = [(kl_divergence, (mu, lv), {}), (kl_divergence, (mu,), dict(sigma=s)),
             (kl_divergence_grad, (mu, lv), dict(dkl=np.full(4, 0.5))),
             (latent_forward, (mu, lv, eps), {}), (reparameterize, (mu, lv, eps), {}),
             (latent_backward, (dz, np.full(4, 0.5), mu, lv, eps), {}),
             (reparameterize_backward, (dz, mu, lv, eps), {})]
    for f, args, kw in calls:
        want = f(*args, **kw, backend="numba")
        got = f(*(ro(a) for a in args), **{k: ro(v) for k, v in kw.items()}, backend="cython")
        for w, g in zip(want if isinstance(want, tuple) else (want,), got if isinstance(got, tuple) else (got,)):
            np.testing.assert_allclose(g, w, rtol=1e-5 if dt == np.float32 else 1e-12)


def test_big_endian_float32_stays_float32():
    mu, lv, eps, _ = _data((3, 2), np.float32, seed=7)
    z, kl = latent_forward(mu.astype(">f4"), lv.astype(">f4"), eps.astype(">f4"))
    assert z.dtype == np.float32
    np.testing.assert_array_equal(z, latent_forward(mu, lv, eps)[0])


@pytest.mark.parametrize("bad", [-1.0, 0.0, np.nan])
def test_gradients_reject_sigma_not_positive_like_the_forward(backend, bad):
    sigma = np.array([[1.0, 2.0], [0.5, bad]])
    mu = np.zeros((2, 2))
    one = np.ones((2, 2))
    with pytest.raises(ValueError, match="sigma"):
        kl_divergence(mu, sigma=sigma, backend=backend)
    msg = "sigma must be finite and > 0, as in the forward pass: row 1"
    with pytest.raises(ValueError, match=msg):
        kl_divergence_grad(mu, sigma=sigma, backend=backend)
    with pytest.raises(ValueError, match=msg):
        reparameterize_backward(one, mu, sigma=sigma, eps=one, backend=backend)
    with pytest.raises(ValueError, match=msg):
        latent_backward(one, 1.0, mu, sigma=sigma, eps=one, backend=backend)
    with pytest.raises(ValueError, match=msg):
        latent_backward(one[:, :1], 0.0, mu[:, :1], sigma=sigma[:, 1:], eps=one[:, :1], backend=backend)


def test_large_finite_float32_gradients_are_not_reported(backend):
    # dmu = dv = 3e38: finite in float32, though their float32 sum is not
    dz = np.full((1, 1), 3e38, np.float32)
    lv = np.full((1, 1), 2 * np.log(2), np.float32)
    dmu, dlv = latent_backward(dz, 0.0, np.zeros_like(dz), lv, np.ones_like(dz), backend=backend)
    np.testing.assert_allclose([dmu[0, 0], dlv[0, 0]], [3e38, 3e38], rtol=1e-6)
