"""The VAE's latent layer (question 2): KL loss, reparameterisation and their gradients.

The document parameterises the encoder's second output as sigma.  The default here is the
log-variance lv = log sigma^2, the usual choice in practice: the encoder's output may be any real
number (sigma must stay positive), log sigma^2 enters the KL directly instead of through a log of
a value that can underflow to 0, and exp(lv / 2) cannot produce a negative or zero sigma.  Pass
``sigma=`` instead of ``logvar`` for the document's parameterisation.

Every array is checked through the kernels' own per-row sums: a NaN/inf in mu, logvar, sigma or
eps (or a variance that overflows) makes that row's KL non-finite, which is reported naming the
inputs; no separate pass over the data.  Outputs are checked the same way, on the value as stored
in the output dtype: a z or a gradient that overflows (float32 always rounds from float64 locals)
raises ValueError on every backend, never a silent inf.
"""
from __future__ import annotations

import numpy as np

from . import _anchors  # noqa: F401  (registers the anchors of these functions)
from .._backend import get_kernel
from .._validate import as_float_array, result_dtype


def _second(logvar, sigma):
    if (logvar is None) == (sigma is None):
        raise TypeError("pass exactly one of logvar (the default parameterisation) or sigma=")
    return (sigma, True) if logvar is None else (logvar, False)


def _arrays(mu, second, sig, eps=None, dz=None):
    arrs = [mu, second] + [a for a in (eps, dz) if a is not None]
    dt = result_dtype(*arrs)
    vname = "sigma" if sig else "logvar"
    mu = as_float_array(mu, "mu", dtype=dt, ndim=(1, 2), finite=False)
    one = mu.ndim == 1
    if one:
        mu = mu[None]
    out = [mu]
    for a, name in ((second, vname), (eps, "eps"), (dz, "dz")):
        if a is None:
            out.append(None)
            continue
        a = as_float_array(a, name, dtype=dt, ndim=(1, 2), finite=False)
        a = a[None] if a.ndim == 1 else a
        if a.shape != mu.shape:
            raise ValueError(f"{name} must have the shape of mu, {mu.shape if not one else mu.shape[1:]}, "
                             f"got {a.shape if not one else a.shape[1:]}")
        out.append(a)
    if mu.size == 0:
        raise ValueError(f"mu must not be empty, got shape {mu.shape}")
    return out, one, dt


def _forward(mu, v, eps, sig, backend, want_z=True):
    z = np.empty_like(mu)
    kl = np.empty(mu.shape[0])
    chk = np.empty(mu.shape[0])
    get_kernel("vae", "latent_forward", backend)(mu, v, eps, sig, mu.dtype == np.float32, z, kl, chk)
    bad = ~np.isfinite(kl)
    if bad.any():
        i = int(np.argmax(bad))
        what = ("mu, sigma or eps must be finite and sigma > 0" if sig else
                "mu, logvar and eps must be finite and exp(logvar) must not overflow")
        raise ValueError(f"{what}: row {i} gives a KL of {kl[i]}")
    if want_z:
        bad = ~np.isfinite(chk)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"z = mu + {'sigma' if sig else 'exp(logvar / 2)'} * eps overflows "
                             f"{mu.dtype} in row {i} (mu, {'sigma' if sig else 'logvar'} and eps "
                             f"are finite, but their z is not representable)")
    return z, kl


def _backward(dz, gkl, mu, v, eps, sig, backend):
    dmu = np.empty_like(mu)
    dv = np.empty_like(mu)
    chk = np.empty(mu.shape[0])
    get_kernel("vae", "latent_backward", backend)(dz, gkl, mu, v, eps, sig,
                                                  mu.dtype == np.float32, dmu, dv, chk)
    bad = ~np.isfinite(chk)
    if bad.any():
        i = int(np.argmax(bad))
        if sig and not (v[i] > 0).all():
            j = int(np.argmin(v[i] > 0))
            raise ValueError(f"sigma must be finite and > 0, as in the forward pass: row {i} "
                             f"holds sigma = {v[i, j]}")
        raise ValueError(f"gradient of row {i} is not finite in {mu.dtype}: dz, "
                         f"dkl, mu, {'sigma' if sig else 'logvar'} and eps must be finite and the "
                         f"gradient must not overflow")
    return dmu, dv


def _gkl(dkl, n):
    if dkl is None:
        return np.ones(n)
    g = as_float_array(dkl, "dkl", dtype=np.float64, ndim=(0, 1))
    if g.ndim == 0:
        return np.full(n, float(g))
    if g.shape[0] != n:
        raise ValueError(f"dkl must be a scalar or have one entry per sample ({n}), got {g.shape[0]}")
    return g


def latent_forward(mu, logvar=None, eps=None, *, sigma=None, backend=None):
    """z = mu + sigma * eps and the per-sample KL divergence, in one pass.

    Parameters
    ----------
    mu : array_like, shape (N, D) or (D,)
    logvar : array_like, same shape
        log sigma^2 (default parameterisation); or pass ``sigma=`` instead.
    eps : array_like, same shape
        Standard-normal noise.
    backend : str, optional

    Returns
    -------
    z : ndarray, shape and dtype of mu
    kl : ndarray (N,) float64, or a float for 1-D input

    Examples
    --------
    >>> z, kl = latent_forward([0.0, 1.0], [0.0, 0.0], [1.0, 1.0])
    >>> z.tolist(), kl
    ([1.0, 2.0], 0.5)
    """
    v, sig = _second(logvar, sigma)
    if eps is None:
        raise TypeError("eps is required (draw it with np.random.default_rng().standard_normal)")
    (mu, v, eps, _), one, _ = _arrays(mu, v, sig, eps)
    z, kl = _forward(mu, v, eps, sig, backend)
    return (z[0], float(kl[0])) if one else (z, kl)


def latent_backward(dz, dkl, mu, logvar=None, eps=None, *, sigma=None, backend=None):
    """Gradients of sum(dz * z) + sum(dkl * kl) with respect to mu and logvar (or sigma).

    Parameters
    ----------
    dz : array_like, shape of mu
        Gradient of the loss with respect to z.
    dkl : float or array_like (N,), optional
        Weight of each sample's KL in the loss (default 1).
    mu, logvar, eps, sigma : as :func:`latent_forward`.

    Returns
    -------
    dmu, dlogvar : ndarray, shape and dtype of mu (dsigma when ``sigma=`` was given)

    Examples
    --------
    >>> dmu, dlv = latent_backward([1.0], 1.0, [2.0], [0.0], [0.5])
    >>> dmu.tolist(), dlv.tolist()
    ([3.0], [0.25])
    """
    v, sig = _second(logvar, sigma)
    if eps is None:
        raise TypeError("eps is required: the same noise the forward pass used")
    (mu, v, eps, dz), one, _ = _arrays(mu, v, sig, eps, dz)
    dmu, dv = _backward(dz, _gkl(dkl, mu.shape[0]), mu, v, eps, sig, backend)
    return (dmu[0], dv[0]) if one else (dmu, dv)


def kl_divergence(mu, logvar=None, *, sigma=None, backend=None):
    """KL(N(mu, sigma^2) || N(0, I)) per sample: 1/2 sum_j (mu^2 + sigma^2 - log sigma^2 - 1).

    Parameters
    ----------
    mu : array_like, shape (N, D) or (D,)
    logvar : array_like, same shape
        log sigma^2; or ``sigma=`` (the document's parameterisation, sigma > 0).
    backend : str, optional

    Returns
    -------
    ndarray (N,) float64 (accumulated in float64), or a float for 1-D input

    Raises
    ------
    TypeError
        Neither or both of logvar / sigma given.
    ValueError
        Shape mismatch, NaN/inf, sigma <= 0.

    Examples
    --------
    >>> kl_divergence([0.0, 0.0], [0.0, 0.0])
    0.0
    >>> kl_divergence([1.0], sigma=[1.0])
    0.5
    """
    v, sig = _second(logvar, sigma)
    (mu, v, _, _), one, _ = _arrays(mu, v, sig)
    _, kl = _forward(mu, v, mu, sig, backend, want_z=False)
    return float(kl[0]) if one else kl


def kl_divergence_grad(mu, logvar=None, *, sigma=None, dkl=None, backend=None):
    """Gradient of sum(dkl * KL) (default dkl = 1): (mu, (exp(logvar) - 1) / 2) scaled by dkl.

    With ``sigma=``, the second output is d/dsigma = sigma - 1/sigma.

    Examples
    --------
    >>> dmu, dlv = kl_divergence_grad([[1.0, -2.0]], [[0.0, np.log(3.0)]])
    >>> dmu.tolist(), np.round(dlv, 12).tolist()
    ([[1.0, -2.0]], [[0.0, 1.0]])
    """
    v, sig = _second(logvar, sigma)
    (mu, v, _, _), one, _ = _arrays(mu, v, sig)
    zero = np.zeros_like(mu)
    dmu, dv = _backward(zero, _gkl(dkl, mu.shape[0]), mu, v, zero, sig, backend)
    return (dmu[0], dv[0]) if one else (dmu, dv)


def reparameterize(mu, logvar=None, eps=None, *, sigma=None, rng=None, backend=None):
    """z = mu + exp(logvar / 2) * eps (or mu + sigma * eps): a sample of N(mu, sigma^2) that is
    a differentiable function of mu and logvar, so gradients flow through the sampling.

    Parameters
    ----------
    mu, logvar : array_like, shape (N, D) or (D,)
    eps : array_like, optional
        The noise; drawn from ``np.random.default_rng(rng)`` when omitted (keep it for the
        backward pass: see :func:`reparameterize_backward`).

    Returns
    -------
    ndarray, shape and dtype of mu

    Examples
    --------
    >>> reparameterize([1.0, 0.0], [0.0, np.log(4.0)], [2.0, 1.0]).round(12).tolist()
    [3.0, 2.0]
    """
    v, sig = _second(logvar, sigma)
    if eps is None:
        shape = np.shape(mu)
        eps = np.random.default_rng(rng).standard_normal(shape).astype(result_dtype(mu, v))
    (mu, v, eps, _), one, _ = _arrays(mu, v, sig, eps)
    z, _ = _forward(mu, v, eps, sig, backend)
    return z[0] if one else z


def reparameterize_backward(dz, mu, logvar=None, eps=None, *, sigma=None, backend=None):
    """Gradients of sum(dz * z) for z = reparameterize(mu, logvar, eps): (dz, dz * eps * sigma / 2).

    With ``sigma=``: (dz, dz * eps).

    Examples
    --------
    >>> dmu, dlv = reparameterize_backward([1.0], [0.0], [np.log(4.0)], [3.0])
    >>> dmu.tolist(), dlv.round(12).tolist()
    ([1.0], [3.0])
    """
    v, sig = _second(logvar, sigma)
    if eps is None:
        raise TypeError("eps is required: the noise the forward pass used")
    (mu, v, eps, dz), one, _ = _arrays(mu, v, sig, eps, dz)
    dmu, dv = _backward(dz, np.zeros(mu.shape[0]), mu, v, eps, sig, backend)
    return (dmu[0], dv[0]) if one else (dmu, dv)
