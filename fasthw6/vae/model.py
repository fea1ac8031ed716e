"""A small variational autoencoder built from :mod:`fasthw6.nn` layers (question 2).

Encoder MLP -> 2 * latent_dim outputs, split into mu and log sigma^2 (the document's "even
number of outputs divided into a mu vector and a sigma vector", with log-variance for the
reasons given in :mod:`fasthw6.vae.api`); z = mu + sigma * eps and the KL term from the fused
:func:`~fasthw6.vae.latent_forward`; decoder MLP -> pixel logits, sigmoid for probabilities.

Loss per sample, averaged over the batch: binary cross-entropy of the pixels (in [0, 1])
summed over pixels, plus ``beta`` times KL(N(mu, sigma^2) || N(0, I)) summed over latent
dimensions.  The reconstruction term is computed from the logits
(:func:`~fasthw6.nn.binary_cross_entropy_with_logits`), exact even where the sigmoid saturates.
"""
from __future__ import annotations

import numpy as np

from .._validate import as_float_array, as_int, check_dtype_arg
from ..nn.layers import MLP, _real
from ..nn.losses import binary_cross_entropy_with_logits, expit
from ..nn.optim import Adam
from .api import latent_backward, latent_forward

__all__ = ["VAE"]


class VAE:
    """Variational autoencoder with MLP encoder and decoder, trained with Adam.

    Parameters
    ----------
    n_features : int
        Input size (64 for the 8x8 digits).
    latent_dim : int
        Size of z; 2 allows a picture of the whole latent space.
    hidden : sequence of int
        Hidden sizes of the encoder; the decoder mirrors them.
    activation : {"relu", "sigmoid"}
        Hidden activation of both MLPs.
    beta : float >= 0
        Weight of the KL term (1: the standard evidence lower bound).
    rng : int, numpy.random.Generator or None
        Seeds the initial weights and, unless ``fit`` gets its own, the noise and batch order.
    dtype : float32 or float64
    backend : str, optional
        Kernel backend of the latent layer.

    Attributes
    ----------
    encoder, decoder : fasthw6.nn.MLP
    history_ : dict of lists
        After :meth:`fit`: per-epoch means of ``"loss"``, ``"reconstruction"`` and ``"kl"``.

    Examples
    --------
    >>> X = np.random.default_rng(0).uniform(size=(64, 6))
    >>> vae = VAE(6, latent_dim=2, hidden=(8,), rng=0).fit(X, epochs=20, batch_size=16)
    >>> vae.history_["loss"][-1] < vae.history_["loss"][0]
    True
    >>> vae.encode(X)[0].shape, vae.decode(np.zeros((3, 2))).shape, vae.sample(5).shape
    ((64, 2), (3, 6), (5, 6))
    """

    def __init__(self, n_features, latent_dim=2, hidden=(128,), *, activation="relu", beta=1.0,
                 rng=None, dtype=np.float64, backend=None):
        self.n_features = as_int(n_features, "n_features", 1)
        self.latent_dim = as_int(latent_dim, "latent_dim", 1)
        if isinstance(hidden, (str, bytes)) or not hasattr(hidden, "__len__"):
            raise TypeError(f"hidden must be a sequence of ints, got {type(hidden).__name__}")
        self.hidden = tuple(as_int(h, "hidden entry", 1) for h in hidden)
        self.beta = _real(beta, "beta", 0.0)
        self.dtype = check_dtype_arg(dtype)
        self.backend = backend
        self._rng = np.random.default_rng(rng)
        d = self.latent_dim
        self.encoder = MLP([self.n_features, *self.hidden, 2 * d], activation=activation,
                           rng=self._rng, dtype=self.dtype)
        self.decoder = MLP([d, *self.hidden[::-1], self.n_features], activation=activation,
                           rng=self._rng, dtype=self.dtype)
        self._cache = None
        self.history_ = None

    def __repr__(self):
        return (f"VAE(n_features={self.n_features}, latent_dim={self.latent_dim}, "
                f"hidden={self.hidden})")

    # ------------------------------------------------------------ parameters for optimizers

    def params(self):
        return self.encoder.params() + self.decoder.params()

    def grads(self):
        return self.encoder.grads() + self.decoder.grads()

    # ------------------------------------------------------------ validation

    def _data(self, X):
        X = as_float_array(X, "X", dtype=self.dtype, ndim=2)
        if X.shape[1] != self.n_features:
            raise ValueError(f"X must have {self.n_features} columns (n_features), got shape {X.shape}")
        if X.shape[0] == 0:
            raise ValueError("X must hold at least one sample")
        if X.min() < 0 or X.max() > 1:
            raise ValueError(f"X must lie in [0, 1] (the targets of a binary cross-entropy), found "
                             f"values in [{X.min()}, {X.max()}]: scale it, e.g. X / 16 for "
                             f"load_digits")
        return X

    def _latent(self, z, name="z"):
        z = as_float_array(z, name, dtype=self.dtype, ndim=2)
        if z.shape[1] != self.latent_dim:
            raise ValueError(f"{name} must have {self.latent_dim} columns (latent_dim), got shape {z.shape}")
        return z

    # ------------------------------------------------------------ training step

    def forward(self, X, eps=None):
        """Loss of a batch: ``(loss, reconstruction, kl)``, each a float averaged over samples.

        Parameters
        ----------
        X : array_like (N, n_features), values in [0, 1]
        eps : array_like (N, latent_dim), optional
            The reparameterisation noise; drawn from the model's generator when omitted.

        Call :meth:`backward` next for the gradients of ``loss``.
        """
        X = self._data(X)
        n, d = X.shape[0], self.latent_dim
        if eps is None:
            eps = self._rng.standard_normal((n, d))
        eps = self._latent(eps, "eps")
        if eps.shape[0] != n:
            raise ValueError(f"eps must have one row per sample of X ({n}), got {eps.shape[0]}")
        h = self.encoder.forward(X)
        mu, logvar = h[:, :d], h[:, d:]
        z, kl = latent_forward(mu, logvar, eps, backend=self.backend)
        logits = self.decoder.forward(z)
        rec, dlogits = binary_cross_entropy_with_logits(logits, X, reduction="batchmean")
        kl_mean = float(np.mean(kl))
        self._cache = (mu, logvar, eps, dlogits)
        return rec + self.beta * kl_mean, rec, kl_mean

    def backward(self):
        """Gradients of the last :meth:`forward`'s loss, written into :meth:`grads`."""
        if self._cache is None:
            raise RuntimeError("VAE.backward called before forward")
        mu, logvar, eps, dlogits = self._cache
        dz = self.decoder.backward(dlogits)
        # per-sample weights: latent_backward's scalar dkl is refused for N > 1 (its 0-d array
        # becomes 1-d in np.ascontiguousarray)
        dkl = np.full(mu.shape[0], self.beta / mu.shape[0])
        dmu, dlogvar = latent_backward(dz, dkl, mu, logvar, eps, backend=self.backend)
        self.encoder.backward(np.concatenate([dmu, dlogvar], axis=1))

    def fit(self, X, epochs=100, batch_size=64, lr=1e-3, *, rng=None, verbose=False):
        """Train with Adam on shuffled mini-batches; a fresh Adam state per call.

        Parameters
        ----------
        X : array_like (N, n_features), values in [0, 1]
        epochs, batch_size : int >= 1
        lr : float > 0
        rng : int, numpy.random.Generator or None
            Batch order and noise; default the model's own generator.
        verbose : bool
            Print the losses every tenth of the run.

        Returns
        -------
        self
        """
        X = self._data(X)
        epochs = as_int(epochs, "epochs", 1)
        batch_size = as_int(batch_size, "batch_size", 1)
        gen = self._rng if rng is None else np.random.default_rng(rng)
        opt = Adam(self, lr=lr)
        n, d = X.shape[0], self.latent_dim
        self.history_ = {"loss": [], "reconstruction": [], "kl": []}
        self.encoder.train()
        self.decoder.train()
        for epoch in range(epochs):
            perm = gen.permutation(n)
            tot = np.zeros(3)
            for s in range(0, n, batch_size):
                idx = perm[s:s + batch_size]
                eps = gen.standard_normal((len(idx), d))
                tot += len(idx) * np.array(self.forward(X[idx], eps))
                self.backward()
                opt.step()
            tot /= n
            for k, v in zip(("loss", "reconstruction", "kl"), tot):
                self.history_[k].append(float(v))
            if verbose and (epoch + 1) % max(1, epochs // 10) == 0:
                print(f"epoch {epoch + 1:4d}: loss {tot[0]:.3f} (reconstruction {tot[1]:.3f}, "
                      f"KL {tot[2]:.3f})")
        return self

    # ------------------------------------------------------------ inference

    def encode(self, X):
        """The posterior's parameters ``(mu, logvar)``, each (N, latent_dim), for X in [0, 1]."""
        h = self.encoder.eval().forward(self._data(X))
        self.encoder.train()
        d = self.latent_dim
        return h[:, :d].copy(), h[:, d:].copy()

    def decode(self, z):
        """Pixel probabilities sigmoid(decoder(z)), shape (N, n_features)."""
        logits = self.decoder.eval().forward(self._latent(z))
        self.decoder.train()
        return expit(logits)

    def reconstruct(self, X):
        """decode(mu): the reconstruction at the posterior mean (no noise)."""
        return self.decode(self.encode(X)[0])

    def sample(self, n, rng=None):
        """Decode ``n`` draws of z ~ N(0, I); ``rng`` defaults to the model's generator."""
        n = as_int(n, "n", 1)
        gen = self._rng if rng is None else np.random.default_rng(rng)
        return self.decode(gen.standard_normal((n, self.latent_dim)))
