"""The VAE latent layer in plain NumPy (backend ``"numpy"``): the document's formulas as written.

KL = 1/2 sum_j (mu_j^2 + sigma_j^2 - log sigma_j^2 - 1);  z = mu + sigma * eps.
Same kernel names and signatures as ``_numba`` / ``_cython``; ``lowp`` is ignored (np.exp).
"""
from __future__ import annotations

import numpy as np


def _sigma(v, sig):
    v = v.astype(np.float64)
    return v if sig else np.exp(0.5 * v)


def latent_forward(mu, v, eps, sig, lowp, z, kl, chk):
    s = _sigma(v, sig)
    m = mu.astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):  # reported through chk, as the kernels do
        z[...] = m + s * eps
        chk[:] = np.sum(0.0 * z.astype(np.float64), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):  # sigma <= 0: a non-finite KL, reported
        logvar = 2.0 * np.log(s) if sig else v.astype(np.float64)
    kl[:] = 0.5 * np.sum(m ** 2 + s ** 2 - logvar - 1.0 + 0.0 * eps, axis=1)
    return kl


def latent_backward(dz, gkl, mu, v, eps, sig, lowp, dmu, dv, chk):
    s = _sigma(v, sig)
    g = gkl[:, None]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # reported through chk
        dmu[...] = dz + g * mu
        if sig:
            dv[...] = dz * eps + g * (s - 1.0 / s)
        else:
            dv[...] = 0.5 * (dz * eps * s + g * (s ** 2 - 1.0))
        chk[:] = np.sum(0.0 * (dmu.astype(np.float64) + dv), axis=1)
        if sig:
            chk[~(s > 0).all(axis=1)] = np.nan
    return dmu
