"""``GMMHMM``: a drop-in for hmmlearn 0.3's, the Gaussian-mixture room of the HMM engine.

Each state emits from a mixture of ``n_mix`` Gaussians.  The N states x n_mix components are
flattened to K = N * n_mix densities, so every component's log-density comes from one call of
``_gaussian.log_density`` (one fused kernel pass, or kernel-built features times a BLAS
product, over all frames); a log-sum-exp over each
state's components, weighted by its mixture weights, gives the frames' emission log-likelihoods,
and the chain runs on the framewise kernels (``frames``).  The M-step weights every frame by
its component responsibility (the state posterior times the posterior of the component within
the state) and takes the weighted sums in one pass (``_gaussian.moments``).

hmmlearn's "tied" is not ``GaussianHMM``'s: a GMMHMM state has one full matrix shared by its
own components, ``covars_`` of shape (n_components, n_features, n_features).  For the densities
those matrices are repeated per component and treated as "full" ones.
"""
from __future__ import annotations

import numpy as np

from .._backend import get_kernel
from . import _gaussian as G
from . import frames
from ._base import (COMMON_PARAMS, BaseHMM, check_prior, dirichlet_update, positive_int,
                    require)
from ._checks import SYSTEM, NotFittedError, _offsets, _prob, check_real
from .gaussian import check_features, data_unchecked

_PARAM_NAMES = COMMON_PARAMS + ("n_mix", "covariance_type", "min_covar", "weights_prior",
                                "means_prior", "means_weight", "covars_prior", "covars_weight")


def covars_shape(kind, n, n_mix, D):
    """hmmlearn's shape of ``GMMHMM.covars_`` for a covariance type."""
    return {"spherical": (n, n_mix), "diag": (n, n_mix, D), "full": (n, n_mix, D, D),
            "tied": (n, D, D)}[kind]


def default_covar_priors(kind, n_mix, D):
    """hmmlearn's values of ``covars_prior`` and ``covars_weight`` left as None: they make the
    M-step the maximum-likelihood one (except "spherical" with n_mix != n_features, whose
    denominator hmmlearn offsets by n_features - n_mix)."""
    return {"full": (0.0, -(1.0 + D + 1.0)),
            "tied": (0.0, -(n_mix + D + 1.0)),
            "diag": (-1.5, 0.0),
            "spherical": (-(n_mix + 2.0) / 2.0, 0.0)}[kind]


def check_mix_covars(covars, kind, n, n_mix, D, name="covars_"):
    """``covars`` as float64 of hmmlearn's shape for ``kind``; each variance positive, each
    matrix symmetric positive definite, else ValueError naming the state (and component)."""
    check_real(covars, name)
    try:
        cv = np.array(covars, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric array") from None
    shape = covars_shape(kind, n, n_mix, D)
    if cv.shape != shape:
        raise ValueError(f"{name} must have shape {shape} for covariance_type={kind!r} "
                         f"(n_components={n}, n_mix={n_mix}, n_features={D}), got {cv.shape}")
    if not np.isfinite(cv).all():
        raise ValueError(f"{name} must be finite")

    def where(idx):
        return (f"state {idx[0]}" if kind == "tied" else
                f"state {idx[0]}, component {idx[1]}")

    if kind in ("spherical", "diag"):
        bad = np.argwhere(cv <= 0)
        if bad.size:
            raise ValueError(f"{name} of {where(bad[0])} must be positive, got "
                             f"{cv[tuple(bad[0])]}")
        return cv
    lead = cv.shape[:-2]
    mats = cv.reshape(-1, D, D)
    # np.allclose(m, m.T) of each matrix, the tolerance of ``_gaussian.check_covars``
    atol = 1e-12 * np.maximum(1.0, np.abs(mats).max(axis=(1, 2)))
    mt = mats.transpose(0, 2, 1)
    asym = (np.abs(mats - mt) > atol[:, None, None] + 1e-8 * np.abs(mt)).any(axis=(1, 2))
    if asym.any():
        raise ValueError(f"{name} of {where(np.unravel_index(int(np.argmax(asym)), lead))} must "
                         f"be symmetric")
    try:
        np.linalg.cholesky(mats)
    except np.linalg.LinAlgError:
        for k, m in enumerate(mats):  # only to name the first failing matrix
            try:
                np.linalg.cholesky(m)
            except np.linalg.LinAlgError:
                raise ValueError(
                    f"{name} of {where(np.unravel_index(k, lead))} is not positive definite "
                    f"(singular or indefinite covariance); raise min_covar or check the "
                    f"data") from None
    return cv


class GMMHMM(BaseHMM):
    """Hidden Markov model with Gaussian-mixture emissions; a drop-in for hmmlearn 0.3's
    ``GMMHMM``.

    Same constructor, attributes and methods as ``hmmlearn.hmm.GMMHMM``, with hmmlearn's
    initialisation (k-means per state, same seeds), M-step formulas (priors included) and
    sampling draws, the chain on fasthw6's batched kernels, plus ``dtype``, ``backend``,
    :meth:`score_sequences`, :meth:`save` and :meth:`load`.

    Parameters
    ----------
    n_components : int
        Number of states.
    n_mix : int
        Number of Gaussian components of each state's mixture.
    min_covar : float
        Added to the diagonal of the data's covariance when initialising, and the floor of
        every variance (eigenvalue, for full matrices) after each M-step.
    startprob_prior, transmat_prior : float or array_like
        Dirichlet priors of the chain, as in ``CategoricalHMM``.
    weights_prior : float or array_like, broadcastable to (n_components, n_mix)
        Dirichlet prior of each state's mixture weights.
    means_prior, means_weight : float or array_like
        Mean (broadcastable to (n_components, n_mix, n_features)) and precision (to
        (n_components, n_mix)) of the Normal prior on ``means_``.
    covars_prior, covars_weight : float, array_like or None
        "full"/"tied": scale matrix and degrees of freedom of an inverse-Wishart prior;
        "diag"/"spherical": the inverse-gamma's alpha and beta, as hmmlearn applies them.
        None: hmmlearn's defaults, which make the update the maximum-likelihood one for
        "full", "tied" and "diag" (for "spherical", hmmlearn's denominator of a component's
        variance is ``n_features * (occupancy + 1) - n_mix``).  Shapes
        as hmmlearn broadcasts them: full (N, n_mix, D, D) / (N, n_mix), tied (N, D, D) / (N,),
        diag (N, n_mix, D) / (N, n_mix, D), spherical (N, n_mix) / (N, n_mix).
    algorithm : {"viterbi", "map"}
    covariance_type : {"diag", "spherical", "full", "tied"}
        Per component: one variance ("spherical"), one per feature ("diag"), a full matrix
        ("full"); "tied": one full matrix per state, shared by that state's components
        (hmmlearn's meaning, unlike ``GaussianHMM``'s "tied").
    random_state, n_iter, tol, verbose, implementation, dtype, backend
        As for ``CategoricalHMM``.
    params, init_params : str
        ``s`` startprob, ``t`` transmat, ``m`` means, ``c`` covars, ``w`` mixture weights.

    Attributes
    ----------
    n_features : int
    startprob_, transmat_ : ndarray
    weights_ : ndarray, shape (n_components, n_mix)
    means_ : ndarray, shape (n_components, n_mix, n_features)
    covars_ : ndarray
        (n_components, n_mix) "spherical", (n_components, n_mix, n_features) "diag",
        (n_components, n_mix, n_features, n_features) "full",
        (n_components, n_features, n_features) "tied".
    monitor_ : ConvergenceMonitor

    Notes
    -----
    Where hmmlearn is well defined the numbers are its own; EM never produces NaN: a component
    (a state, for "tied" covariances and for the weights) with no responsibility keeps its
    parameters, and every variance is floored at ``min_covar`` (hmmlearn does not floor).  As
    in hmmlearn, the covariance update centres the data on the means of the E-step, and
    ``aic``/``bic`` count ``n_mix - 1`` free mixture weights in all (hmmlearn's count, kept so
    that model selection agrees with it; the weights of all states are
    ``n_components * (n_mix - 1)`` scalars).  When k-means leaves a state's cluster with fewer
    than ``n_mix`` points, that state's initial means are drawn from numpy's global random
    generator (``np.random``), as hmmlearn draws them.  The priors given to the constructor
    are never overwritten (hmmlearn replaces None and scalars by arrays on the estimator).

    Examples
    --------
    >>> import numpy as np
    >>> m = GMMHMM(2, n_mix=2, covariance_type="diag", init_params="")
    >>> m.startprob_ = np.array([0.5, 0.5])
    >>> m.transmat_ = np.array([[0.9, 0.1], [0.1, 0.9]])
    >>> m.weights_ = np.array([[0.5, 0.5], [0.3, 0.7]])
    >>> m.means_ = np.array([[[-1.0], [1.0]], [[9.0], [11.0]]])
    >>> m.covars_ = np.ones((2, 2, 1))
    >>> m.predict(np.array([[0.9], [9.5], [10.8], [-1.2]])).tolist()
    [0, 1, 1, 0]
    """

    _TYPE = "gmm"
    _PARAM_NAMES = _PARAM_NAMES
    _EMISSION_LETTERS = "mcw"
    _EMISSION_ATTRS = ("weights_", "means_", "covars_")

    def __init__(self, n_components=1, n_mix=1, min_covar=1e-3, startprob_prior=1.0,
                 transmat_prior=1.0, weights_prior=1.0, means_prior=0.0, means_weight=0.0,
                 covars_prior=None, covars_weight=None, algorithm="viterbi",
                 covariance_type="diag", random_state=None, n_iter=10, tol=1e-2,
                 verbose=False, params="stmcw", init_params="stmcw", implementation="log",
                 dtype=np.float64, backend=None):
        self._common_init(n_components, startprob_prior, transmat_prior, algorithm,
                          random_state, n_iter, tol, verbose, params, init_params,
                          implementation, dtype, backend)
        self.covariance_type = covariance_type
        self.min_covar = min_covar
        self.n_mix = n_mix
        self.weights_prior = weights_prior
        self.means_prior = means_prior
        self.means_weight = means_weight
        self.covars_prior = covars_prior
        self.covars_weight = covars_weight

    # ----------------------------------------------------------------- parameters
    def _n_mix(self):
        return positive_int(self.n_mix, "n_mix")

    def _frame_values(self):  # the components' posteriors (n_mix a state) beside the table
        return self._n_mix() + 1

    def _n_dims(self):
        n = getattr(self, "n_features", None)
        if n is not None:
            return int(n)
        if hasattr(self, "means_"):
            return np.asarray(self.means_).shape[-1]
        raise NotFittedError("n_features is unknown: set means_ first")

    def _check_emissions(self):
        kind = G.check_covariance_type(self.covariance_type)
        n, nm = self._check_n_components(), self._n_mix()
        self.weights_ = _prob(self.weights_, "weights_", (n, nm), "n_components x n_mix")
        means = np.array(check_real(self.means_, "means_"), dtype=np.float64)
        if means.ndim != 3 or means.shape[:2] != (n, nm) or means.shape[2] < 1:
            raise ValueError(f"means_ must have shape ({n}, {nm}, n_features) (n_components, "
                             f"n_mix, n_features), got {means.shape}")
        if not np.isfinite(means).all():
            raise ValueError("means_ must be finite")
        D = means.shape[2]
        self.means_ = means
        self.n_features = D
        self.covars_ = check_mix_covars(self.covars_, kind, n, nm, D)

    def _n_fit_scalars_per_param(self):
        per = super()._n_fit_scalars_per_param()
        n, nm, D = self._check_n_components(), self._n_mix(), self._n_dims()
        per["m"] = n * nm * D
        per["c"] = {"spherical": n * nm, "diag": n * nm * D, "full": n * nm * D * (D + 1) // 2,
                    "tied": n * D * (D + 1) // 2}[G.check_covariance_type(self.covariance_type)]
        per["w"] = nm - 1  # hmmlearn's count (see the class notes)
        return per

    # ----------------------------------------------------------------- densities
    def _flat_components(self):
        """(means (K, D), covariances in ``_gaussian``'s compact form, its kind) of the
        K = n_components * n_mix components, state-major."""
        kind = self.covariance_type
        n, nm, D = self.means_.shape
        means = self.means_.reshape(n * nm, D)
        if kind == "tied":  # one matrix per state: repeated for its components
            return means, np.repeat(self.covars_, nm, axis=0), "full"
        return means, self.covars_.reshape((n * nm,) + self.covars_.shape[2:]), kind

    def _mixture(self, X, want_mix, scaled):
        """(table, shift, within-state component posteriors (n_samples, N, n_mix) or None
        without ``want_mix``): the components' log-densities (``_gaussian.log_density``), then
        each state's weighted sum over them in one pass of the backend's ``mixture_frames``
        kernel, pieces of frames on its threads.  ``scaled``: the table holds the frames'
        likelihoods scaled by their maxima, ``shift`` the maxima's logs (the framewise
        engine's input); else the frames' log-likelihoods (``shift`` empty)."""
        n, nm = self.weights_.shape
        means, cv, kind = self._flat_components()
        be = self._backend()
        L = G.log_density(X, means, cv, kind, be)
        with np.errstate(divide="ignore"):
            logw = np.log(self.weights_)
        out = np.empty((X.shape[0], n))
        shift = np.empty(X.shape[0] if scaled else 0)
        kernel = get_kernel(SYSTEM, "mixture_frames", be)
        G.over_frames(X.shape[0], be,
                      lambda a, b: kernel(L, logw, a, b, out, shift, want_mix, scaled))
        return out, shift, (L.reshape(X.shape[0], n, nm) if want_mix else None)

    # ----------------------------------------------------------------- the engine's hooks
    def _data(self, X, lengths, fitting=False):
        known = None if fitting else self._n_dims()
        x = check_features(X, known)
        if fitting and hasattr(self, "means_") and "m" not in self.init_params:
            D = np.asarray(self.means_).shape[-1]
            if x.shape[1] != D:
                raise ValueError(f"X has {x.shape[1]} features per sample but means_ has {D}")
        if fitting:
            self.n_features = x.shape[1]
        return x, _offsets(lengths, x.shape[0])

    _data_unchecked = data_unchecked

    def _log_frames(self, X):
        return self._mixture(X, False, False)[0]

    def _scaled_frames(self, X, dtype):  # float64; the table kernels' operands take dtype
        return self._mixture(X, False, True)[:2]

    def _run(self, kind, data, off, sp, tm):
        if kind != "stats":
            return super()._run(kind, data, off, sp, tm)
        B, shift, mix = self._mixture(data, True, True)  # the M-step needs the posteriors too
        stats = frames.statistics_table(sp, tm, B, shift, off, self._dtype(), self._backend())
        stats["mix"] = mix
        return stats

    def _sample_from_state(self, state, random_state):
        j = random_state.choice(self.n_mix, p=self.weights_[state])
        kind, cv = self.covariance_type, self.covars_
        D = self.means_.shape[2]
        if kind == "tied":
            cov = cv[state]
        elif kind == "full":
            cov = cv[state, j]
        elif kind == "diag":
            cov = np.diag(cv[state, j])
        else:
            cov = np.eye(D) * cv[state, j]
        return random_state.multivariate_normal(self.means_[state, j], cov)

    # ----------------------------------------------------------------- training
    def _init(self, X, lengths=None):
        """hmmlearn's initialisation (kept under its name for code that calls it)."""
        x, _ = self._data(X, lengths, fitting=True)
        self._init_chain(x.size)
        self._init_emissions(x)

    def _init_emissions(self, X):
        kind = G.check_covariance_type(self.covariance_type)
        n, nm = self._check_n_components(), self._n_mix()
        n_samples, D = X.shape
        self.n_features = D
        need_w = self._needs_init("w", "weights_")
        need_m = self._needs_init("m", "means_")
        need_c = self._needs_init("c", "covars_")
        cv = None

        def data_cov():
            c = np.atleast_2d(np.cov(X.T)) if n_samples > 1 else np.zeros((D, D))
            return c + float(self.min_covar) * np.eye(D)

        if need_m:
            if n_samples < n:
                raise ValueError(f"X has {n_samples} samples, fewer than n_components={n}: "
                                 f"k-means cannot place the initial means")
            from sklearn.cluster import KMeans  # noqa: PLC0415  (only to initialise)

            # hmmlearn's scheme: k-means into one cluster per state, then k-means into n_mix
            # clusters within each; a cluster of fewer than n_mix points draws its means around
            # the centre of the state centres, from numpy's global generator (hmmlearn's draw)
            top = KMeans(n_clusters=n, random_state=self.random_state, n_init=10)
            labels = top.fit_predict(X)
            centre = top.cluster_centers_.mean(axis=0)
            means = []
            for label in range(n):  # n k-means fits: a loop per state is the work itself
                part = X[labels == label]
                if part.shape[0] >= nm:
                    km = KMeans(n_clusters=nm, random_state=self.random_state, n_init=10)
                    means.append(km.fit(part).cluster_centers_)
                else:
                    if cv is None:
                        cv = data_cov()
                    means.append(np.random.multivariate_normal(centre, cov=cv, size=nm))
            self.means_ = np.stack(means)
        if need_w:
            self.weights_ = np.full((n, nm), 1.0 / nm)
        if need_c:
            if cv is None:
                cv = data_cov()
            if kind == "tied":
                self.covars_ = np.tile(cv, (n, 1, 1))
            elif kind == "full":
                self.covars_ = np.tile(cv, (n, nm, 1, 1))
            elif kind == "diag":
                self.covars_ = np.tile(np.diag(cv), (n, nm, 1))
            else:
                self.covars_ = np.full((n, nm), cv.mean())

    def _check_emission_priors(self):
        kind = G.check_covariance_type(self.covariance_type)
        n, nm, D = self._check_n_components(), self._n_mix(), self._n_dims()
        mc = float(self.min_covar)
        if not np.isfinite(mc) or mc <= 0:
            raise ValueError(f"min_covar must be a positive number, got {self.min_covar!r}")
        cp0, cw0 = default_covar_priors(kind, nm, D)
        cp = cp0 if self.covars_prior is None else self.covars_prior
        cw = cw0 if self.covars_weight is None else self.covars_weight
        shapes = {"full": ((n, nm, D, D), (n, nm)), "tied": ((n, D, D), (n,)),
                  "diag": ((n, nm, D), (n, nm, D)), "spherical": ((n, nm), (n, nm))}[kind]

        def prior(value, name, shape):
            return np.broadcast_to(check_prior(value, name, shape), shape)

        self._priors = dict(
            weights_prior=prior(self.weights_prior, "weights_prior", (n, nm)),
            means_prior=prior(self.means_prior, "means_prior", (n, nm, D)),
            means_weight=prior(self.means_weight, "means_weight", (n, nm)),
            covars_prior=prior(cp, "covars_prior", shapes[0]),
            covars_weight=prior(cw, "covars_weight", shapes[1]))

    def _centre(self):
        """What the moments are centred on (their terms stay small): the mean of the current
        component means, so every batch of one E-step uses the same."""
        n, nm, D = self.means_.shape
        return self.means_.reshape(n * nm, D).mean(axis=0)

    def _emission_sums(self, X, stats):
        """``state_post`` (Σγ of each state, hmmlearn's post_sum) and, with r = γ times the
        component's posterior within the state and y = x - ``_centre()``: ``post`` (Σr),
        ``obs`` (Σry) and, when covariances are learnt, ``sq`` (Σry² for diag and spherical,
        Σryyᵀ otherwise), per component."""
        resp = stats.pop("mix")  # (n_samples, N, n_mix): the memory of the frames, freed here
        if not any(p in self.params for p in "wmc"):
            return {}
        n, nm, D = self.means_.shape
        gamma = stats["gamma"]
        resp *= gamma[:, :, None]  # turned into responsibilities in place
        resp = resp.reshape(X.shape[0], n * nm)
        c = self._centre()
        out = dict(state_post=gamma.sum(axis=0))
        if "c" in self.params:
            post, obs, sq = G.moments(X, resp, "diag" if self.covariance_type in
                                      ("diag", "spherical") else "full", c, self._backend())
            out["sq"] = sq.reshape((n, nm) + sq.shape[1:])
        else:
            post, obs = resp.sum(axis=0), resp.T @ (X - c)
        out["post"], out["obs"] = post.reshape(n, nm), obs.reshape(n, nm, D)
        return out

    def _mstep_emissions(self, sums):
        want_w, want_m, want_c = ("w" in self.params, "m" in self.params, "c" in self.params)
        if not (want_w or want_m or want_c):
            return
        kind = self.covariance_type
        n, nm, D = self.means_.shape
        P = self._priors
        state_post, post, obs = sums["state_post"], sums["post"], sums["obs"]
        sq = sums.get("sq")
        c = self._centre()  # the E-step's centre: the means have not changed since
        seen = post > 0  # a component no frame reaches keeps its parameters

        if want_w:
            a1 = P["weights_prior"] - 1.0
            w_n = post + a1
            w_d = state_post + a1.sum(axis=1)
            ok = (w_d > 0) & (w_n >= 0).all(axis=1) & (state_post > 0)
            new = w_n / np.where(ok, w_d, 1.0)[:, None]
            # elsewhere: the Dirichlet mode clipped at 0, or the old row where nothing is left
            self.weights_ = np.where(ok[:, None], new,
                                     dirichlet_update(self.weights_, post, P["weights_prior"],
                                                      False))

        mu_old = self.means_ - c
        mp = P["means_prior"] - c
        mw = P["means_weight"]
        if want_m:
            m_d = post + mw
            upd = seen & (m_d > 0)
            new = (mw[:, :, None] * mp + obs) / np.where(upd, m_d, 1.0)[:, :, None]
            # a component kept keeps its exact values (no round trip through the centre)
            self.means_ = np.where(upd[:, :, None], new + c, self.means_)
        if not want_c:
            return

        # Σ_t r (x - m_old)(x - m_old)ᵀ from the moments (hmmlearn centres on the E-step means)
        diff = self.means_ - P["means_prior"]
        cprior, cw = P["covars_prior"], P["covars_weight"]
        if kind in ("diag", "spherical"):
            s = sq - 2.0 * mu_old * obs + mu_old ** 2 * post[:, :, None]
            if kind == "diag":
                c_n = mw[:, :, None] * diff ** 2 + 2.0 * cw + s
                c_d = post[:, :, None] + 1.0 + 2.0 * (cprior + 1.0)
                ok = seen[:, :, None] & (c_d > 0)
            else:
                c_n = mw * (diff ** 2).sum(axis=2) + 2.0 * cw + s.sum(axis=2)
                c_d = D * (post + 1.0) + 2.0 * (cprior + 1.0)
                ok = seen & (c_d > 0)
            new = G.floor_covars(c_n / np.where(ok, c_d, 1.0), kind, float(self.min_covar))
            self.covars_ = np.where(ok, new, self.covars_)
            return
        om = obs[..., :, None] * mu_old[..., None, :]
        s = sq - om - np.swapaxes(om, -1, -2) + \
            mu_old[..., :, None] * mu_old[..., None, :] * post[:, :, None, None]
        dd = mw[:, :, None, None] * diff[..., :, None] * diff[..., None, :]
        if kind == "full":
            c_n = np.swapaxes(cprior, -1, -2) + dd + s
            c_d = post + 1.0 + cw + D + 1.0
            ok = seen & (c_d > 0)
            new = c_n / np.where(ok, c_d, 1.0)[:, :, None, None]
            new = G.floor_covars(new.reshape(n * nm, D, D), "full",
                                 float(self.min_covar)).reshape(n, nm, D, D)
            self.covars_ = np.where(ok[:, :, None, None], new, self.covars_)
            return
        c_n = np.swapaxes(cprior, -1, -2) + dd.sum(axis=1) + s.sum(axis=1)
        c_d = state_post + nm + cw + D + 1.0
        ok = (state_post > 0) & (c_d > 0)
        new = G.floor_covars(c_n / np.where(ok, c_d, 1.0)[:, None, None], "full",
                             float(self.min_covar))
        self.covars_ = np.where(ok[:, None, None], new, self.covars_)

    # ----------------------------------------------------------------- persistence
    def _emission_json(self):
        return dict(covariance_type=self.covariance_type, n_mix=int(self.weights_.shape[1]),
                    min_covar=float(self.min_covar), weights=self.weights_.tolist(),
                    means=self.means_.tolist(), covars=self.covars_.tolist())

    @classmethod
    def _from_json(cls, obj, path, **kwargs):
        sp, tm, kind, weights, means, covars = require(
            obj, path, "startprob", "transmat", "covariance_type", "weights", "means", "covars")
        w = np.asarray(weights, float)
        if w.ndim != 2:
            raise ValueError(f"{path}: weights must be an (n_components, n_mix) table, got "
                             f"shape {w.shape}")
        n_mix = obj.get("n_mix", w.shape[1])
        if n_mix != w.shape[1]:
            raise ValueError(f"{path}: n_mix is {n_mix} but weights has {w.shape[1]} columns")
        kwargs.setdefault("min_covar", obj.get("min_covar", 1e-3))
        model = cls(n_components=len(sp), n_mix=int(n_mix), covariance_type=kind,
                    init_params="", **kwargs)
        model.startprob_, model.transmat_ = np.asarray(sp, float), np.asarray(tm, float)
        model.weights_ = w
        model.means_ = np.asarray(means, float)
        model.covars_ = np.asarray(covars, float)
        return model
