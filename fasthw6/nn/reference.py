"""Batch normalisation in plain NumPy (backend ``"numpy"``): the formulas of question 1, in float64.

Same kernel names and signatures as ``_numba`` / ``_cython``.  The minibatch mean is
mu = (1/m) sum z and the variance sigma^2 = (1/m) sum (z - mu)^2 (two passes), then
y = gamma * (z - mu) / sqrt(sigma^2 + eps) + beta.  ``rows`` and ``slices`` (how the compiled
kernels chunk the work) are accepted and ignored.
"""
from __future__ import annotations

import numpy as np


def _forward(x, axes, gamma, beta, eps, batch_stats, mean, var, y, shape):
    xf = x.astype(np.float64)
    # an overflowing statistic is not warned about here: the API checks them and says why
    with np.errstate(over="ignore", invalid="ignore"):
        if batch_stats:
            mu = xf.mean(axis=axes)
            mean[:] = mu
            var[:] = ((xf - mu.reshape(shape)) ** 2).mean(axis=axes)
        xhat = (xf - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps)
        y[...] = gamma.reshape(shape) * xhat + beta.reshape(shape)
    return y


def _backward(dy, x, axes, gamma, mean, var, eps, batch_stats, dx, dgamma, dbeta, shape):
    g = dy.astype(np.float64)
    m = x.size // gamma.size
    istd = 1.0 / np.sqrt(var + eps)
    xhat = (x.astype(np.float64) - mean.reshape(shape)) * istd.reshape(shape)
    dbeta[:] = g.sum(axis=axes)
    dgamma[:] = (g * xhat).sum(axis=axes)
    dxhat = g * gamma.reshape(shape)
    if batch_stats:
        # d/dz of gamma * (z - mu) / sigma, with mu and sigma functions of the whole minibatch
        dx[...] = istd.reshape(shape) / m * (
            m * dxhat - dxhat.sum(axis=axes).reshape(shape)
            - xhat * (dxhat * xhat).sum(axis=axes).reshape(shape)
        )
    else:
        dx[...] = dxhat * istd.reshape(shape)
    return dx


def batchnorm_forward_4d(x, gamma, beta, eps, batch_stats, mean, var, y, stream):
    return _forward(x, (0, 2), gamma, beta, eps, batch_stats, mean, var, y, (1, -1, 1))


def batchnorm_backward_4d(dy, x, gamma, mean, var, eps, batch_stats, dx, dgamma, dbeta, stream):
    return _backward(dy, x, (0, 2), gamma, mean, var, eps, batch_stats, dx, dgamma, dbeta,
                     (1, -1, 1))


def n_threads():
    return 1


def batchnorm_forward_2d(x, gamma, beta, eps, batch_stats, mean, var, y, rows, slices, stream):
    return _forward(x, 0, gamma, beta, eps, batch_stats, mean, var, y, (1, -1))


def batchnorm_backward_2d(dy, x, gamma, mean, var, eps, batch_stats, dx, dgamma, dbeta, slices,
                          stream):
    return _backward(dy, x, 0, gamma, mean, var, eps, batch_stats, dx, dgamma, dbeta, (1, -1))
