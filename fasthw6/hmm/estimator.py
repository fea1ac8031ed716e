"""``CategoricalHMM``: a drop-in for hmmlearn 0.3's ``CategoricalHMM`` on the batch kernels
(``api``), with its parameter checks; its monitor is ``monitor.py``, its JSON files ``io.py``.
"""
from __future__ import annotations

import logging
import numbers

import numpy as np

from .._backend import get_kernel
from .._validate import check_dtype_arg
from ._checks import SYSTEM, NotFittedError, _as_symbols, _batch, _offsets, check_parameters
from .api import _estep, _forward_backward, _score_batch, _viterbi
from .io import read_model, write_model
from .monitor import ConvergenceMonitor

_log = logging.getLogger(__name__)

def _check_random_state(seed):
    if seed is None or seed is np.random:
        return np.random.mtrand._rand
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return np.random.RandomState(seed)
    if isinstance(seed, np.random.RandomState):
        return seed
    raise ValueError(f"random_state must be None, an int or a numpy RandomState, got {seed!r}")


def _positive_int(value, name, allow_none=False, minimum=1):
    if allow_none and value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) \
            or value < minimum:
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {kind}{' or None' if allow_none else ''}, "
                         f"got {value!r}")
    return int(value)


def _check_prior(prior, name, shape):
    """A Dirichlet prior as a float64 array broadcastable to ``shape``, finite."""
    try:
        arr = np.asarray(prior, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number or an array of numbers, got {prior!r}") from None
    try:
        ok = np.broadcast_shapes(arr.shape, shape) == shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a scalar or an array broadcastable to {shape}, got "
                         f"shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite, got {prior!r}" if arr.ndim == 0 else
                         f"{name} must be finite, found {arr[~np.isfinite(arr)][0]}")
    return arr


_PARAM_NAMES = ("n_components", "startprob_prior", "transmat_prior", "emissionprob_prior",
                "n_features", "algorithm", "random_state", "n_iter", "tol", "verbose", "params",
                "init_params", "implementation", "dtype", "backend")


class CategoricalHMM:
    """Hidden Markov model with categorical emissions; a drop-in for hmmlearn 0.3's.

    Same constructor, attributes and methods as ``hmmlearn.hmm.CategoricalHMM``, with batched
    compiled kernels underneath (one call per batch of sequences, parallel across sequences),
    plus ``dtype``, :meth:`score_sequences`, :meth:`save` and :meth:`load`.

    Parameters
    ----------
    n_components : int
        Number of states N.
    startprob_prior, transmat_prior, emissionprob_prior : float or array_like
        Dirichlet priors; ``prior - 1`` is added to the expected counts in the M-step (values
        above 1 act as pseudocounts).
    n_features : int, optional
        Number of symbols M; inferred as ``X.max() + 1`` by ``fit`` when None.
    algorithm : {"viterbi", "map"}
        Default decoder.
    random_state : None, int or numpy.random.RandomState
        Source of the random initialisation (the same draws as hmmlearn).
    n_iter : int
        Maximum number of EM iterations.
    tol : float
        EM stops when the log-likelihood gains less than this.
    verbose : bool
        Print per-iteration progress to stderr.
    params, init_params : str
        Letters of the parameters updated by EM (``params``) and initialised randomly by
        ``fit`` (``init_params``): ``s`` startprob, ``t`` transmat, ``e`` emissionprob.  A
        parameter missing from ``init_params`` keeps the value set on the estimator.
    implementation : {"log", "scaling"}
        Accepted for compatibility; the kernels always use scaling with float64 logs.
    dtype : {float64, float32}
        Arithmetic of the forward/backward kernels (log-likelihoods are float64 either way).
    backend : {None, "auto", "numba", "cython", "numpy"}
        Kernels every method runs on; None follows :func:`fasthw6.get_backend` at each call.
        Checked when a method runs (an unknown or unavailable name raises ``ValueError``).

    Attributes
    ----------
    startprob_, transmat_, emissionprob_ : ndarray of float64
    n_features : int
    monitor_ : ConvergenceMonitor (``history``, ``iter``, ``converged``)

    Notes
    -----
    EM never produces NaN: a state with no expected occupancy (a zero row of expected counts)
    keeps its previous parameters instead of dividing 0 by 0; an impossible sequence scores
    -inf and contributes no statistics.

    Examples
    --------
    >>> import numpy as np
    >>> m = CategoricalHMM(n_components=2, init_params="", n_iter=5)
    >>> m.startprob_ = np.array([0.6, 0.4])
    >>> m.transmat_ = np.array([[0.7, 0.3], [0.2, 0.8]])
    >>> m.emissionprob_ = np.array([[0.5, 0.4, 0.1], [0.1, 0.3, 0.6]])
    >>> X = np.array([[0], [1], [2], [2], [0], [1]])
    >>> round(m.score(X), 4)
    -6.6962
    >>> m.predict(X).tolist()
    [0, 0, 1, 1, 0, 0]
    """

    def __init__(self, n_components=1, startprob_prior=1.0, transmat_prior=1.0, *,
                 emissionprob_prior=1.0, n_features=None, algorithm="viterbi",
                 random_state=None, n_iter=10, tol=1e-2, verbose=False, params="ste",
                 init_params="ste", implementation="log", dtype=np.float64, backend=None):
        self.n_components = n_components
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        self.emissionprob_prior = emissionprob_prior
        self.n_features = n_features
        self.algorithm = algorithm
        self.random_state = random_state
        self.n_iter = n_iter
        self.tol = tol
        self.verbose = verbose
        self.params = params
        self.init_params = init_params
        self.implementation = implementation
        self.dtype = dtype
        self.backend = backend
        self.monitor_ = ConvergenceMonitor(self.tol, self.n_iter, self.verbose)

    # ----------------------------------------------------------------- sklearn-style plumbing
    def get_params(self, deep=True):
        """Constructor arguments as a dict (scikit-learn convention)."""
        return {k: getattr(self, k) for k in _PARAM_NAMES}

    def set_params(self, **params):
        """Set constructor arguments (scikit-learn convention); returns self."""
        for k, v in params.items():
            if k not in _PARAM_NAMES:
                raise ValueError(f"invalid parameter {k!r} for CategoricalHMM")
            setattr(self, k, v)
        return self

    def __repr__(self):
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in _PARAM_NAMES
                         if k in ("n_components", "n_features", "n_iter", "random_state"))
        return f"CategoricalHMM({args})"

    # ----------------------------------------------------------------- checks
    def _backend(self):
        return self.backend

    def _dtype(self):
        return check_dtype_arg(self.dtype)

    def _check(self):
        """Validate the parameters; returns float64 (startprob, transmat, emissionprob)."""
        if not hasattr(self, "startprob_"):
            raise NotFittedError("This CategoricalHMM has no parameters yet: call fit(X) or set "
                                 "startprob_, transmat_ and emissionprob_")
        n = self.n_components
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"n_components must be a positive int, got {n!r}")
        for name in ("startprob_", "transmat_", "emissionprob_"):
            if not hasattr(self, name):
                raise NotFittedError(f"{name} is not set: call fit(X) or set it")
        sp = np.asarray(self.startprob_, dtype=np.float64)
        if sp.shape != (n,):
            raise ValueError(f"startprob_ must have shape ({n},) (n_components), got {sp.shape}")
        _positive_int(self.n_features, "n_features", allow_none=True)
        em = np.atleast_2d(np.asarray(self.emissionprob_, dtype=np.float64))
        if self.n_features is None:
            self.n_features = int(em.shape[1])
        if em.shape != (n, self.n_features):
            raise ValueError(f"emissionprob_ must have shape ({n}, {self.n_features}) "
                             f"(n_components, n_features), got {em.shape}")
        sp, tm, em = check_parameters(sp, self.transmat_, em, suffix="_")
        self.startprob_, self.transmat_, self.emissionprob_ = sp, tm, em
        return sp, tm, em

    def _symbols(self, X, lengths):
        return _batch(X, lengths, self.n_features, self._backend())

    def _ops(self):
        sp, tm, em = self._check()
        return sp, tm, em, self._dtype()

    # ----------------------------------------------------------------- scoring
    def score_sequences(self, X, lengths=None):
        """Log-likelihood of each sequence, shape (n_sequences,) (hmmlearn can only sum them).

        Examples
        --------
        >>> m = CategoricalHMM(2, init_params="")
        >>> m.startprob_, m.transmat_ = [1.0, 0.0], [[1.0, 0.0], [0.0, 1.0]]
        >>> m.emissionprob_ = [[1.0, 0.0], [0.0, 1.0]]
        >>> m.score_sequences([0, 0, 0, 1], [2, 2]).tolist()
        [0.0, -inf]
        """
        sp, tm, em, dt = self._ops()
        return _score_batch(X, lengths, sp, tm, em, dt, self._backend())

    def score(self, X, lengths=None):
        """Log-likelihood of X (the sum over its sequences).

        Examples
        --------
        >>> m = CategoricalHMM(1, init_params="")
        >>> m.startprob_, m.transmat_, m.emissionprob_ = [1.0], [[1.0]], [[0.25, 0.75]]
        >>> float(np.exp(m.score([[1], [1]])))
        0.5625
        """
        return float(np.sum(self.score_sequences(X, lengths)))

    def score_samples(self, X, lengths=None):
        """Log-likelihood of X and the state posteriors, shape (n_samples, n_components).

        Examples
        --------
        >>> m = CategoricalHMM(2, init_params="")
        >>> m.startprob_, m.transmat_ = [0.5, 0.5], [[0.5, 0.5], [0.5, 0.5]]
        >>> m.emissionprob_ = [[1.0, 0.0], [0.5, 0.5]]
        >>> ll, post = m.score_samples([[0]])
        >>> post.round(4).tolist()
        [[0.6667, 0.3333]]
        """
        sp, tm, em, dt = self._ops()
        x, off = self._symbols(X, lengths)
        out, gamma = _forward_backward(x, off, sp, tm, em, dt, self._backend())
        return float(np.sum(out)), gamma

    def predict_proba(self, X, lengths=None):
        """State posteriors, shape (n_samples, n_components).

        Examples
        --------
        >>> m = CategoricalHMM(1, init_params="")
        >>> m.startprob_, m.transmat_, m.emissionprob_ = [1.0], [[1.0]], [[0.5, 0.5]]
        >>> m.predict_proba([[0], [1]]).tolist()
        [[1.0], [1.0]]
        """
        return self.score_samples(X, lengths)[1]

    # ----------------------------------------------------------------- decoding
    def decode(self, X, lengths=None, algorithm=None):
        """Most likely states: ``(log_prob, state_sequence)``.

        ``algorithm="viterbi"`` (default): the jointly most likely path and the sum over
        sequences of its log probability.  ``"map"``: each step's most probable state; like
        hmmlearn, ``log_prob`` is then the sum of those maximal posteriors.

        Examples
        --------
        >>> m = CategoricalHMM(2, init_params="")
        >>> m.startprob_, m.transmat_ = [0.5, 0.5], [[0.9, 0.1], [0.1, 0.9]]
        >>> m.emissionprob_ = [[0.8, 0.2], [0.2, 0.8]]
        >>> m.decode([[0], [1], [1], [1]])[1].tolist()
        [1, 1, 1, 1]
        """
        algorithm = algorithm or self.algorithm
        if algorithm not in ("viterbi", "map"):
            raise ValueError(f"algorithm must be 'viterbi' or 'map', got {algorithm!r}")
        sp, tm, em, dt = self._ops()
        x, off = self._symbols(X, lengths)
        if algorithm == "viterbi":
            lp, states = _viterbi(x, off, sp, tm, em, self._backend())
            return float(np.sum(lp)), states
        out, gamma = _forward_backward(x, off, sp, tm, em, dt, self._backend())
        return float(np.max(gamma, axis=1).sum()), np.argmax(gamma, axis=1)

    def predict(self, X, lengths=None):
        """The decoded state sequence (``decode(X, lengths)[1]``).

        Examples
        --------
        >>> m = CategoricalHMM(2, init_params="")
        >>> m.startprob_, m.transmat_ = [1.0, 0.0], [[0.0, 1.0], [1.0, 0.0]]
        >>> m.emissionprob_ = [[0.5, 0.5], [0.5, 0.5]]
        >>> m.predict([0, 0, 0]).tolist()
        [0, 1, 0]
        """
        return self.decode(X, lengths)[1]

    # ----------------------------------------------------------------- sampling
    def sample(self, n_samples=1, random_state=None, currstate=None):
        """Draw ``(X, states)``: X of shape (n_samples, 1), the same draws as hmmlearn.

        Examples
        --------
        >>> m = CategoricalHMM(2, init_params="")
        >>> m.startprob_, m.transmat_ = [1.0, 0.0], [[0.0, 1.0], [1.0, 0.0]]
        >>> m.emissionprob_ = [[1.0, 0.0], [0.0, 1.0]]
        >>> X, Z = m.sample(4, random_state=0)
        >>> X.ravel().tolist(), Z.tolist()
        ([0, 1, 0, 1], [0, 1, 0, 1])
        """
        sp, tm, em = self._check()
        if isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral) or n_samples < 1:
            raise ValueError(f"n_samples must be a positive int, got {n_samples!r}")
        rs = _check_random_state(self.random_state if random_state is None else random_state)
        n = int(n_samples)
        if currstate is None:
            u = rs.rand(2 * n)
            start_cdf = np.cumsum(sp)
        else:
            if (isinstance(currstate, (bool, np.bool_))
                    or not isinstance(currstate, numbers.Integral)
                    or not 0 <= currstate < sp.shape[0]):
                raise ValueError(f"currstate must lie in [0, {sp.shape[0]}) (an int, a state "
                                 f"index), got {currstate!r}")
            u = np.concatenate([[0.5], rs.rand(2 * n - 1)])
            start_cdf = (np.arange(sp.shape[0]) >= int(currstate)).astype(np.float64)
        states = np.empty(n, np.int64)
        symbols = np.empty(n, np.int64)
        get_kernel(SYSTEM, "sample_chain", self._backend())(
            u, start_cdf, np.cumsum(tm, axis=1), np.cumsum(em, axis=1), states, symbols)
        return symbols[:, None], states

    # ----------------------------------------------------------------- training
    def _needs_init(self, code, name):
        if code in self.init_params:
            if hasattr(self, name):
                _log.warning("Even though the %r attribute is set, it will be overwritten during "
                             "initialization because 'init_params' contains %r", name, code)
            return True
        return not hasattr(self, name)

    def _init(self, x, hi):
        """``hi``: the largest symbol of ``x`` (-1 if empty), as ``_as_symbols`` found it."""
        n = self.n_components
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ValueError(f"n_components must be a positive int, got {n!r}")
        _positive_int(self.n_features, "n_features", allow_none=True)
        if self.n_features is None:
            self.n_features = hi + 1
        elif hi >= self.n_features:
            raise ValueError(f"X holds symbol {hi} but the model emits only symbols "
                             f"0..{self.n_features - 1} (n_features={self.n_features})")
        # the draws and their order are hmmlearn's, so a seed gives the same start
        init = 1.0 / n
        rs = _check_random_state(self.random_state)
        if self._needs_init("s", "startprob_"):
            self.startprob_ = rs.dirichlet(np.full(n, init))
        if self._needs_init("t", "transmat_"):
            self.transmat_ = rs.dirichlet(np.full(n, init), size=n)
        n_free = {"s": n - 1, "t": n * (n - 1), "e": n * (self.n_features - 1)}
        n_fit = sum(n_free.get(p, 0) for p in self.params)
        if x.size < n_fit:
            _log.warning("Fitting a model with %d free scalar parameters with only %d data points "
                         "will result in a degenerate solution.", n_fit, x.size)
        self.random_state = _check_random_state(self.random_state)
        if self._needs_init("e", "emissionprob_"):
            em = self.random_state.rand(n, self.n_features)
            self.emissionprob_ = em / em.sum(axis=1, keepdims=True)

    def fit(self, X, lengths=None):
        """Estimate the parameters by EM (Baum-Welch), hmmlearn's ``fit``.

        Parameters
        ----------
        X : array_like of int, shape (n_samples, 1) or (n_samples,)
        lengths : array_like of int, optional

        Returns
        -------
        self

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> X = rng.integers(0, 3, size=200)
        >>> m = CategoricalHMM(2, n_iter=20, random_state=1).fit(X, [100, 100])
        >>> bool(np.all(np.diff(m.monitor_.history) > -1e-9))
        True
        """
        n_iter = _positive_int(self.n_iter, "n_iter")
        if isinstance(self.tol, (bool, np.bool_)) or not isinstance(self.tol, numbers.Real) \
                or np.isnan(self.tol):
            raise ValueError(f"tol must be a real number, got {self.tol!r}")
        x, hi = _as_symbols(X, backend=self._backend())
        if x.size == 0:
            raise ValueError("X must not be empty: there is nothing to fit")
        off = _offsets(lengths, x.shape[0])
        self._init(x, hi)
        sp, tm, em = self._check()
        n, m = em.shape
        priors = (_check_prior(self.startprob_prior, "startprob_prior", (n,)),
                  _check_prior(self.transmat_prior, "transmat_prior", (n, n)),
                  _check_prior(self.emissionprob_prior, "emissionprob_prior", (n, m)))
        dt = self._dtype()
        self.monitor_._reset()
        for _ in range(n_iter):
            stats = _estep(x, off, sp, tm, em, dt, self._backend())
            ll = float(np.sum(stats["loglik"]))
            sp, tm, em = self._mstep(stats, sp, tm, em, priors)
            if dt != np.float64:
                # EM drives unused probabilities down geometrically; below the dtype's range they
                # are 0 in its arithmetic already: stored as 0, they pass the operand check
                # (which refuses non-zero probabilities that a cast would turn into 0)
                sp, tm, em = (np.where(a.astype(dt) == 0, 0.0, a) for a in (sp, tm, em))
            self.startprob_, self.transmat_, self.emissionprob_ = sp, tm, em
            self.monitor_.report(ll)
            if self.monitor_.converged:
                break
        return self

    def _mstep(self, stats, sp, tm, em, priors):
        """hmmlearn's M-step, except that a zero row of expected counts keeps its old row."""

        def update(old, counts, prior, keep_zeros):
            new = np.maximum(np.asarray(prior, np.float64) - 1.0 + counts, 0.0)
            if keep_zeros:
                new = np.where(old == 0, 0.0, new)
            total = new.sum(axis=-1, keepdims=True)
            ok = total > 0
            return np.where(ok, new / np.where(ok, total, 1.0), old)

        sprior, tprior, eprior = priors
        if "s" in self.params:
            sp = update(sp, stats["start"], sprior, True)
        if "t" in self.params:
            tm = update(tm, stats["trans"], tprior, True)
        if "e" in self.params:
            em = update(em, stats["obs"], eprior, False)
        return sp, tm, em

    # ----------------------------------------------------------------- persistence
    def save(self, path, symbols=None):
        """Write the parameters as JSON: ``startprob``, ``transmat``, ``emissionprob`` (and
        ``symbols``, one name per emission column, when given).

        Examples
        --------
        >>> import os, tempfile
        >>> m = CategoricalHMM(1, init_params="")
        >>> m.startprob_, m.transmat_, m.emissionprob_ = [1.0], [[1.0]], [[0.25, 0.75]]
        >>> p = os.path.join(tempfile.mkdtemp(), "m.json")
        >>> m.save(p); CategoricalHMM.load(p).emissionprob_.tolist()
        [[0.25, 0.75]]
        """
        write_model(path, *self._check(), symbols=symbols)

    @classmethod
    def load(cls, path, **kwargs):
        """A model from a JSON file written by :meth:`save` (extra keyword arguments go to the
        constructor); ``symbols``, if present, is kept as the ``symbols_`` attribute.

        Raises
        ------
        ValueError
            Missing keys or invalid probabilities (the message names the array and the row);
            ``symbols`` not one distinct, non-empty, whitespace-free name per emission column.

        Examples
        --------
        >>> import os, tempfile, json
        >>> p = os.path.join(tempfile.mkdtemp(), "m.json")
        >>> _ = open(p, "w").write(json.dumps(dict(startprob=[1.0], transmat=[[1.0]],
        ...                                        emissionprob=[[0.5, 0.5]])))
        >>> CategoricalHMM.load(p).n_features
        2
        """
        sp, tm, em, symbols = read_model(path)
        model = cls(n_components=sp.shape[0], n_features=em.shape[1], init_params="", **kwargs)
        model.startprob_, model.transmat_, model.emissionprob_ = sp, tm, em
        if symbols is not None:
            model.symbols_ = symbols
        return model
