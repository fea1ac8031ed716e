"""``PoissonHMM`` and ``MultinomialHMM``: drop-ins for hmmlearn 0.3's count models, the count
rooms of the HMM engine (``_base.BaseHMM``).

Both score every frame in every state with one BLAS product: a count vector ``x`` has

- Poisson:      ``log p(x | i) = x . log(lambda_i) - sum(lambda_i) - sum_j log(x_j!)``
- Multinomial:  ``log p(x | i) = x . log(p_i) + log(n! / prod_j x_j!)``, ``n = sum_j x_j``

so the (n_samples, N) table is ``X @ log(theta).T`` plus a per-state and a per-frame constant;
the per-frame constant (the factorials) is computed once per batch, by a compiled pass that
checks every entry as a count as it reads it (``factorial_terms``), and reused by every EM
iteration and every chunk of the batch.  ``0 * log(0)`` is taken as 0: a zero rate or
probability scores a zero count at 0 and a positive count at -inf (the state cannot emit that
frame), never NaN.  The M-step's weighted sums are ``gamma.T @ X``.
"""
from __future__ import annotations

import numpy as np
from scipy.special import gammaln

from .._backend import get_kernel
from .gaussian import check_matrix
from ._gaussian import over_frames
from ._base import COMMON_PARAMS, BaseHMM, check_prior, check_random_state, dirichlet_update, \
    require
from ._checks import SYSTEM, NotFittedError, _offsets, _prob, check_real

_EXACT = 2.0 ** 53  # counts above this are not exact in float64


class _Counts(np.ndarray):
    """Validated counts (float64, C order) that remember their per-frame log-coefficient, so a
    batch pays for its factorials once however many EM iterations score it.  Any view or result
    derived from it starts without one."""

    def __array_finalize__(self, obj):
        self._coef = None


def _plain(data):
    return data.view(np.ndarray)


def check_counts(X, n_features=None, name="X", values=True):
    """X as validated counts: a float64 (n_samples, n_features) array of non-negative whole
    numbers (integer arrays, or floats holding whole numbers).  With ``values`` False the
    entries themselves are left to the caller (the models check them in the compiled pass
    that sums their factorials, ``factorial_terms``).

    Raises
    ------
    TypeError
        X does not hold real numbers (bool, complex, objects, strings).
    ValueError
        Not 2-D, the wrong number of features, or an entry that is NaN, infinite, negative,
        fractional or too large to be exact in float64; the message names the entry.
    """
    arr = check_matrix(X, n_features, name, "counts (non-negative integers)")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} must have at least one feature, got shape {arr.shape}")
    x = np.ascontiguousarray(arr, dtype=np.float64)
    if x.size and values:
        def where(mask):
            r, c = (int(i) for i in np.argwhere(mask)[0])
            return r, c, arr[r, c]

        if np.issubdtype(arr.dtype, np.floating):
            if not np.isfinite(x).all():
                r, c, v = where(~np.isfinite(x))
                raise ValueError(f"{name}[{r}, {c}] is {v}: counts must be finite")
            frac = x != np.floor(x)
            if frac.any():
                r, c, v = where(frac)
                raise ValueError(f"{name}[{r}, {c}] = {v} is not a whole number: counts must be "
                                 f"non-negative integers")
        if x.min() < 0:
            r, c, v = where(x < 0)
            raise ValueError(f"{name}[{r}, {c}] = {v}: counts must be non-negative")
        if x.max() > _EXACT:
            r, c, v = where(x > _EXACT)
            raise ValueError(f"{name}[{r}, {c}] = {v} is too large: counts must be at most 2**53")
    return x.view(_Counts)


# log(k!) of the counts k < 4096: a lookup gives gammaln's own values at a tenth of its cost
# (gammaln is ~100 ns an entry: 0.1 s of a 0.15 s PoissonHMM score of 10^6 frames x 4)
_LOG_FACTORIAL = gammaln(np.arange(4096) + 1.0)


def _log_factorial(x):
    """log(x!) of validated counts (float64, whole, 0 <= x <= 2**53), the values
    ``gammaln(x + 1)`` gives: a table lookup below 4096, gammaln itself above."""
    x = np.asarray(x, dtype=np.float64)
    out = _LOG_FACTORIAL.take(x.astype(np.intp), mode="clip")
    if x.size and x.max() >= _LOG_FACTORIAL.shape[0]:
        big = x >= _LOG_FACTORIAL.shape[0]
        out[big] = gammaln(x[big] + 1.0)
    return out


def factorial_terms(x, backend=None):
    """Σ_j log(x_tj!) of every frame of x (float64 (n, D) C order, its entries not yet
    checked) in one compiled pass that checks them as counts as it reads them (the backend's
    ``count_terms``, pieces of frames on its threads); None if an entry is not a whole number
    in [0, 2**53].  Counts of 4096 or more take ``gammaln`` (``_log_factorial``)."""
    n = x.shape[0]
    out = np.empty(n)
    kernel = get_kernel(SYSTEM, "count_terms", backend)
    codes = []
    over_frames(n, backend, lambda a, b: codes.append(kernel(x, a, b, _LOG_FACTORIAL, out)))
    if 1 in codes:
        return None
    if 2 in codes:  # those rows' terms added in the kernels' order, features in turn
        big = (x >= _LOG_FACTORIAL.shape[0]).any(axis=1)
        lf = _log_factorial(x[big])
        s = np.zeros(lf.shape[0])
        for j in range(lf.shape[1]):
            s += lf[:, j]
        out[big] = s
    return out


def _xlogy_product(x, theta):
    """``x @ log(theta).T`` over all frames and states with ``0 * log(0) = 0``: a zero entry of
    theta meeting a positive count gives -inf, meeting a zero count contributes 0."""
    pos = theta > 0
    with np.errstate(divide="ignore"):
        out = x @ np.log(np.where(pos, theta, 1.0)).T
    if not pos.all():
        hit = (x > 0).astype(np.float64) @ (~pos).T.astype(np.float64)
        out[hit > 0] = -np.inf
    return out


class _CountsRoom(BaseHMM):
    """What the two count models share: data handling, the emission attribute's shape."""

    _PARAM = None  # the emission parameter's attribute

    def _n_dims(self):
        n = getattr(self, "n_features", None)
        if n is not None:
            return int(n)
        if hasattr(self, self._PARAM):
            return np.atleast_2d(np.asarray(getattr(self, self._PARAM))).shape[1]
        raise NotFittedError(f"n_features is unknown: set {self._PARAM} first")

    def _emission_matrix(self):
        """The emission parameter as a finite float64 (n_components, n_features) array."""
        n = self._check_n_components()
        name = self._PARAM
        check_real(getattr(self, name), name)
        try:
            a = np.atleast_2d(np.array(getattr(self, name), dtype=np.float64))
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a numeric array, got "
                             f"{getattr(self, name)!r}") from None
        if a.ndim != 2 or a.shape[0] != n or a.shape[1] < 1:
            raise ValueError(f"{name} must have shape ({n}, n_features) (one row per state), got "
                             f"{a.shape}")
        if not np.isfinite(a).all():
            i, j = (int(k) for k in np.argwhere(~np.isfinite(a))[0])
            raise ValueError(f"{name}[{i}, {j}] is {a[i, j]}: {name} must be finite")
        return a

    def _data(self, X, lengths, fitting=False):
        n_features = None if fitting else self._n_dims()
        x = check_counts(X, n_features, values=False)
        terms = self._factorial_terms(x, X)  # the entries checked as they are summed
        if fitting and hasattr(self, self._PARAM) and self._EMISSION_LETTERS not in \
                self.init_params:
            D = np.atleast_2d(np.asarray(getattr(self, self._PARAM))).shape[1]
            if x.shape[1] != D:
                raise ValueError(f"X has {x.shape[1]} features per sample but {self._PARAM} "
                                 f"has {D}")
        if fitting:
            self.n_features = x.shape[1]
        self._check_totals(x, fitting)
        # here, before the chunks of a run share it across threads
        x._coef = self._coefficients(_plain(x), terms)
        return x, _offsets(lengths, x.shape[0])

    def _check_totals(self, x, fitting):
        """Model-specific checks of validated counts (none by default)."""

    def _coefficients(self, x, terms):
        """The per-frame log-coefficient (float64 (n,)) that every state's log-likelihood of
        the counts x adds, from their ``factorial_terms``."""
        raise NotImplementedError

    def _factorial_terms(self, x, X):
        """``factorial_terms`` of the counts x (``check_counts`` of X without the values); an
        entry that is not a count raises check_counts' ValueError, naming it in X."""
        terms = factorial_terms(_plain(x), self._backend())
        if terms is None:
            check_counts(X)  # raises, naming the entry
            raise ValueError("X holds an entry that is not a count")  # (not reached)
        return terms

    def _coef_of(self, data):
        """``data``'s per-frame log-coefficients, computed once per batch (``_data`` does
        it), however many EM iterations and chunks use them."""
        if data._coef is None:
            data._coef = self._coefficients(_plain(data), self._factorial_terms(data, data))
        return data._coef

    def _chunk_of(self, data, a, b):
        part = data[a:b]
        part._coef = self._coef_of(data)[a:b]  # the batch's, computed once for all chunks
        return part

    def _init(self, X, lengths=None):
        """hmmlearn's initialisation (kept under its name for code that calls it)."""
        x, _ = self._data(X, lengths, fitting=True)
        self._init_chain(x.size)
        self._init_emissions(x)

    def _check_and_set_n_features(self, X):
        """hmmlearn's check of a batch before fitting (kept under its name for code that calls
        it): X must hold counts (non-negative whole numbers) of ``n_features`` features, which
        is set from X when unknown; for the multinomial model every row must sum to
        ``n_trials``, which is set to X's row sums when None.

        Raises
        ------
        ValueError
            As ``fit`` would: the wrong number of features, a negative or fractional count, a
            row that does not sum to its number of trials.
        """
        known = getattr(self, "n_features", None)
        x = check_counts(X, known)
        if known is None:
            self.n_features = x.shape[1]
        self._check_totals(x, fitting=True)


# =========================================================================================
class PoissonHMM(_CountsRoom):
    """Hidden Markov model with Poisson emissions; a drop-in for hmmlearn 0.3's ``PoissonHMM``.

    Each state emits a vector of independent Poisson counts, one rate per feature.  Same
    constructor, attributes and methods as ``hmmlearn.hmm.PoissonHMM`` (the draws of ``fit``'s
    initialisation and of ``sample`` are hmmlearn's for a given seed), with the chain on
    fasthw6's batched kernels, plus ``dtype``, ``backend``, :meth:`score_sequences`,
    :meth:`save` and :meth:`load`.

    Parameters
    ----------
    n_components : int
        Number of states.
    startprob_prior, transmat_prior : float or array_like
        Dirichlet priors of the chain, as in ``CategoricalHMM``.
    lambdas_prior, lambdas_weight : float or array_like
        Shape (alpha) and rate (beta) of a Gamma prior on the rates, applied as hmmlearn does:
        ``lambdas_ = (alpha + n * y_bar) / (beta + n)`` with ``y_bar`` a state's weighted mean
        count and ``n`` the total expected occupancy of all states.  Non-negative, broadcast to
        (n_components, n_features) by numpy's rules (a per-state value: shape
        (n_components, 1)).  0 and 0 (the default): the maximum-likelihood rates.
    algorithm, random_state, n_iter, tol, verbose, implementation, dtype, backend
        As for ``CategoricalHMM``.
    params, init_params : str
        ``s`` startprob, ``t`` transmat, ``l`` lambdas.  Rates start from Gamma draws matching
        the mean and variance of all of X's counts (hmmlearn's method of moments).

    Attributes
    ----------
    n_features : int
    startprob_, transmat_ : ndarray
    lambdas_ : ndarray, shape (n_components, n_features)
        The rates (expected counts) of each state and feature; non-negative (a zero rate emits
        only zeros).
    monitor_ : ConvergenceMonitor

    Notes
    -----
    EM never produces NaN: a state with no expected occupancy keeps its rates.  X must hold
    non-negative whole numbers (integer or float arrays).

    Examples
    --------
    >>> import numpy as np
    >>> m = PoissonHMM(2, init_params="")
    >>> m.startprob_ = np.array([0.5, 0.5])
    >>> m.transmat_ = np.array([[0.9, 0.1], [0.1, 0.9]])
    >>> m.lambdas_ = np.array([[1.0], [20.0]])
    >>> m.predict(np.array([[0], [2], [18], [25], [1]])).tolist()
    [0, 0, 1, 1, 0]
    >>> X, states = m.sample(3, random_state=0)
    >>> X.shape, states.shape
    ((3, 1), (3,))
    """

    _TYPE = "poisson"
    _PARAM_NAMES = COMMON_PARAMS + ("lambdas_prior", "lambdas_weight")
    _EMISSION_LETTERS = "l"
    _EMISSION_ATTRS = ("lambdas_",)
    _PARAM = "lambdas_"

    def __init__(self, n_components=1, startprob_prior=1.0, transmat_prior=1.0,
                 lambdas_prior=0.0, lambdas_weight=0.0, algorithm="viterbi", random_state=None,
                 n_iter=10, tol=1e-2, verbose=False, params="stl", init_params="stl",
                 implementation="log", dtype=np.float64, backend=None):
        self._common_init(n_components, startprob_prior, transmat_prior, algorithm,
                          random_state, n_iter, tol, verbose, params, init_params,
                          implementation, dtype, backend)
        self.lambdas_prior = lambdas_prior
        self.lambdas_weight = lambdas_weight

    def _check_emissions(self):
        lam = self._emission_matrix()
        if (lam < 0).any():
            i, j = (int(k) for k in np.argwhere(lam < 0)[0])
            raise ValueError(f"lambdas_[{i}, {j}] = {lam[i, j]}: Poisson rates must be "
                             f"non-negative")
        self.lambdas_ = lam
        self.n_features = lam.shape[1]

    def _n_fit_scalars_per_param(self):
        per = super()._n_fit_scalars_per_param()
        per["l"] = self._check_n_components() * self._n_dims()
        return per

    def _coefficients(self, x, terms):
        return np.negative(terms, out=terms)  # -sum_j log(x_j!), in place: no new pages

    def _log_frames(self, data):
        out = _xlogy_product(_plain(data), self.lambdas_)
        out -= self.lambdas_.sum(axis=1)
        out += self._coef_of(data)[:, None]
        return out

    def _sample_from_state(self, state, random_state):
        return random_state.poisson(self.lambdas_[state])

    def _init_emissions(self, data):
        # hmmlearn's draws, in its order: the chain from one generator, then the rates from
        # check_random_state(random_state) again, kept as the estimator's random_state
        x = _plain(data)
        n = self._check_n_components()
        self.random_state = check_random_state(self.random_state)
        if self._needs_init("l", "lambdas_"):
            mean, var = x.mean(), x.var()
            if not (mean > 0 and var > 0):
                raise ValueError(
                    f"cannot initialise lambdas_ from X by the method of moments: its counts "
                    f"have mean {mean:g} and variance {var:g} (both must be positive); set "
                    f"lambdas_ yourself and leave 'l' out of init_params")
            self.lambdas_ = self.random_state.gamma(shape=mean ** 2 / var, scale=var / mean,
                                                    size=(n, x.shape[1]))

    def _check_emission_priors(self):
        shape = (self._check_n_components(), self._n_dims())
        pri = {}
        for name in ("lambdas_prior", "lambdas_weight"):
            a = check_prior(getattr(self, name), name, shape)
            if (a < 0).any():
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)!r}")
            pri[name] = a
        self._priors = pri

    def _emission_sums(self, data, stats):
        if "l" not in self.params:
            return {}
        gamma = stats["gamma"]  # Σγ and Σγx of each state
        return dict(post=gamma.sum(axis=0), obs=gamma.T @ _plain(data))

    def _mstep_emissions(self, sums):
        if "l" not in self.params:
            return
        post, obs = sums["post"], sums["obs"]
        total = float(post.sum())
        if not total > 0:  # every sequence impossible: nothing to learn from
            return
        seen = post > 0  # a state no frame visits keeps its rates
        y_bar = obs / np.where(seen, post, 1.0)[:, None]
        alpha, beta = self._priors["lambdas_prior"], self._priors["lambdas_weight"]
        new = (alpha + total * y_bar) / (beta + total)
        self.lambdas_ = np.where(seen[:, None], new, self.lambdas_)

    def _emission_json(self):
        return dict(lambdas=self.lambdas_.tolist())

    @classmethod
    def _from_json(cls, obj, path, **kwargs):
        sp, tm, lam = require(obj, path, "startprob", "transmat", "lambdas")
        model = cls(n_components=len(sp), init_params="", **kwargs)
        model.startprob_, model.transmat_ = np.asarray(sp, float), np.asarray(tm, float)
        model.lambdas_ = np.asarray(lam, float)
        return model


# =========================================================================================
def check_n_trials(n_trials, name="n_trials"):
    """``n_trials`` as None, a non-negative int, or a 1-D int64 array of them.

    Raises TypeError for non-numbers, ValueError for negative or fractional values, an empty
    array or more than one dimension."""
    if n_trials is None:
        return None
    arr = np.asarray(n_trials)
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.integer)
                                     or np.issubdtype(arr.dtype, np.floating)):
        raise TypeError(f"{name} must be None, an int or an array of ints, got {n_trials!r}")
    if arr.ndim > 1 or arr.size == 0:
        raise ValueError(f"{name} must be an int or a non-empty 1-D array of ints (one per "
                         f"sample), got shape {arr.shape}")
    bad = ~np.isfinite(arr) | (arr < 0) | (arr != np.floor(arr)) if arr.dtype.kind == "f" \
        else arr < 0
    if np.any(bad):
        v = arr if arr.ndim == 0 else arr[np.argmax(bad)]
        raise ValueError(f"{name} must be non-negative whole numbers, got {v}")
    return arr.astype(np.int64)


class MultinomialHMM(_CountsRoom):
    """Hidden Markov model with multinomial emissions; a drop-in for hmmlearn 0.3's
    ``MultinomialHMM``.

    Each frame is a vector of counts: the outcomes of ``n_trials`` draws from the state's
    distribution ``emissionprob_`` over the features.  (hmmlearn < 0.3's ``MultinomialHMM``,
    one symbol per frame, is ``CategoricalHMM``.)  Same constructor, attributes and methods as
    ``hmmlearn.hmm.MultinomialHMM`` (the draws of ``fit``'s initialisation and of ``sample`` are
    hmmlearn's for a given seed), with the chain on fasthw6's batched kernels, plus ``dtype``,
    ``backend``, :meth:`score_sequences`, :meth:`save` and :meth:`load`.

    Parameters
    ----------
    n_components : int
        Number of states.
    n_trials : None, int or array_like of int
        Number of trials of each frame.  An int (or an array whose entries are all equal): every
        row of X must sum to it, when fitting and when scoring.  An array of per-sample totals:
        checked row by row when fitting on X of that many samples.  None: ``fit`` sets it to
        the row sums of its X (hmmlearn's behaviour), and scoring checks nothing.  Each frame
        is scored with its own row sum as its number of trials.  ``sample`` needs a single
        value.
    startprob_prior, transmat_prior : float or array_like
        Dirichlet priors of the chain, as in ``CategoricalHMM``.
    algorithm, random_state, n_iter, tol, verbose, implementation, dtype, backend
        As for ``CategoricalHMM``.
    params, init_params : str
        ``s`` startprob, ``t`` transmat, ``e`` emissionprob (started from uniform draws,
        normalised per row, as hmmlearn).

    Attributes
    ----------
    n_features : int
    startprob_, transmat_ : ndarray
    emissionprob_ : ndarray, shape (n_components, n_features)
        Each state's probabilities of the features; rows sum to 1.
    monitor_ : ConvergenceMonitor

    Notes
    -----
    EM never produces NaN: a state with no expected counts keeps its probabilities.  X must
    hold non-negative whole numbers (integer or float arrays).

    Examples
    --------
    >>> import numpy as np
    >>> m = MultinomialHMM(2, n_trials=4, init_params="")
    >>> m.startprob_ = np.array([0.5, 0.5])
    >>> m.transmat_ = np.array([[0.9, 0.1], [0.1, 0.9]])
    >>> m.emissionprob_ = np.array([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]])
    >>> X = np.array([[4, 0, 0], [3, 1, 0], [0, 0, 4], [0, 1, 3]])
    >>> m.predict(X).tolist()
    [0, 0, 1, 1]
    >>> m.sample(2, random_state=0)[0].sum(axis=1).tolist()
    [4, 4]
    """

    _TYPE = "multinomial"
    _PARAM_NAMES = COMMON_PARAMS + ("n_trials",)
    _EMISSION_LETTERS = "e"
    _EMISSION_ATTRS = ("emissionprob_",)
    _PARAM = "emissionprob_"

    def __init__(self, n_components=1, n_trials=None, startprob_prior=1.0, transmat_prior=1.0,
                 algorithm="viterbi", random_state=None, n_iter=10, tol=1e-2, verbose=False,
                 params="ste", init_params="ste", implementation="log", dtype=np.float64,
                 backend=None):
        self._common_init(n_components, startprob_prior, transmat_prior, algorithm,
                          random_state, n_iter, tol, verbose, params, init_params,
                          implementation, dtype, backend)
        self.n_trials = n_trials

    def _check_emissions(self):
        em = self._emission_matrix()
        em = _prob(em, "emissionprob_", em.shape, "one row per state, one column per feature")
        check_n_trials(self.n_trials)
        self.emissionprob_ = em
        self.n_features = em.shape[1]

    def _n_fit_scalars_per_param(self):
        per = super()._n_fit_scalars_per_param()
        per["e"] = self._check_n_components() * (self._n_dims() - 1)
        return per

    def _check_totals(self, x, fitting):
        t = check_n_trials(self.n_trials)
        sums = _plain(x).sum(axis=1)
        if t is None:
            if fitting:  # hmmlearn's: the fitted X's row sums
                self.n_trials = sums.astype(np.int64)
            return
        if t.ndim == 1:
            if fitting and t.shape[0] == x.shape[0]:
                pass  # per-sample totals, checked row by row (hmmlearn's fit)
            elif np.unique(t).size == 1:
                t = t[0]
            elif fitting:
                raise ValueError(f"n_trials has {t.shape[0]} per-sample entries but X has "
                                 f"{x.shape[0]} samples")
            else:
                return  # per-sample totals of another batch say nothing about this one
        bad = sums != t
        if bad.any():
            r = int(np.argmax(bad))
            want = int(t if t.ndim == 0 else t[r])
            raise ValueError(f"row {r} of X sums to {sums[r]:.0f} but n_trials is {want}: each "
                             f"row of a multinomial sample must sum to its number of trials")

    def _coefficients(self, x, terms):
        out = _log_factorial(x.sum(axis=1))  # log(n! / prod_j x_j!)
        out -= terms
        return out

    def _log_frames(self, data):
        out = _xlogy_product(_plain(data), self.emissionprob_)
        out += self._coef_of(data)[:, None]
        return out

    def _sample_from_state(self, state, random_state):
        t = check_n_trials(self.n_trials)
        values = np.unique(t) if t is not None else ()
        if len(values) != 1:
            raise ValueError(f"sample needs a single n_trials (every sample draws the same "
                             f"number of trials), got n_trials={self.n_trials!r}")
        p = self.emissionprob_[state]
        if p[:-1].sum() > 1.0 + 1e-12:  # within the check's slack, beyond numpy's
            p = p / p.sum()
        # numpy's multinomial, as scipy's multinomial.rvs (hmmlearn) calls it: the same draws
        return random_state.multinomial(int(values[0]), p)

    def _init_emissions(self, data):
        # hmmlearn's draws, in its order: the chain from one generator, then the probabilities
        # from check_random_state(random_state) again, kept as the estimator's random_state
        n = self._check_n_components()
        self.random_state = check_random_state(self.random_state)
        if self._needs_init("e", "emissionprob_"):
            em = self.random_state.rand(n, data.shape[1])
            self.emissionprob_ = em / em.sum(axis=1, keepdims=True)

    def _emission_sums(self, data, stats):
        # Σγx: the expected count of each feature in each state
        return dict(obs=stats["gamma"].T @ _plain(data)) if "e" in self.params else {}

    def _mstep_emissions(self, sums):
        if "e" not in self.params:
            return
        obs = sums["obs"]
        # obs / its row sums; a row with no expected counts keeps its probabilities
        self.emissionprob_ = dirichlet_update(self.emissionprob_, obs, 1.0, False)

    def _emission_json(self):
        t = check_n_trials(self.n_trials)
        if t is not None:
            u = np.unique(t)
            t = int(u[0]) if u.size == 1 else t.tolist()
        return dict(emissionprob=self.emissionprob_.tolist(), n_trials=t)

    @classmethod
    def _from_json(cls, obj, path, **kwargs):
        sp, tm, em = require(obj, path, "startprob", "transmat", "emissionprob")
        kwargs.setdefault("n_trials", obj.get("n_trials"))
        model = cls(n_components=len(sp), init_params="", **kwargs)
        model.startprob_, model.transmat_ = np.asarray(sp, float), np.asarray(tm, float)
        model.emissionprob_ = np.asarray(em, float)
        return model


__all__ = ["MultinomialHMM", "PoissonHMM", "check_counts", "check_n_trials"]
