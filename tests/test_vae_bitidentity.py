"""The numba and Cython VAE latent kernels give the same bits for the same input.

The ``auto`` backend may run the precompiled Cython kernel while the numba one is compiling and
numba afterwards, so the two must agree bit for bit, not within a tolerance: every function of
``fasthw6.vae`` (``latent_forward``, ``latent_backward``, ``kl_divergence``,
``kl_divergence_grad``, ``reparameterize``, ``reparameterize_backward``), float32 and float64,
both parameterisations (log-variance and sigma), at latent sizes on both sides of the kernels'
8-lane blocks (D = 1, 3, 7, 8, 9, 33, 100: no full block, exactly one, blocks plus a tail) and row
counts 1, 5 and 300 (more than one of the numba kernels' 256-row tasks).

The inputs reach far from 1: variances from about e^-60 to e^60 (float64: e^-200 to e^200), mu
and dz of both signs with magnitudes from 1e-3 to 1e3, so the polynomial exp's range reduction,
the KL's log and the row sums all see operands of very different magnitudes, where a fused
multiply-add or a reassociated sum would round differently (the kernels before the lane
structure failed here).  Only two kernels per dtype are compiled (forward and backward): the
parameterisation is a run-time flag.
"""
from __future__ import annotations

import numpy as np
import pytest

import fasthw6
from fasthw6 import vae

pytestmark = pytest.mark.skipif(
    not {"numba", "cython"} <= set(fasthw6.available_backends()),
    reason="needs both compiled backends (FASTHW6_REQUIRE_BACKENDS makes a missing one fail)")

DS = (1, 3, 7, 8, 9, 33, 100)
NS = (1, 5, 300)
LV_MAX = {np.float32: 60.0, np.float64: 200.0}  # float32: sigma^2 = e^60 ~ 1e26, z stays finite


def operands(n, d, dtype, seed):
    """(mu, logvar, sigma, eps, dz, dkl) with spread-out magnitudes; sigma = exp(logvar / 2)."""
    rng = np.random.default_rng(seed)
    shape = (n, d)
    mu = rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, shape)
    lv = rng.standard_normal(shape) * 2.0
    wide = rng.random(shape) < 0.3  # tiny and huge variances
    lv[wide] = rng.uniform(-LV_MAX[dtype], LV_MAX[dtype], int(wide.sum()))
    eps = rng.standard_normal(shape)
    dz = rng.standard_normal(shape) * 10.0 ** rng.integers(-2, 3, shape)
    dkl = rng.uniform(-2.0, 3.0, n)
    mu, lv, eps, dz = (a.astype(dtype) for a in (mu, lv, eps, dz))
    sigma = np.exp(0.5 * lv.astype(np.float64)).astype(dtype)
    return mu, lv, sigma, eps, dz, dkl


def assert_same_bits(a, b, what):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, \
        f"{what}: {a.dtype}{a.shape} vs {b.dtype}{b.shape}"
    if not np.array_equal(a, b):
        d = np.abs(a.astype(np.float64) - b.astype(np.float64))
        i = tuple(int(k) for k in np.unravel_index(int(np.nanargmax(d)), d.shape))
        raise AssertionError(f"{what}: numba and cython differ in {np.count_nonzero(a != b)} of "
                             f"{a.size} entries ({a.dtype}), most at {i}: {a[i].item()!r} vs "
                             f"{b[i].item()!r} (difference {d[i]:.3g})")


def outputs(backend, mu, lv, sigma, eps, dz, dkl, sig):
    """Every output of every function of fasthw6.vae, by name."""
    second = dict(sigma=sigma) if sig else dict(logvar=lv)
    out = {}
    out["latent_forward.z"], out["latent_forward.kl"] = vae.latent_forward(
        mu, eps=eps, backend=backend, **second)
    out["latent_backward.dmu"], out["latent_backward.dv"] = vae.latent_backward(
        dz, dkl, mu, eps=eps, backend=backend, **second)
    out["latent_backward(scalar dkl).dmu"], out["latent_backward(scalar dkl).dv"] = \
        vae.latent_backward(dz, 0.75, mu, eps=eps, backend=backend, **second)
    out["kl_divergence"] = vae.kl_divergence(mu, backend=backend, **second)
    out["kl_divergence_grad.dmu"], out["kl_divergence_grad.dv"] = vae.kl_divergence_grad(
        mu, backend=backend, **second)
    out["kl_divergence_grad(dkl).dmu"], out["kl_divergence_grad(dkl).dv"] = \
        vae.kl_divergence_grad(mu, dkl=dkl, backend=backend, **second)
    out["reparameterize"] = vae.reparameterize(mu, eps=eps, backend=backend, **second)
    out["reparameterize_backward.dmu"], out["reparameterize_backward.dv"] = \
        vae.reparameterize_backward(dz, mu, eps=eps, backend=backend, **second)
    return out


@pytest.mark.parametrize("sig", [False, True], ids=["logvar", "sigma"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("n", NS)
def test_every_function_agrees_bit_for_bit(n, dtype, sig):
    lvs = []
    for d in DS:
        args = operands(n, d, dtype, seed=1000 * n + d)
        got = {b: outputs(b, *args, sig) for b in ("numba", "cython")}
        for k in got["numba"]:
            assert_same_bits(got["numba"][k], got["cython"][k], f"{k} (N={n}, D={d})")
        assert np.isfinite(got["numba"]["latent_forward.kl"]).all()
        assert got["numba"]["latent_forward.z"].dtype == dtype
        lvs.append(args[1].ravel())
    # the data is what it claims: variances far from 1 on both sides
    lv = np.concatenate(lvs)
    assert lv.min() < -LV_MAX[dtype] / 2 and lv.max() > LV_MAX[dtype] / 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_one_dimensional_input_agrees_bit_for_bit(dtype):
    mu, lv, sigma, eps, dz, _ = (a[0] for a in operands(1, 37, dtype, seed=7))
    for second in (dict(logvar=lv), dict(sigma=sigma)):
        got = {b: outputs(b, mu, lv, sigma, eps, dz, 1.5, "sigma" in second)
               for b in ("numba", "cython")}
        for k in got["numba"]:
            assert_same_bits(got["numba"][k], got["cython"][k], f"{k} (1-D, {list(second)[0]})")
