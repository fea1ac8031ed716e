"""VAE latent layer: z, per-sample KL and both gradients at (65536, 256), fused kernels against
the plain NumPy expressions.  Work is elements processed (N * D) per forward + backward.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

import fasthw6.vae as vae
from fasthw6._backend import available_backends

N, D = 65536, 256


@functools.lru_cache(maxsize=None)
def operands(dtype):
    rng = np.random.default_rng(6)
    mu, lv, eps, dz = (rng.standard_normal((N, D)).astype(dtype) for _ in range(4))
    return mu, lv, eps, dz, np.full(N, 0.5)


def numpy_expressions(mu, lv, eps, dz, gkl):
    std = np.exp(0.5 * lv)
    z = mu + std * eps
    kl = 0.5 * np.sum(mu ** 2 + std ** 2 - lv - 1, axis=1, dtype=np.float64)
    g = gkl[:, None].astype(mu.dtype)
    return z, kl, dz + g * mu, 0.5 * dz * eps * std + 0.5 * g * (std ** 2 - 1)


def fused(backend):
    def run(mu, lv, eps, dz, gkl):
        z, kl = vae.latent_forward(mu, lv, eps, backend=backend)
        dmu, dlv = vae.latent_backward(dz, gkl, mu, lv, eps, backend=backend)
        return z, kl, dmu, dlv
    return run


IMPLS = {b: fused(b) for b in available_backends()}
IMPLS["numpy expressions"] = numpy_expressions


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kl_reparameterize_grads(measure, dtype, impl):
    args = operands(np.dtype(dtype))
    ref = [a.astype(np.float64) if a.dtype != np.float64 else a for a in numpy_expressions(*args)]
    rtol = 1e-5 if dtype == "float32" else 1e-12

    def check(out):
        for o, r in zip(out, ref):
            np.testing.assert_allclose(o, r, rtol=rtol, atol=rtol * 10)

    fn = IMPLS[impl]
    measure(lambda: fn(*args), group=f"KL + reparameterize + grads {dtype}", case=f"({N}, {D})",
            impl=impl, work=N * D, unit="elem/s", baseline="numpy expressions", check=check,
            rounds=2 if impl == "numpy" else None)
