"""``GaussianHMM``: a drop-in for hmmlearn 0.3's, the Gaussian room of the HMM engine.

Emission log-likelihoods and the M-step's weighted sums come from fused compiled kernels or
kernel-built features times BLAS products, over all frames and all states (``_gaussian``); the
chain runs on the framewise kernels (``frames``).
"""
from __future__ import annotations

import numpy as np

from . import _gaussian as G
from ._base import COMMON_PARAMS, BaseHMM, check_prior, require
from ._checks import NotFittedError, _offsets, check_real
from ._sizes import SMALL_MAX_N

_PARAM_NAMES = COMMON_PARAMS + ("covariance_type", "min_covar", "means_prior", "means_weight",
                                "covars_prior", "covars_weight")


def check_matrix(X, n_features, name, kind="real numbers"):
    """X as an array of real numbers of shape (n_samples, n_features) (any real dtype, not yet
    converted): TypeError for other dtypes (``kind`` says what was expected), ValueError for
    another shape or feature count.  Shared by every frames-reading model."""
    arr = np.asarray(X)
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.floating)
                                     or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must hold {kind}, got {arr.dtype}")
    if arr.ndim != 2:
        hint = " (one feature: X.reshape(-1, 1))" if arr.ndim == 1 else ""
        raise ValueError(f"{name} must have shape (n_samples, n_features), got {arr.shape}{hint}")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features per sample but the model has "
                         f"n_features={n_features}")
    return arr


def check_features(X, n_features=None, name="X", values=True):
    """X as a C-contiguous float64 (n_samples, n_features) array of finite values (unchecked
    without ``values``)."""
    arr = np.ascontiguousarray(check_matrix(X, n_features, name), dtype=np.float64)
    if not values:
        return arr
    # a NaN or inf makes the sum NaN or inf (one pass, no mask array); only then, or when
    # finite values overflow it, the elementwise check finds which
    with np.errstate(over="ignore", invalid="ignore"):
        suspect = not np.isfinite(np.add.reduce(arr, axis=None))
    if suspect and not np.isfinite(arr).all():
        r, c = (int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(f"{name}[{r}, {c}] is {arr[r, c]}: features must be finite")
    return arr


def data_unchecked(model, X, lengths):
    """``_data_unchecked`` of the rooms reading real features (``GaussianHMM``, ``GMMHMM``):
    shape and feature count checked, the values left to ``BaseHMM._evaluate``."""
    x = check_features(X, model._n_dims(), values=False)
    return x, _offsets(lengths, x.shape[0])


class GaussianHMM(BaseHMM):
    """Hidden Markov model with Gaussian emissions; a drop-in for hmmlearn 0.3's ``GaussianHMM``.

    Same constructor, attributes and methods as ``hmmlearn.hmm.GaussianHMM`` (the draws of
    ``fit``'s initialisation and of ``sample`` are hmmlearn's for a given seed), with the chain
    on fasthw6's batched kernels, plus ``dtype``, ``backend``, :meth:`score_sequences`,
    :meth:`save` and :meth:`load`.

    Parameters
    ----------
    n_components : int
        Number of states.
    covariance_type : {"diag", "spherical", "full", "tied"}
        One variance per state ("spherical"), per state and feature ("diag"), a full matrix per
        state ("full") or one full matrix for all states ("tied").
    min_covar : float
        Added to the diagonal of the data's covariance when initialising, and the floor of
        every variance (eigenvalue, for full matrices) after each M-step.
    startprob_prior, transmat_prior : float or array_like
        Dirichlet priors of the chain, as in ``CategoricalHMM``.
    means_prior, means_weight : float or array_like
        Mean and precision of the Normal prior on ``means_``.
    covars_prior, covars_weight : float or array_like
        Parameters of the inverse-gamma (diag, spherical) or inverse-Wishart (full, tied) prior
        on the covariances, as hmmlearn applies them.
    algorithm, random_state, n_iter, tol, verbose, implementation, dtype, backend
        As for ``CategoricalHMM``.
    params, init_params : str
        ``s`` startprob, ``t`` transmat, ``m`` means, ``c`` covars.  Means start from k-means
        (scikit-learn's, with hmmlearn's seed), covariances from the data's covariance.

    Attributes
    ----------
    n_features : int
    startprob_, transmat_ : ndarray
    means_ : ndarray, shape (n_components, n_features)
    covars_ : ndarray, shape (n_components, n_features, n_features)
        Full matrices whatever the covariance type (hmmlearn's property); the compact form
        (hmmlearn's shapes per type) is ``_covars_``, and the setter takes that form.
    monitor_ : ConvergenceMonitor

    Notes
    -----
    EM never produces NaN: a state with no expected occupancy keeps its mean and covariance,
    and every variance is floored at ``min_covar``.  Each frame's log-likelihoods are shifted by
    their maximum before the forward pass, so outliers far from every state do not underflow.

    Examples
    --------
    >>> import numpy as np
    >>> m = GaussianHMM(2, "diag", init_params="")
    >>> m.startprob_ = np.array([0.5, 0.5])
    >>> m.transmat_ = np.array([[0.9, 0.1], [0.1, 0.9]])
    >>> m.means_ = np.array([[0.0], [10.0]])
    >>> m.covars_ = np.array([[1.0], [1.0]])
    >>> m.predict(np.array([[0.1], [9.5], [10.2], [-0.3]])).tolist()
    [0, 1, 1, 0]
    """

    _TYPE = "gaussian"
    _PARAM_NAMES = _PARAM_NAMES
    _EMISSION_LETTERS = "mc"
    _EMISSION_ATTRS = ("means_", "covars_")

    def __init__(self, n_components=1, covariance_type="diag", min_covar=1e-3,
                 startprob_prior=1.0, transmat_prior=1.0, means_prior=0, means_weight=0,
                 covars_prior=1e-2, covars_weight=1, algorithm="viterbi", random_state=None,
                 n_iter=10, tol=1e-2, verbose=False, params="stmc", init_params="stmc",
                 implementation="log", dtype=np.float64, backend=None):
        self._common_init(n_components, startprob_prior, transmat_prior, algorithm,
                          random_state, n_iter, tol, verbose, params, init_params,
                          implementation, dtype, backend)
        self.covariance_type = covariance_type
        self.min_covar = min_covar
        self.means_prior = means_prior
        self.means_weight = means_weight
        self.covars_prior = covars_prior
        self.covars_weight = covars_weight

    # ----------------------------------------------------------------- parameters
    @property
    def covars_(self):
        """Covariance matrices, (n_components, n_features, n_features), whatever the type."""
        if not hasattr(self, "_covars_"):
            raise AttributeError("covars_ is not set: call fit(X) or set it")
        kind = G.check_covariance_type(self.covariance_type)
        return G.full_covars(self._covars_, kind, self._check_n_components(), self._n_dims())

    @covars_.setter
    def covars_(self, covars):
        kind = G.check_covariance_type(self.covariance_type)
        cv = np.array(check_real(covars, "covars_"), dtype=np.float64)
        if kind == "spherical" and cv.size == self.n_components:
            cv = cv.reshape(-1)
        self._covars_ = cv

    def _n_dims(self):
        n = getattr(self, "n_features", None)
        if n is not None:
            return int(n)
        if hasattr(self, "means_"):
            return np.atleast_2d(np.asarray(self.means_)).shape[1]
        raise NotFittedError("n_features is unknown: set means_ first")

    def _check_emissions(self):
        kind = G.check_covariance_type(self.covariance_type)
        n = self._check_n_components()
        means = np.asarray(check_real(self.means_, "means_"), dtype=np.float64)
        if means.ndim != 2 or means.shape[0] != n or means.shape[1] < 1:
            raise ValueError(f"means_ must have shape ({n}, n_features), got {means.shape}")
        if not np.isfinite(means).all():
            raise ValueError("means_ must be finite")
        D = means.shape[1]
        self.means_ = means
        self.n_features = D
        self._covars_ = G.check_covars(self._covars_, kind, n, D)

    def _n_fit_scalars_per_param(self):
        per = super()._n_fit_scalars_per_param()
        n, D = self._check_n_components(), self._n_dims()
        per["m"] = n * D
        per["c"] = {"spherical": n, "diag": n * D, "full": n * D * (D + 1) // 2,
                    "tied": D * (D + 1) // 2}[G.check_covariance_type(self.covariance_type)]
        return per

    # ----------------------------------------------------------------- the engine's hooks
    def _data(self, X, lengths, fitting=False):
        known = None if fitting else self._n_dims()
        x = check_features(X, known)
        if fitting and hasattr(self, "means_") and "m" not in self.init_params:
            D = np.atleast_2d(np.asarray(self.means_)).shape[1]
            if x.shape[1] != D:
                raise ValueError(f"X has {x.shape[1]} features per sample but means_ has {D}")
        if fitting:
            self.n_features = x.shape[1]
        return x, _offsets(lengths, x.shape[0])

    _data_unchecked = data_unchecked

    def _log_frames(self, X):
        return G.log_density(X, self.means_, self._covars_, self.covariance_type,
                             self._backend())

    def _scaled_frames(self, X, dtype):  # float64; the table kernels' operands take dtype
        if self.covariance_type in ("diag", "spherical"):
            return G.diag_frames(X, self.means_, self._covars_, self.covariance_type, True,
                                 self._backend())
        if G.full_kernel(*self.means_.shape):
            return G.full_frames(X, self.means_, self._covars_, self.covariance_type, True,
                                 self._backend())
        return super()._scaled_frames(X, dtype)

    def _scores_log_frames(self, n_states):
        # (diag in float64 scores in one fused kernel where ``fused_score`` says so, not
        # through here.)  Up to SMALL_MAX_N states the lockstep kernel scales each step's log
        # frames across its lanes in vector loops, and from 32 on the scaling is a small part
        # of a step: there the log frames measured faster; between, the GEMM lanes scale row
        # by row, and the table of scaled frames (the fused kernel's, or one NumPy pass)
        # measured faster.  numba, one thread, 2000 x 500 frames, in chunks, log frames ->
        # scaled table: diag N=3 D=4 17.4-18.1 -> 19.8-20.1 ms; full N=3 D=16 57-59 -> 61-62,
        # N=12 D=4 98-103 -> 80, N=16 D=4 114-120 -> 99-101, D=16 296-311 -> 277-280, N=32
        # D=4 198-216 -> 243-258
        return not SMALL_MAX_N < n_states < 32

    def _fused_score(self, X, off, sp, tm, dtype, backend):
        if self.covariance_type in ("diag", "spherical") and np.dtype(dtype) == np.float64 \
                and G.fused_score(sp.shape[0], X.shape[1]):
            return G.score_diag(X, self.means_, self._covars_, self.covariance_type, sp, tm,
                                off, backend)
        return None

    def _fused_viterbi(self, X, off, sp, tm, backend):
        if self.covariance_type in ("diag", "spherical") \
                and G.fused_viterbi(sp.shape[0], X.shape[1]):
            return G.viterbi_diag(X, self.means_, self._covars_, self.covariance_type, sp, tm,
                                  off, backend)
        return None

    def _sample_from_state(self, state, random_state):
        return random_state.multivariate_normal(self.means_[state], self.covars_[state])

    # ----------------------------------------------------------------- training
    def _init(self, X, lengths=None):
        """hmmlearn's initialisation (kept under its name for code that calls it)."""
        x, _ = self._data(X, lengths, fitting=True)
        self._init_chain(x.size)
        self._init_emissions(x)

    def _init_emissions(self, X):
        kind = G.check_covariance_type(self.covariance_type)
        n = self._check_n_components()
        self.n_features = X.shape[1]
        if self._needs_init("m", "means_"):
            if X.shape[0] < n:
                raise ValueError(f"X has {X.shape[0]} samples, fewer than n_components={n}: "
                                 f"k-means cannot place the initial means")
            from sklearn.cluster import KMeans  # noqa: PLC0415  (only to initialise)

            km = KMeans(n_clusters=n, random_state=self.random_state, n_init=10)
            self.means_ = km.fit(X).cluster_centers_
        if self._needs_init("c", "covars_"):
            D = X.shape[1]
            cv = np.atleast_2d(np.cov(X.T)) if X.shape[0] > 1 else np.zeros((D, D))
            cv = cv + float(self.min_covar) * np.eye(D)
            if kind == "spherical":
                self._covars_ = np.full(n, max(cv.mean(), float(self.min_covar)))
            elif kind == "diag":
                self._covars_ = np.tile(np.diag(cv), (n, 1))
            elif kind == "tied":
                self._covars_ = cv
            else:
                self._covars_ = np.tile(cv, (n, 1, 1))

    def _check_emission_priors(self):
        n, D = self._check_n_components(), self._n_dims()
        kind = self.covariance_type
        mc = float(self.min_covar)
        if not np.isfinite(mc) or mc <= 0:
            raise ValueError(f"min_covar must be a positive number, got {self.min_covar!r}")
        self._priors = dict(
            means_prior=check_prior(self.means_prior, "means_prior", (n, D)),
            means_weight=_per_state(check_prior(self.means_weight, "means_weight", (n,))
                                    if np.ndim(self.means_weight) <= 1 else
                                    check_prior(self.means_weight, "means_weight", (n, D)), n),
            covars_prior=check_prior(self.covars_prior, "covars_prior",
                                     G.compact_shape("full" if kind in ("full", "tied") else "diag",
                                                     n, D) if kind != "tied" else (D, D)),
            covars_weight=np.broadcast_to(check_prior(self.covars_weight, "covars_weight", (n,)),
                                          (n,)))

    def _centre(self):
        """What the moments are centred on (their terms stay small): the mean of the current
        means, so every batch of one E-step uses the same."""
        return self.means_.mean(axis=0)

    def _emission_sums(self, X, stats):
        """Σγ, Σγy and Σγy² (diag, spherical) or Σγyyᵀ (full, tied) of each state, with
        y = x - ``_centre()``."""
        if not ("m" in self.params or "c" in self.params):
            return {}
        gamma = stats["gamma"]
        c = self._centre()
        kind = "diag" if self.covariance_type in ("diag", "spherical") else "full"
        post, obs, sq = G.moments(X, gamma, kind, c, self._backend())
        return dict(post=post, obs=obs, sq=sq)

    def _mstep_emissions(self, sums):
        want_m, want_c = "m" in self.params, "c" in self.params
        if not (want_m or want_c):
            return
        kind = self.covariance_type
        n, D = self.means_.shape
        P = self._priors
        c = self._centre()  # the E-step's centre: the means have not changed since
        post, obs, sq = sums["post"], sums["obs"], sums["sq"]
        seen = post > 0  # a state no frame visits keeps its parameters
        mp = np.broadcast_to(P["means_prior"], (n, D)) - c
        mw = P["means_weight"]
        mu = self.means_ - c
        if want_m:
            denom = mw + post[:, None]
            new = (mw * mp + obs) / np.where(denom > 0, denom, 1.0)
            mu = np.where(seen[:, None] & (denom > 0), new, mu)
            self.means_ = mu + c
        if not want_c:
            return
        diff = mu - mp
        cprior, cw = P["covars_prior"], P["covars_weight"]
        if kind in ("spherical", "diag"):
            c_n = mw * diff ** 2 + sq - 2.0 * mu * obs + mu ** 2 * post[:, None]
            c_d = np.maximum(cw - 1.0, 0.0)[:, None] + post[:, None]
            new = (cprior + c_n) / np.maximum(c_d, 1e-5)
            if kind == "spherical":
                new = new.mean(axis=1)
                old = self._covars_
                new = np.where(seen, new, old)
            else:
                new = np.where(seen[:, None], new, self._covars_)
            self._covars_ = G.floor_covars(new, kind, float(self.min_covar))
            return
        om = obs[:, :, None] * mu[:, None, :]
        c_n = (mw[:, :, None] * diff[:, :, None] * diff[:, None, :] + sq - om
               - om.transpose(0, 2, 1) + mu[:, :, None] * mu[:, None, :] * post[:, None, None])
        cvw = np.maximum(cw - D, 0.0)
        if kind == "tied":
            new = (cprior + c_n.sum(axis=0)) / (cvw.max() + post.sum())
        else:
            new = (cprior + c_n) / (cvw[:, None, None] + post[:, None, None])
            new = np.where(seen[:, None, None], new, self._covars_)
        self._covars_ = G.floor_covars(new, kind, float(self.min_covar))

    # ----------------------------------------------------------------- persistence
    def _emission_json(self):
        return dict(covariance_type=self.covariance_type, min_covar=float(self.min_covar),
                    means=self.means_.tolist(), covars=self._covars_.tolist())

    @classmethod
    def _from_json(cls, obj, path, **kwargs):
        sp, tm, kind, means, covars = require(obj, path, "startprob", "transmat",
                                              "covariance_type", "means", "covars")
        kwargs.setdefault("min_covar", obj.get("min_covar", 1e-3))
        model = cls(n_components=len(sp), covariance_type=kind, init_params="", **kwargs)
        model.startprob_, model.transmat_ = np.asarray(sp, float), np.asarray(tm, float)
        model.means_ = np.asarray(means, float)
        model.covars_ = covars
        return model


def _per_state(w, n):
    """A per-state weight as an (n, 1) or (n, D) column block for broadcasting against means."""
    w = np.asarray(w, np.float64)
    if w.ndim == 0:
        return np.full((n, 1), float(w))
    if w.ndim == 1:
        return w.reshape(n, 1)
    return w
