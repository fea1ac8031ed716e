"""Public HMM API: validation, work buffers and dispatch; the kernels check nothing.

Batch functions take hmmlearn's ragged-batch convention -- every sequence's symbols end to end in
``X`` plus their ``lengths`` -- and make one compiled call per batch.  ``CategoricalHMM`` is a
drop-in for ``hmmlearn.hmm.CategoricalHMM`` (0.3) built on them.
"""
from __future__ import annotations

import json
import logging
import math
import numbers
import sys
from collections import deque

import numpy as np

from .._backend import get_kernel, kernel_threads, resolve_backend
from .._validate import check_dtype_arg
from . import _anchors  # noqa: F401  (registers hmmlearn as the anchor of these functions)

_log = logging.getLogger(__name__)
SYSTEM = "hmm"
SUM_TOL = 1e-5  # |row sum - 1| accepted, as hmmlearn's np.allclose(row_sum, 1)
# α̂ values one lockstep block of the E-step and posteriors kernels stores (shortest length x N x
# lanes); a sequence longer than this over N is a block of its own.  An argument of the kernels,
# so that it has one home (and tests can make long-sequence blocks with short sequences).
ESTEP_BLOCK_ELEMS = 1 << 20

# symbols are read in place; a signed type whose values were proven non-negative is viewed as
# the unsigned one of the same width (and vice versa), so the kernels see four integer types
_CANON = {
    np.dtype(np.int8): np.uint8, np.dtype(np.uint8): np.uint8,
    np.dtype(np.int16): np.uint16, np.dtype(np.uint16): np.uint16,
    np.dtype(np.int32): np.int32, np.dtype(np.uint32): np.int32,
    np.dtype(np.int64): np.int64, np.dtype(np.uint64): np.int64,
}


class SymbolTypeError(TypeError, ValueError):
    """X does not hold integers (a TypeError, and a ValueError as hmmlearn raises)."""


class NotFittedError(ValueError, AttributeError):
    """The model has no parameters yet: call ``fit`` or set them first."""


# --------------------------------------------------------------------------- validation
_RANGE_KERNEL_DTYPES = {np.dtype(t) for t in (np.uint8, np.uint16, np.int32, np.int64)}
_RANGE_KERNEL_MIN = 1 << 16  # below this numpy's two passes cost less than a kernel call


def _range_deferrable(dtype, n_features):
    """Whether a kernel that range-checks the symbols it reads may take X unchecked: its
    canonical view (``_CANON``) must keep every symbol outside [0, n_features) outside it.
    uint32/uint64 values past the signed range read as negative; int8/int16 negatives read as
    at least 128/32768, outside only while n_features is at most that."""
    if dtype in (np.dtype(np.int8), np.dtype(np.int16)):
        return n_features <= 1 << (8 * dtype.itemsize - 1)
    return True


def _as_symbols(X, n_features=None, name="X", backend=None, defer_range=False):
    """X as a 1-D integer array read in place where possible, and its maximum symbol.

    ``defer_range``: the caller's kernel checks every symbol against ``n_features`` as it reads
    it (``forward_loglik``), so skip the range pass where the dtype allows; the maximum is then
    returned as None."""
    arr = np.asarray(X)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        hint = " (use X.astype(int))" if np.issubdtype(arr.dtype, np.number) else ""
        raise SymbolTypeError(f"{name} must hold integer symbols, got {arr.dtype}{hint}")
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    elif arr.ndim != 1:
        raise ValueError(f"{name} must have shape (n_samples,) or (n_samples, 1), got {arr.shape}")
    if not arr.dtype.isnative:  # e.g. '>i4' read from a file: the kernels take native order
        arr = arr.astype(arr.dtype.newbyteorder("="))
    arr = np.ascontiguousarray(arr)
    if arr.size == 0:
        return arr.astype(np.int64), -1
    if defer_range and _range_deferrable(arr.dtype, n_features):
        return arr.view(_CANON[arr.dtype]), None
    if arr.dtype in _RANGE_KERNEL_DTYPES and arr.size >= _RANGE_KERNEL_MIN:
        be = resolve_backend(backend)
        rng = np.empty(2, np.int64)
        get_kernel(SYSTEM, "symbol_range", be)(arr, max(1, min(arr.size, _n_threads(be))), rng)
        lo, hi = int(rng[0]), int(rng[1])
    else:
        lo, hi = int(arr.min()), int(arr.max())
    if lo < 0:
        raise ValueError(f"{name} holds a negative symbol {lo}; symbols must lie in [0, n_features)")
    if n_features is not None and hi >= n_features:
        raise ValueError(f"{name} holds symbol {hi} but the model emits only symbols "
                         f"0..{n_features - 1} (n_features={n_features})")
    return arr.view(_CANON[arr.dtype]), hi


def check_lengths(lengths, n, name="lengths"):
    """``lengths`` as int64 (S,), proven to be non-negative whole numbers summing to ``n``.

    Every check is made on the values as given (no cast first), so the message names the value
    the caller passed; the sum is taken without wrap-around (an int64 sum of huge lengths can wrap
    to ``n`` and send the kernels, which check nothing, outside X).

    Raises
    ------
    ValueError
        Not 1-D, not whole numbers (fractional, NaN, inf, bool, non-numeric), negative, or not
        summing to ``n``; the message names the argument and the offending entry.
    """
    lens = np.asarray(lengths)
    if lens.ndim == 0:
        lens = lens.reshape(1)
    if lens.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {lens.shape}")
    if lens.size == 0:
        if n != 0:
            raise ValueError(f"{name} sum to 0 but X holds {n} symbols")
        return np.zeros(0, np.int64)
    if lens.dtype == np.bool_ or not np.issubdtype(lens.dtype, np.number) \
            or np.issubdtype(lens.dtype, np.complexfloating):
        raise ValueError(f"{name} must hold integers, got {lens.dtype}")
    if not np.issubdtype(lens.dtype, np.integer):
        bad = ~np.isfinite(lens)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"{name} must hold finite whole numbers, got {name}[{i}] = {lens[i]}")
        frac = lens != np.floor(lens)
        if frac.any():
            i = int(np.argmax(frac))
            raise ValueError(f"{name} must hold integers, got {lens.dtype} with "
                             f"{name}[{i}] = {lens[i]}")
    if lens.min() < 0:
        i = int(np.argmax(lens < 0))
        raise ValueError(f"{name} must be non-negative, got {name}[{i}] = {lens[i]}")
    # each length is now in [0, inf); one above n (or an int64 running sum that wraps) means the
    # true sum is not n: report it exactly, in Python ints
    if lens.max() > n:
        if np.issubdtype(lens.dtype, np.integer):
            total = sum(lens.tolist())
        else:
            total = f"{math.fsum(lens.tolist()):g}"
        raise ValueError(f"{name} sum to {total} but X holds {n} symbols")
    lens = lens.astype(np.int64, copy=False)
    total = int(lens.sum())
    if total != n or lens.size * n >= 1 << 63:  # below that bound the int64 sum cannot wrap
        total = sum(lens.tolist())
        if total != n:
            raise ValueError(f"{name} sum to {total} but X holds {n} symbols")
    return lens


def _offsets(lengths, n):
    """Sequence start offsets (S+1,) int64 from ``lengths`` (None: one sequence of length n)."""
    if lengths is None:
        return np.array([0, n], dtype=np.int64)
    lens = check_lengths(lengths, n)
    off = np.zeros(lens.size + 1, dtype=np.int64)
    np.cumsum(lens, out=off[1:])
    return off


def check_symbols(symbols, n_features=None, name="symbols"):
    """``symbols`` as a list of str, proven to be distinct names that survive a SEQS text round
    trip (non-empty, no whitespace, which separates tokens), one per emission column when
    ``n_features`` is given.

    Raises
    ------
    ValueError
        Not a list of strings, a wrong count, an empty name, a name with whitespace, a duplicate.
    """
    if not isinstance(symbols, (list, tuple)):
        raise ValueError(f"{name} must be a list of strings, got {type(symbols).__name__}")
    for i, s in enumerate(symbols):
        if not isinstance(s, str):
            raise ValueError(f"{name}[{i}] must be a string, got {s!r}")
        if not s:
            raise ValueError(f"{name}[{i}] is empty; a symbol name must be a non-empty string "
                             f"without whitespace")
        if s.split() != [s]:
            raise ValueError(f"{name}[{i}] = {s!r} contains whitespace, which separates the "
                             f"tokens of a SEQS line")
    if n_features is not None and len(symbols) != n_features:
        raise ValueError(f"{name} must name the {n_features} emission columns, got "
                         f"{len(symbols)} names")
    seen = set()
    for s in symbols:
        if s in seen:
            raise ValueError(f"{name} must be distinct, {s!r} appears twice")
        seen.add(s)
    return list(symbols)


def _prob(a, name, shape, what):
    try:
        arr = np.array(a, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a numeric array: {exc}") from None
    if arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape} ({what}), got {arr.shape}")
    if not np.isfinite(arr).all():
        idx = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(f"{name} must be finite, got {arr[idx]} at {idx if len(idx) > 1 else idx[0]}")
    if (arr < 0).any():
        idx = tuple(int(i) for i in np.argwhere(arr < 0)[0])
        raise ValueError(f"{name} must be non-negative, got {arr[idx]} at "
                         f"{idx if len(idx) > 1 else idx[0]}")
    sums = arr.sum(axis=-1)
    bad = np.abs(sums - 1.0) > SUM_TOL
    if bad.any():
        if arr.ndim == 1:
            raise ValueError(f"{name} sums to {float(sums):.6g}, expected 1")
        r = int(np.argmax(bad))
        raise ValueError(f"{name} row {r} sums to {float(sums[r]):.6g}, expected 1")
    return arr


def check_parameters(startprob, transmat, emissionprob, suffix=""):
    """Validated float64 copies of (startprob, transmat, emissionprob).

    Raises ValueError naming the argument (``startprob``, ``transmat``, ``emissionprob`` plus
    ``suffix``) for a wrong shape, a negative or non-finite entry, or a row not summing to 1.
    """
    sp = np.asarray(startprob)
    if sp.ndim != 1 or sp.size == 0:
        raise ValueError(f"startprob{suffix} must be a non-empty 1-D array, got shape {sp.shape}")
    n = sp.shape[0]
    startprob = _prob(startprob, f"startprob{suffix}", (n,), "one entry per state")
    transmat = _prob(transmat, f"transmat{suffix}", (n, n), "n_components x n_components")
    em = np.asarray(emissionprob)
    m = em.shape[1] if em.ndim == 2 and em.shape[1] > 0 else 1
    emissionprob = _prob(emissionprob, f"emissionprob{suffix}", (n, m),
                         "one row per state, one column per symbol")
    return startprob, transmat, emissionprob


def _model(startprob, transmat, emissionprob, dtype):
    if dtype is None:
        dts = [np.asarray(a).dtype for a in (startprob, transmat, emissionprob)]
        dtype = np.float32 if all(d == np.float32 for d in dts) else np.float64
    dtype = check_dtype_arg(dtype)
    sp, tm, em = check_parameters(startprob, transmat, emissionprob)
    return sp, tm, em, dtype


def _kernel_operands(sp, tm, em, dtype):
    ops = (np.ascontiguousarray(sp, dtype), np.ascontiguousarray(tm, dtype),
           np.ascontiguousarray(em.T, dtype))
    if dtype != np.float64:
        # a possible event rounded to probability 0 would score -inf where float64 is finite
        for name, a, a32 in (("startprob", sp, ops[0]), ("transmat", tm, ops[1]),
                             ("emissionprob", em, ops[2].T)):
            if np.count_nonzero(a32) == np.count_nonzero(a):  # the usual case, at little cost
                continue
            lost = (a32 == 0) & (a != 0)
            if lost.any():
                idx = tuple(int(i) for i in np.argwhere(lost)[0])
                at = ", ".join(map(str, idx))
                raise ValueError(f"{name}[{at}] = {a[idx]:.3g} underflows to 0 in {np.dtype(dtype)}, "
                                 f"which would make possible sequences impossible; use "
                                 f"dtype=np.float64")
    return ops


def _batch(X, lengths, n_features, backend=None, defer_range=False):
    x, _ = _as_symbols(X, n_features, backend=backend, defer_range=defer_range)
    return x, _offsets(lengths, x.shape[0])


def _score_batch(X, lengths, sp, tm, em, dtype, backend):
    """Per-sequence log-likelihoods; the scoring kernel range-checks the symbols itself, in the
    same pass over X (a separate check cost 0.36 ms of 2.9 per 10^6 int64 symbols)."""
    x, off = _batch(X, lengths, em.shape[1], backend, defer_range=True)
    out = np.empty(off.shape[0] - 1, np.float64)
    bad = get_kernel(SYSTEM, "forward_loglik", backend)(
        x, off, *_kernel_operands(sp, tm, em, dtype), _chunks(off, backend, 4), out)
    if bad >= 0:
        _as_symbols(X, em.shape[1], backend=backend)  # raises, naming the symbols' range
        raise ValueError(f"X holds symbol {np.asarray(X).ravel()[bad]} at position {bad}, "
                         f"outside 0..{em.shape[1] - 1}")
    return out


def _bp_dtype(n):
    return np.int8 if n <= 127 else np.int16 if n <= 32767 else np.int32


def _chunks(off, backend, per_thread):
    """Number of contiguous work chunks: ``per_thread`` per thread (more balance the load of
    ragged batches; E-step chunks each own accumulators, so one per thread)."""
    return max(1, min(off.shape[0] - 1, per_thread * _n_threads(backend)))


def _n_threads(backend):
    return kernel_threads(SYSTEM, backend)


# --------------------------------------------------------------------------- batch functions
def score_sequences(X, lengths, startprob, transmat, emissionprob, *, dtype=None, backend=None):
    """Log-likelihood of every sequence of a ragged batch, in one compiled call.

    Parameters
    ----------
    X : array_like of int, shape (n_samples,) or (n_samples, 1)
        Symbols of all sequences end to end, each in ``[0, n_features)``; any integer dtype
        (uint8 included) is read in place.
    lengths : array_like of int, shape (n_sequences,), or None
        Length of each sequence (summing to ``n_samples``); None means one sequence.
    startprob, transmat, emissionprob : array_like
        Shapes (N,), (N, N), (N, M); rows are probability distributions (zeros allowed).
    dtype : {None, float32, float64}
        Arithmetic precision; None: float32 if every parameter array is float32, else float64.
        Log-likelihoods are accumulated and returned in float64 either way.
    backend : str, optional
        ``"numba"``, ``"cython"``, ``"numpy"`` or ``"auto"``.

    Returns
    -------
    ndarray of float64, shape (n_sequences,)
        ``log P(sequence)``; ``-inf`` for an impossible sequence, ``0.0`` for an empty one.

    Raises
    ------
    ValueError
        Invalid probabilities (message names the array and the row), symbols out of range,
        lengths negative or not summing to ``len(X)``.
    TypeError
        Non-integer ``X`` (also a ValueError).

    Examples
    --------
    >>> import numpy as np
    >>> ll = score_sequences([0, 1, 1, 0], [3, 1], [1.0, 0.0], [[0.5, 0.5], [0.0, 1.0]],
    ...                      [[0.5, 0.5], [0.5, 0.5]])
    >>> np.round(np.exp(ll), 6).tolist()
    [0.125, 0.5]
    """
    sp, tm, em, dt = _model(startprob, transmat, emissionprob, dtype)
    return _score_batch(X, lengths, sp, tm, em, dt, backend)


def posteriors(X, lengths, startprob, transmat, emissionprob, *, dtype=None, backend=None):
    """Per-sequence log-likelihoods and state posteriors γ_t(i) = P(state_t = i | sequence).

    Parameters are those of :func:`score_sequences`.

    Returns
    -------
    loglik : ndarray of float64, shape (n_sequences,)
    gamma : ndarray, shape (n_samples, N), of the arithmetic dtype
        Rows sum to 1; the rows of an impossible sequence are 0.

    Examples
    --------
    >>> ll, g = posteriors([0, 1], None, [0.5, 0.5], [[1.0, 0.0], [0.0, 1.0]],
    ...                    [[0.9, 0.1], [0.1, 0.9]])
    >>> g.round(3).tolist()
    [[0.5, 0.5], [0.5, 0.5]]
    """
    sp, tm, em, dt = _model(startprob, transmat, emissionprob, dtype)
    x, off = _batch(X, lengths, em.shape[1], backend)
    return _forward_backward(x, off, sp, tm, em, dt, backend)


def _forward_backward(x, off, sp, tm, em, dt, backend):
    """(per-sequence log-likelihoods, posteriors γ) of validated operands."""
    out = np.empty(off.shape[0] - 1, np.float64)
    gamma = np.empty((x.shape[0], sp.shape[0]), dt)
    get_kernel(SYSTEM, "forward_backward", backend)(x, off, *_kernel_operands(sp, tm, em, dt),
        _chunks(off, backend, 4), ESTEP_BLOCK_ELEMS, gamma, out)
    return out, gamma


def em_statistics(X, lengths, startprob, transmat, emissionprob, *, dtype=None, backend=None):
    """The E-step: expected sufficient statistics of a ragged batch, in one compiled call.

    Parameters are those of :func:`score_sequences`.

    Returns
    -------
    dict with float64 arrays
        ``loglik`` (n_sequences,); ``start`` (N,) = Σ_seq γ_0; ``trans`` (N, N) = Σ_seq Σ_t ξ_t;
        ``obs`` (N, M) = Σ_seq Σ_t γ_t(i) [x_t = k].  Impossible sequences contribute nothing.

    Examples
    --------
    >>> st = em_statistics([0, 1, 1], None, [1.0, 0.0], [[0.0, 1.0], [0.0, 1.0]],
    ...                    [[1.0, 0.0], [0.0, 1.0]])
    >>> st["trans"].tolist(), st["obs"].tolist()
    ([[0.0, 1.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 2.0]])
    """
    sp, tm, em, dt = _model(startprob, transmat, emissionprob, dtype)
    x, off = _batch(X, lengths, em.shape[1], backend)
    return _estep(x, off, sp, tm, em, dt, backend)


def _estep(x, off, sp, tm, em, dt, backend):
    n, m = em.shape
    out = np.empty(off.shape[0] - 1, np.float64)
    start = np.zeros(n, np.float64)
    trans = np.zeros((n, n), np.float64)
    obs_t = np.zeros((m, n), np.float64)
    get_kernel(SYSTEM, "estep", backend)(x, off, *_kernel_operands(sp, tm, em, dt),
        _chunks(off, backend, 1), ESTEP_BLOCK_ELEMS, start, trans, obs_t, out)
    return dict(loglik=out, start=start, trans=trans, obs=np.ascontiguousarray(obs_t.T))


def viterbi(X, lengths, startprob, transmat, emissionprob, *, backend=None):
    """Jointly most likely state path of every sequence (Viterbi, in float64 log space).

    Parameters are those of :func:`score_sequences`.

    Returns
    -------
    logprob : ndarray of float64, shape (n_sequences,)
        ``max over paths of log P(path, sequence)``; -inf for an impossible sequence.
    states : ndarray of int64, shape (n_samples,)
        The path, sequence after sequence.  Ties go to the largest previous state and the
        smallest final state, as in hmmlearn.

    Examples
    --------
    >>> lp, path = viterbi([0, 0, 1], None, [0.5, 0.5], [[0.9, 0.1], [0.1, 0.9]],
    ...                    [[0.8, 0.2], [0.2, 0.8]])
    >>> path.tolist()
    [0, 0, 0]
    """
    sp, tm, em, _ = _model(startprob, transmat, emissionprob, np.float64)
    x, off = _batch(X, lengths, em.shape[1], backend)
    return _viterbi(x, off, sp, tm, em, backend)


def _viterbi(x, off, sp, tm, em, backend):
    with np.errstate(divide="ignore"):
        lsp, ltm, lem = np.log(sp), np.log(tm), np.ascontiguousarray(np.log(em).T)
    S = off.shape[0] - 1
    maxlen = int(np.max(np.diff(off))) if S else 0
    chunks = max(1, min(S, _n_threads(backend)))
    bp = np.empty((chunks, maxlen, sp.shape[0]), _bp_dtype(sp.shape[0]))
    states = np.empty(x.shape[0], np.int64)
    out = np.empty(S, np.float64)
    get_kernel(SYSTEM, "viterbi", backend)(x, off, lsp, ltm, lem, bp, states, out)
    return out, states


# --------------------------------------------------------------------------- estimator
def _check_random_state(seed):
    if seed is None or seed is np.random:
        return np.random.mtrand._rand
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return np.random.RandomState(seed)
    if isinstance(seed, np.random.RandomState):
        return seed
    raise ValueError(f"random_state must be None, an int or a numpy RandomState, got {seed!r}")


class ConvergenceMonitor:
    """EM progress: ``history`` of log-likelihoods, ``iter`` count and ``converged``, as hmmlearn.

    Examples
    --------
    >>> m = ConvergenceMonitor(tol=0.1, n_iter=10, verbose=False)
    >>> m.report(-10.0); m.report(-9.95); m.converged
    True
    """

    _template = "{iter:>10d} {log_prob:>16.8f} {delta:>+16.8f}"

    def __init__(self, tol, n_iter, verbose):
        self.tol = tol
        self.n_iter = n_iter
        self.verbose = verbose
        self.history = deque()
        self.iter = 0

    def __repr__(self):
        return (f"ConvergenceMonitor(history={list(self.history)}, iter={self.iter}, "
                f"n_iter={self.n_iter}, tol={self.tol}, verbose={self.verbose})")

    def _reset(self):
        self.iter = 0
        self.history.clear()

    def report(self, log_prob):
        if self.verbose:
            delta = log_prob - self.history[-1] if self.history else np.nan
            print(self._template.format(iter=self.iter + 1, log_prob=log_prob, delta=delta),
                  file=sys.stderr)
        precision = np.finfo(float).eps ** 0.5
        if self.history and (log_prob - self.history[-1]) < -precision:
            _log.warning("Model is not converging.  Current: %s is not greater than %s. Delta is %s",
                         log_prob, self.history[-1], log_prob - self.history[-1])
        self.history.append(log_prob)
        self.iter += 1

    @property
    def converged(self):
        return (self.iter == self.n_iter or
                (len(self.history) >= 2 and self.history[-1] - self.history[-2] < self.tol))


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
                "init_params", "implementation", "dtype")


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
                 init_params="ste", implementation="log", dtype=np.float64):
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
        return getattr(self, "backend", None)

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
        sp, tm, em = self._check()
        obj = dict(startprob=sp.tolist(), transmat=tm.tolist(), emissionprob=em.tolist())
        if symbols is not None:
            obj["symbols"] = check_symbols([str(s) for s in symbols], em.shape[1])
        with open(path, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1)
            f.write("\n")

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
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
        if not isinstance(obj, dict):
            raise ValueError(f"{path}: expected a JSON object with startprob, transmat, "
                             f"emissionprob, got {type(obj).__name__}")
        missing = [k for k in ("startprob", "transmat", "emissionprob") if k not in obj]
        if missing:
            raise ValueError(f"{path}: missing key(s) {', '.join(missing)}")
        sp, tm, em = check_parameters(obj["startprob"], obj["transmat"], obj["emissionprob"])
        model = cls(n_components=sp.shape[0], n_features=em.shape[1], init_params="", **kwargs)
        model.startprob_, model.transmat_, model.emissionprob_ = sp, tm, em
        if obj.get("symbols") is not None:
            model.symbols_ = check_symbols(obj["symbols"], em.shape[1])
        return model
