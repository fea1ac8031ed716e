"""``CategoricalHMM``: a drop-in for hmmlearn 0.3's ``CategoricalHMM``, the categorical room of
the HMM engine (``_base.BaseHMM``): its emissions are a small table, gathered by symbol inside
the kernels (``api``) instead of passed as frames; its JSON files are ``io.py``.
"""
from __future__ import annotations

import numbers

import numpy as np

from .._backend import get_kernel
from ._base import BaseHMM, check_prior, check_random_state, dirichlet_update, positive_int
from ._checks import SYSTEM, _as_symbols, _batch, _offsets, check_parameters, check_real
from .api import _estep, _forward_backward, _score_batch, _viterbi
from .io import read_model, write_model
from .monitor import ConvergenceMonitor  # noqa: F401  (re-exported by fasthw6.hmm)

# kept for the modules that import them from here
_check_random_state = check_random_state
_positive_int = positive_int
_check_prior = check_prior

_PARAM_NAMES = ("n_components", "startprob_prior", "transmat_prior", "emissionprob_prior",
                "n_features", "algorithm", "random_state", "n_iter", "tol", "verbose", "params",
                "init_params", "implementation", "dtype", "backend")


class CategoricalHMM(BaseHMM):
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

    _TYPE = "categorical"
    _PARAM_NAMES = _PARAM_NAMES
    _EMISSION_LETTERS = "e"
    _EMISSION_ATTRS = ("emissionprob_",)

    def __init__(self, n_components=1, startprob_prior=1.0, transmat_prior=1.0, *,
                 emissionprob_prior=1.0, n_features=None, algorithm="viterbi",
                 random_state=None, n_iter=10, tol=1e-2, verbose=False, params="ste",
                 init_params="ste", implementation="log", dtype=np.float64, backend=None):
        self._common_init(n_components, startprob_prior, transmat_prior, algorithm,
                          random_state, n_iter, tol, verbose, params, init_params,
                          implementation, dtype, backend)
        self.emissionprob_prior = emissionprob_prior
        self.n_features = n_features

    # ----------------------------------------------------------------- the categorical room
    def _check(self):
        if getattr(self, "n_features", None) is None and hasattr(self, "emissionprob_"):
            self.n_features = int(np.atleast_2d(np.asarray(self.emissionprob_)).shape[1])
        return super()._check()

    def _check_emissions(self):
        n = self._check_n_components()
        positive_int(self.n_features, "n_features", allow_none=True)
        em = np.atleast_2d(np.asarray(check_real(self.emissionprob_, "emissionprob_"),
                                      dtype=np.float64))
        if self.n_features is None:
            self.n_features = int(em.shape[1])
        if em.shape != (n, self.n_features):
            raise ValueError(f"emissionprob_ must have shape ({n}, {self.n_features}) "
                             f"(n_components, n_features), got {em.shape}")
        _, _, em = check_parameters(self.startprob_, self.transmat_, em, suffix="_")
        self.emissionprob_ = em
        return em

    def _check_and_set_n_features(self, X):
        """hmmlearn's check of symbols before fitting (kept under its name for code that calls
        it): X must hold non-negative integers below ``n_features``, which is set to the
        largest symbol + 1 when None.  Like hmmlearn's, it checks the values whatever X's
        layout.

        Raises
        ------
        ValueError
            A non-integer dtype (``SymbolTypeError``, also a TypeError), a negative symbol, a
            symbol >= ``n_features``.
        """
        positive_int(self.n_features, "n_features", allow_none=True)
        _, hi = _as_symbols(np.reshape(X, -1), self.n_features, backend=self._backend())
        if self.n_features is None:
            self.n_features = hi + 1

    def _ops(self):
        sp, tm = self._check()
        return sp, tm, self.emissionprob_, self._dtype()

    def _data(self, X, lengths, fitting=False):
        if fitting:  # n_features may still be unknown: learn it from the largest symbol
            x, hi = _as_symbols(X, backend=self._backend())
            positive_int(self.n_features, "n_features", allow_none=True)
            if self.n_features is None:
                self.n_features = hi + 1
            elif hi >= self.n_features:
                raise ValueError(f"X holds symbol {hi} but the model emits only symbols "
                                 f"0..{self.n_features - 1} (n_features={self.n_features})")
            return x, _offsets(lengths, x.shape[0])
        return _batch(X, lengths, self.n_features, self._backend())

    def _estep_chunk_frames(self, n_states):
        return None  # no table of frames: the kernels gather a small table's rows

    def _evaluate(self, kind, X, lengths):
        if kind != "viterbi":
            return super()._evaluate(kind, X, lengths)
        sp, tm = self._check()  # the symbols are range-checked inside the Viterbi pass
        x, off = _batch(X, lengths, self.n_features, self._backend(), defer_range=True)
        return _viterbi(x, off, sp, tm, self.emissionprob_, self._backend(), X)

    def _run(self, kind, x, off, sp, tm):
        em, dt, be = self.emissionprob_, self._dtype(), self._backend()
        if kind == "posteriors":
            return _forward_backward(x, off, sp, tm, em, dt, be)
        if kind == "stats":
            return _estep(x, off, sp, tm, em, dt, be)
        if kind == "viterbi":
            return _viterbi(x, off, sp, tm, em, be)
        raise ValueError(kind)  # scoring has its own path (score_sequences)

    def _n_fit_scalars_per_param(self):
        per = super()._n_fit_scalars_per_param()
        per["e"] = self._check_n_components() * (positive_int(self.n_features, "n_features") - 1)
        return per

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
        sp, tm, em, dt = self._ops()  # the symbols are range-checked inside the scoring pass
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
        return super().score_samples(X, lengths)

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
        return super().decode(X, lengths, algorithm)

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
        sp, tm, em, _ = self._ops()
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
    def _init_emissions(self, x):
        # the draws and their order are hmmlearn's, so a seed gives the same start
        n = self._check_n_components()
        self.random_state = check_random_state(self.random_state)
        if self._needs_init("e", "emissionprob_"):
            em = self.random_state.rand(n, self.n_features)
            self.emissionprob_ = em / em.sum(axis=1, keepdims=True)

    def _check_emission_priors(self):
        self._eprior = check_prior(self.emissionprob_prior, "emissionprob_prior",
                                   (self.n_components, self.n_features))

    def _emission_sums(self, x, stats):
        # the expected count of each symbol in each state, (n_components, n_features)
        return dict(obs=stats["obs"]) if "e" in self.params else {}

    def _mstep_emissions(self, sums):
        if "e" in self.params:
            em = dirichlet_update(self.emissionprob_, sums["obs"], self._eprior, False)
            if self._dtype() != np.float64:  # as the chain's tables (BaseHMM.fit)
                em = np.where(em.astype(self._dtype()) == 0, 0.0, em)
            self.emissionprob_ = em

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
        return super().fit(X, lengths)

    # ----------------------------------------------------------------- persistence
    def save(self, path, symbols=None):
        """Write the parameters as JSON, atomically: ``format_version``, ``type``
        ("categorical"), ``startprob``, ``transmat``, ``emissionprob`` (and ``symbols``, one
        name per emission column, when given).

        Examples
        --------
        >>> import os, tempfile
        >>> m = CategoricalHMM(1, init_params="")
        >>> m.startprob_, m.transmat_, m.emissionprob_ = [1.0], [[1.0]], [[0.25, 0.75]]
        >>> p = os.path.join(tempfile.mkdtemp(), "m.json")
        >>> m.save(p); CategoricalHMM.load(p).emissionprob_.tolist()
        [[0.25, 0.75]]
        """
        write_model(path, *self._ops()[:3], symbols=symbols)

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
