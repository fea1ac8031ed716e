"""VAE latent layer: z, per-sample KL and both gradients at (65536, 256), fused kernels against
the plain NumPy expressions.  Work is elements processed (N * D) per forward + backward.

The implementations are the comparisons registry's (``fasthw6._backend.comparisons``): every
backend of ``latent_forward`` / ``latent_backward``, then every anchor registered for both.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

import fasthw6.vae as vae
from bench.conftest import batch
from fasthw6._backend import comparisons
from fasthw6.vae._anchors import NAME as NUMPY_EXPRESSIONS

N, D = batch(65536), 256  # quick: 1310 rows


@functools.lru_cache(maxsize=1)  # one dtype at a time (the cases run in turn)
def operands(dtype):
    rng = np.random.default_rng(6)
    mu, lv, eps, dz = (rng.standard_normal((N, D)).astype(dtype) for _ in range(4))
    return mu, lv, eps, dz, np.full(N, 0.5)


def _pairs():
    fwd = comparisons("latent_forward", vae.latent_forward)
    bwd = comparisons("latent_backward", vae.latent_backward)
    out = {}
    for name in fwd:
        f, b = fwd[name], bwd.get(name)
        if f is None or b is None:
            out[name] = None
            continue

        def run(mu, lv, eps, dz, gkl, f=f, b=b):
            z, kl = f(mu, lv, eps)
            dmu, dlv = b(dz, gkl, mu, lv, eps)
            return z, kl, dmu, dlv
        out[name] = run
    return out


IMPLS = _pairs()


@functools.lru_cache(maxsize=1)  # one dtype at a time (the cases run in turn)
def expected(dtype):
    """The NumPy expressions in float64: the reference every implementation is checked against."""
    args = [a.astype(np.float64) for a in operands(np.dtype(dtype))]
    return IMPLS[NUMPY_EXPRESSIONS](*args)


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_kl_reparameterize_grads(measure, dtype, impl):
    fn = IMPLS[impl]
    if fn is None:
        pytest.skip(f"{impl} not available")
    args = operands(np.dtype(dtype))
    ref = expected(dtype)
    rtol = 1e-5 if dtype == "float32" else 1e-12

    def check(out):
        for o, r in zip(out, ref):
            np.testing.assert_allclose(o, r, rtol=rtol, atol=rtol * 10)

    measure(lambda: fn(*args), group=f"KL + reparameterize + grads {dtype}", case=f"({N}, {D})",
            impl=impl, work=N * D, unit="elem/s", baseline=NUMPY_EXPRESSIONS, check=check,
            rounds=2 if impl == "numpy" else None)
