"""Hand-written NumPy expressions as the anchor of the VAE latent layer (used by tests and
benchmarks): what a practitioner writes without fasthw6, one temporary array per operation.

Each adapter has the signature of the public function (minus ``backend=``), for the log-variance
parameterisation on 2-D input (the shape the benchmark times).
"""
from __future__ import annotations

import numpy as np

from .._backend import register_anchor

NAME = "numpy expressions"


def latent_forward(mu, logvar, eps):
    std = np.exp(0.5 * logvar)
    z = mu + std * eps
    kl = 0.5 * np.sum(mu ** 2 + std ** 2 - logvar - 1, axis=1, dtype=np.float64)
    return z, kl


def latent_backward(dz, dkl, mu, logvar, eps):
    std = np.exp(0.5 * logvar)
    g = np.broadcast_to(np.asarray(dkl, np.float64), mu.shape[:1])[:, None].astype(mu.dtype)
    return dz + g * mu, 0.5 * dz * eps * std + 0.5 * g * (std ** 2 - 1)


@register_anchor("latent_forward", NAME)
def _forward():
    return latent_forward


@register_anchor("latent_backward", NAME)
def _backward():
    return latent_backward
