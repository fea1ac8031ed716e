"""What every HMM estimator shares: the Markov chain, the engine calls, EM, decoding, sampling,
model selection and JSON files.  An emission model is a room of its own (``CategoricalHMM`` in
``estimator.py``, the continuous and count models beside it) that supplies a handful of hooks:

- ``_data(X, lengths)``: validated observations and the batch's offsets;
- ``_log_frames(data)``: the (n_samples, N) emission log-likelihoods (one BLAS product or so,
  never a loop per sample or per state); the engine (``frames``) does the rest;
- ``_init_emissions(data, random_state)``, ``_check_emissions()``,
  ``_n_fit_scalars_per_param()``, ``_sample_from_state()``;
- ``_emission_sums(data, stats)`` and ``_mstep_emissions(sums)``: EM in summable statistics.
  The E-step of a batch (``_estep``) is a dict of arrays and floats that add up across batches
  (the chain's ``loglik``, ``start``, ``trans``, plus the room's emission sums, all computed from
  the current parameters: never a per-frame array), and the M-step (``_mstep``) uses only those
  sums and the current parameters.  ``fit`` runs one batch through them;
  ``fasthw6.distributed.fit`` runs one per partition where the data lives and adds them up;
- ``_emission_json()`` / ``_emission_from_json()`` for ``save`` and ``load``.

The categorical model overrides ``_run`` to gather from its small emission table instead of
building frames, which keeps its specialised speed.
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import numbers
import os
import stat
import tempfile
import threading

import numpy as np

from .._backend import kernel_threads
from .._parallel import inline_pieces, reuse_buffers, run_pieces
from .._validate import check_dtype_arg
from . import frames
from ._checks import SYSTEM, NotFittedError, _prob
from .monitor import ConvergenceMonitor

_log = logging.getLogger("fasthw6.hmm.estimator")

# Chunks of scoring and Viterbi (``_chunk_cuts``) that hold fewer than CHUNK_ALIGN_BELOW x
# CHUNK_SEQS sequences (on average) hold whole multiples of CHUNK_SEQS, so that they fill the
# lockstep blocks of the kernels (64 or 32 lanes): a chunk of 65 sequences would run a third
# block of 32 lanes for one.  numba, one thread, GaussianHMM full, 2000 x 500 frames, chunks as
# cut -> whole multiples of 64 sequences: N=16 D=4 score 164 -> 120 ms, decode 115 -> 103; N=64
# D=4 score 753 -> 432, decode 864 -> 599.  Chunks of several blocks are left as cut.  The
# E-step keeps its chunks as cut: its blocks above 4 states are 16 lanes, which a chunk fills
# at any N, and whole multiples measured slower (full N=64 D=4 fit 1.34 -> 1.41-1.43 s; at
# N=3 diag D=4 41-42 -> 45-46 ms, full D=4 49-51 -> 55-58).
CHUNK_SEQS = 64
CHUNK_ALIGN_BELOW = 4
# The rooms that go through a table of frames run their E-steps, scores and Viterbi paths in
# chunks of whole sequences (``BaseHMM._chunk_cuts``) whose per-frame tables hold about this
# many bytes, so that a chunk's tables (emissions, γ) stay in cache between the passes over
# them, and no table is as large as the batch.  numba, one thread, 2000 x 500 frames,
# GaussianHMM diagonal, E-step and moments, whole batch -> 4 MB chunks: N=3 D=4 53 -> 43 ms,
# D=16 90 -> 80; N=16 D=4 270 -> 227, D=16 355 -> 319; N=64 D=4 1.85 -> 1.53 s, D=16 1.99 ->
# 1.66 (2 MB: 1.42, 1.55; 8 MB and 16 MB slower again).  Scoring and Viterbi likewise: diag
# N=3 D=4, 1 / 4 / 16 / 64 MB chunks: score 24.8 / 20.0 / 22.0 / 21.4 ms, decode 27.2 / 19.3 /
# 22.3 / 23.6; D=16, 4 / 16 / 64 MB: score 32.4 / 33.6 / 36.5, decode 32.2 / 33.5 / 36.9.
CHUNK_BYTES = 1 << 22
CHUNK_MIN_FRAMES = 4096
FORMAT_VERSION = 1  # of the JSON model files; files without one are version 0 (categorical)


def check_random_state(seed):
    """numpy RandomState from None, an int or a RandomState (hmmlearn's convention)."""
    if seed is None or seed is np.random:
        return np.random.mtrand._rand
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return np.random.RandomState(seed)
    if isinstance(seed, np.random.RandomState):
        return seed
    raise ValueError(f"random_state must be None, an int or a numpy RandomState, got {seed!r}")


def positive_int(value, name, allow_none=False, minimum=1):
    if allow_none and value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral) \
            or value < minimum:
        kind = "a positive int" if minimum == 1 else f"an int >= {minimum}"
        raise ValueError(f"{name} must be {kind}{' or None' if allow_none else ''}, "
                         f"got {value!r}")
    return int(value)


def check_prior(prior, name, shape):
    """A prior as a float64 array broadcastable to ``shape``, finite."""
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


def dirichlet_update(old, counts, prior, keep_zeros):
    """hmmlearn's M-step for a probability table, except that a row with no expected counts
    keeps its old values instead of dividing 0 by 0 (and, with ``keep_zeros``, a structural
    zero of the old table stays 0)."""
    new = np.maximum(np.asarray(prior, np.float64) - 1.0 + counts, 0.0)
    if keep_zeros:
        new = np.where(old == 0, 0.0, new)
    total = new.sum(axis=-1, keepdims=True)
    ok = total > 0
    return np.where(ok, new / np.where(ok, total, 1.0), old)


COMMON_PARAMS = ("n_components", "startprob_prior", "transmat_prior", "algorithm",
                 "random_state", "n_iter", "tol", "verbose", "params", "init_params",
                 "implementation", "dtype", "backend")


class BaseHMM:
    """The estimators' shared machinery (not used directly: see the module docstring)."""

    _TYPE = None  # the ``type`` field of the model's JSON file
    _PARAM_NAMES = COMMON_PARAMS
    _EMISSION_LETTERS = ""  # the letters of ``params`` that name emission parameters
    _EMISSION_ATTRS = ()  # attributes that must be set before the model can score

    def _common_init(self, n_components, startprob_prior, transmat_prior, algorithm,
                     random_state, n_iter, tol, verbose, params, init_params, implementation,
                     dtype, backend):
        self.n_components = n_components
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
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
        return {k: getattr(self, k) for k in self._PARAM_NAMES}

    def set_params(self, **params):
        """Set constructor arguments (scikit-learn convention); returns self."""
        for k, v in params.items():
            if k not in self._PARAM_NAMES:
                raise ValueError(f"invalid parameter {k!r} for {type(self).__name__}")
            setattr(self, k, v)
        return self

    def __repr__(self):
        shown = ("n_components", "n_features", "covariance_type", "n_mix", "n_iter",
                 "random_state")
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._PARAM_NAMES if k in shown)
        return f"{type(self).__name__}({args})"

    def _backend(self):
        return self.backend

    def _dtype(self):
        return check_dtype_arg(self.dtype)

    # ----------------------------------------------------------------- parameter checks
    def _check_n_components(self):
        return positive_int(self.n_components, "n_components")

    def _check_chain(self):
        """Validated float64 (startprob_, transmat_), stored back."""
        name = type(self).__name__
        for attr in ("startprob_", "transmat_") + self._EMISSION_ATTRS:
            if not hasattr(self, attr):
                raise NotFittedError(f"This {name} has no {attr} yet: call fit(X) or set it")
        n = self._check_n_components()
        sp = _prob(self.startprob_, "startprob_", (n,), "n_components")
        tm = _prob(self.transmat_, "transmat_", (n, n), "n_components x n_components")
        self.startprob_, self.transmat_ = sp, tm
        return sp, tm

    def _check(self):
        """Validate every parameter; returns float64 (startprob_, transmat_)."""
        sp, tm = self._check_chain()
        self._check_emissions()
        return sp, tm

    def _check_emissions(self):
        raise NotImplementedError

    # ----------------------------------------------------------------- the engine
    def _data(self, X, lengths, fitting=False):
        """(validated observations, offsets of the sequences); ``fitting``: called by ``fit``,
        before the emission parameters exist (learn what the data fixes, e.g. n_features)."""
        raise NotImplementedError

    def _log_frames(self, data):
        """Emission log-likelihoods, float64 (n_samples, n_components)."""
        raise NotImplementedError

    def _scaled_frames(self, data, dtype):
        """(B, shift): the frames' likelihoods scaled by each frame's maximum, and the maxima
        (``frames.scaled_frames``).  A room may compute them in one fused pass instead."""
        return frames.scaled_frames(self._log_frames(data), dtype, self._backend(),
                                    overwrite=True)

    def _scores_log_frames(self, n_states):
        """Whether scoring hands the log frames to the kernel that scales them as it reads them
        (``frames._score``) instead of building the table of scaled frames: by default when
        the room has no fused scaling pass of its own."""
        return type(self)._scaled_frames is BaseHMM._scaled_frames

    def _fused_score(self, data, off, sp, tm, dtype, backend):
        """Per-sequence log P with the emissions computed inside the scoring kernel, or None
        where this room has no such kernel for these parameters (the default)."""
        return None

    def _fused_viterbi(self, data, off, sp, tm, backend):
        """(log P, states) of the Viterbi paths with the emissions computed inside the Viterbi
        kernel, or None where this room has no such kernel for these parameters (the
        default)."""
        return None

    def _run(self, kind, data, off, sp, tm):
        """``kind``: "score" (per-sequence log P), "posteriors" ((log P, γ)), "stats" (the
        E-step dict) or "viterbi" ((log P, states)) of checked parameters.

        Where the emissions go through a table (no fused kernel) and the room names a chunk
        size (``_estep_chunk_frames``), scores and Viterbi paths are computed chunk by chunk
        of whole sequences, as the E-step is (``_estep``): a chunk's table stays in cache
        between the pass that writes it and the one that reads it.  numba, one thread,
        GaussianHMM diag N=3, 2000 x 500 frames, whole batch -> chunks: score D=4 24.2 ->
        18.0 ms, D=16 35.9 -> 29.2; Viterbi D=4 20.4 -> 15.5, D=16 32.9 -> 29.8.  The
        per-sequence results are the same bits (no sequence's arithmetic depends on the
        others of its chunk up to SMALL_MAX_N states; above, the lockstep GEMM's rounding may
        move with the block a sequence is scored in, as it does with the thread count)."""
        be, dt = self._backend(), self._dtype()
        if kind == "viterbi":
            res = self._fused_viterbi(data, off, sp, tm, be)
            if res is not None:
                return res
        if kind == "score":
            out = self._fused_score(data, off, sp, tm, dt, be)
            if out is not None:
                return out
        cuts = self._chunk_cuts(off, sp.shape[0], True) if kind in ("score", "viterbi") \
            else None
        if cuts is None:
            return self._run_table(kind, data, off, sp, tm)
        parts = self._over_chunks(lambda d, o: self._run_table(kind, d, o, sp, tm), data, off,
                                  cuts, sp.shape[0])
        if kind == "score":
            return np.concatenate(parts)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _run_table(self, kind, data, off, sp, tm):
        """``_run`` through a table of the frames' emissions (log-likelihoods, or likelihoods
        scaled by each frame's maximum)."""
        be, dt = self._backend(), self._dtype()
        if kind == "viterbi":
            return frames._viterbi(sp, tm, self._log_frames(data), off, be)
        if kind == "score" and self._scores_log_frames(sp.shape[0]):
            # the kernel scales the log frames as it reads them
            return frames._score(sp, tm, self._log_frames(data), off, dt, be, overwrite=True)
        B, shift = self._scaled_frames(data, dt)
        if kind == "score":
            return frames.score_table(sp, tm, B, shift, off, dt, be)
        if kind == "posteriors":
            return frames.posteriors_table(sp, tm, B, shift, off, dt, be)
        return frames.statistics_table(sp, tm, B, shift, off, dt, be)

    def _data_unchecked(self, X, lengths):
        """``_data`` less the checks of the values that the results reveal anyway (see
        ``_evaluate``); rooms whose every value check matters to the kernels keep ``_data``."""
        return self._data(X, lengths)

    def _evaluate(self, kind, X, lengths):
        """``_run(kind)`` of checked parameters on X.  A room may leave some checks of X's
        values until after the run (``_data_unchecked``): a NaN or infinite feature makes
        every state's density at its frame NaN or 0, so its sequence's log-likelihood (or
        Viterbi log-probability) comes out NaN or -inf, and only then is X checked in full
        (ValueError naming the entry, also when the engine stops first at NaN emissions); a
        finite result means finite data, and the pass over X that would have proven it is
        saved (numba, one thread, 10^6 frames of 16 features: 7.6 ms of a 54 ms score).  A
        room that defers nothing is not checked twice."""
        sp, tm = self._check()
        deferred = type(self)._data_unchecked is not BaseHMM._data_unchecked
        data, off = self._data_unchecked(X, lengths)
        try:
            res = self._run(kind, data, off, sp, tm)
        except ValueError:  # the engine's own finding (NaN emissions): X's, if it is X
            if deferred:
                self._data(X, lengths)
            raise
        ll = res if kind == "score" else res[0]
        if deferred and not np.isfinite(ll).all():
            self._data(X, lengths)
        return res

    # ----------------------------------------------------------------- scoring
    def score_sequences(self, X, lengths=None):
        """Log-likelihood of each sequence, shape (n_sequences,) (hmmlearn can only sum them);
        -inf for an impossible sequence, 0 for an empty one."""
        return self._evaluate("score", X, lengths)

    def score(self, X, lengths=None):
        """Log-likelihood of X (the sum over its sequences)."""
        return float(np.sum(self.score_sequences(X, lengths)))

    def score_samples(self, X, lengths=None):
        """Log-likelihood of X and the state posteriors, shape (n_samples, n_components)."""
        out, gamma = self._evaluate("posteriors", X, lengths)
        return float(np.sum(out)), gamma

    def predict_proba(self, X, lengths=None):
        """State posteriors, shape (n_samples, n_components)."""
        return self.score_samples(X, lengths)[1]

    # ----------------------------------------------------------------- decoding
    def decode(self, X, lengths=None, algorithm=None):
        """Most likely states: ``(log_prob, state_sequence)``.

        ``algorithm="viterbi"`` (default): the jointly most likely path and the sum over
        sequences of its log probability.  ``"map"``: each step's most probable state; like
        hmmlearn, ``log_prob`` is then the sum of those maximal posteriors."""
        algorithm = algorithm or self.algorithm
        if algorithm not in ("viterbi", "map"):
            raise ValueError(f"algorithm must be 'viterbi' or 'map', got {algorithm!r}")
        if algorithm == "viterbi":
            lp, states = self._evaluate("viterbi", X, lengths)
            return float(np.sum(lp)), states
        _, gamma = self._evaluate("posteriors", X, lengths)
        return float(np.max(gamma, axis=1).sum()), np.argmax(gamma, axis=1)

    def predict(self, X, lengths=None):
        """The decoded state sequence (``decode(X, lengths)[1]``)."""
        return self.decode(X, lengths)[1]

    # ----------------------------------------------------------------- model selection
    def _n_fit_scalars_per_param(self):
        n = self._check_n_components()
        return {"s": n - 1, "t": n * (n - 1)}

    def aic(self, X, lengths=None):
        """Akaike information criterion: ``-2 log L + 2 k``, k the free parameters (all of
        them, as hmmlearn).  Lower is better."""
        k = sum(self._n_fit_scalars_per_param().values())
        return -2.0 * self.score(X, lengths) + 2.0 * k

    def bic(self, X, lengths=None):
        """Bayesian information criterion: ``-2 log L + k log(n_samples)``.  Lower is better."""
        k = sum(self._n_fit_scalars_per_param().values())
        data, _ = self._data(X, lengths)
        return -2.0 * self.score(X, lengths) + k * np.log(len(data))

    def get_stationary_distribution(self):
        """The stationary distribution of the chain: the left eigenvector of ``transmat_`` for
        its eigenvalue 1, normalised to sum to 1."""
        # as hmmlearn, only transmat_ is needed (startprob_ plays no part)
        if not hasattr(self, "transmat_"):
            raise NotFittedError(f"This {type(self).__name__} has no transmat_ yet: call fit(X) "
                                 f"or set it")
        n = self._check_n_components()
        tm = _prob(self.transmat_, "transmat_", (n, n), "n_components x n_components")
        self.transmat_ = tm
        vals, vecs = np.linalg.eig(tm.T)
        v = np.real_if_close(vecs[:, np.argmax(vals.real)])
        return np.real(v / v.sum())

    # ----------------------------------------------------------------- sampling
    def _sample_from_state(self, state, random_state):
        raise NotImplementedError

    def sample(self, n_samples=1, random_state=None, currstate=None):
        """Draw ``(X, states)`` of ``n_samples`` steps, with hmmlearn's draws for a given seed;
        ``currstate``: the state to start from (to continue a previous sample)."""
        sp, tm = self._check()
        n = positive_int(n_samples, "n_samples")
        rs = check_random_state(self.random_state if random_state is None else random_state)
        tcdf = np.cumsum(tm, axis=1)
        if currstate is None:
            cur = int((np.cumsum(sp) > rs.rand()).argmax())
        else:
            if (isinstance(currstate, (bool, np.bool_))
                    or not isinstance(currstate, numbers.Integral)
                    or not 0 <= currstate < sp.shape[0]):
                raise ValueError(f"currstate must lie in [0, {sp.shape[0]}) (an int, a state "
                                 f"index), got {currstate!r}")
            cur = int(currstate)
        states = np.empty(n, np.int64)
        out = []
        for t in range(n):  # hmmlearn's order of draws: the state, then its emission
            if t:
                cur = int((tcdf[cur] > rs.rand()).argmax())
            states[t] = cur
            out.append(self._sample_from_state(cur, rs))
        return np.atleast_2d(np.array(out)), states

    # ----------------------------------------------------------------- training
    def _needs_init(self, code, name):
        if code in self.init_params:
            if hasattr(self, name):
                _log.warning("Even though the %r attribute is set, it will be overwritten during "
                             "initialization because 'init_params' contains %r", name, code)
            return True
        return not hasattr(self, name)

    def _init_chain(self, n_samples_size):
        """hmmlearn's draws for startprob_ and transmat_, in its order."""
        n = self._check_n_components()
        init = 1.0 / n
        rs = check_random_state(self.random_state)
        if self._needs_init("s", "startprob_"):
            self.startprob_ = rs.dirichlet(np.full(n, init))
        if self._needs_init("t", "transmat_"):
            self.transmat_ = rs.dirichlet(np.full(n, init), size=n)
        per = self._n_fit_scalars_per_param()
        n_fit = sum(per.get(p, 0) for p in self.params)
        if n_samples_size < n_fit:
            # once per fit: a call that initialises nothing (init_params "") on the data it
            # warned about already continues that fit (the CLI calls fit once per iteration)
            key = (int(n_fit), int(n_samples_size))
            if self.init_params != "" or getattr(self, "_degenerate_warned", None) != key:
                _log.warning("Fitting a model with %d free scalar parameters with only %d data "
                             "points will result in a degenerate solution.", n_fit,
                             n_samples_size)
            self._degenerate_warned = key

    def _init(self, X, lengths=None):
        """hmmlearn's initialisation (kept under its name for code that calls it): what
        ``fit`` does before EM, i.e. validate X and set what ``init_params`` names (or is
        unset)."""
        data, _ = self._data(X, lengths, fitting=True)
        self._init_chain(np.size(data))
        self._init_emissions(data)

    def _init_emissions(self, data):
        raise NotImplementedError

    def _emission_sums(self, data, stats):
        """The emission model's part of the E-step of one batch: a dict of arrays (and floats)
        that add up across batches, from the E-step ``stats`` (``_run("stats")``: per-frame
        posteriors ``gamma`` and what the room adds) and the current parameters.  Anything the
        sums are centred on must come from the parameters, so that every batch uses the same."""
        raise NotImplementedError

    def _mstep_emissions(self, sums):
        """Update the emission parameters from the summed statistics (``_emission_sums`` of all
        batches, added up) and the current parameters."""
        raise NotImplementedError

    def _estep_chunk_frames(self, n_states):
        """Frames per chunk of the E-step (``_estep``), scores and Viterbi paths (``_run``), or
        None: the batch in one piece.  By default a chunk's table of n_states values a frame
        holds about CHUNK_BYTES; a room whose frames need more per state says so
        (``_frame_values``), and one with no table (the categorical gather) returns None."""
        values = n_states * self._frame_values()
        return max(CHUNK_MIN_FRAMES, CHUNK_BYTES // (8 * values))

    def _frame_values(self):
        """Float64 values per frame and state that a pass over a chunk's frames holds (1: the
        table of emissions; a mixture's components hold more)."""
        return 1

    def _chunk_of(self, data, a, b):
        """Frames [a, b) of the batch ``data`` (``_data``'s first result) as a batch of their
        own, for one chunk (``_over_chunks``)."""
        return data[a:b]

    def _estep(self, data, off, sp, tm):
        """The E-step of one batch as summable statistics: ``loglik`` (float, the batch's total
        log-likelihood), ``n_sequences`` and ``n_frames`` (ints), ``start`` (Σγ_0), ``trans``
        (Σξ) and the room's ``_emission_sums``.  Adding the dicts of several batches key by key
        (:func:`add_sums`) gives the statistics of all of them; nothing per frame is kept.

        A room that names a chunk size (``_estep_chunk_frames``) has its batch cut into
        chunks of whole sequences of about that many frames, whose E-steps run on the
        backend's threads (each chunk on one) and are added up in chunk order: the per-frame
        tables of a chunk (emissions, γ) stay in cache between the passes over them, and
        none of the batch's size is allocated.  The cut depends on the data alone."""
        cuts = self._chunk_cuts(off, sp.shape[0])
        if cuts is None:
            return self._estep_batch(data, off, sp, tm)
        parts = self._over_chunks(lambda d, o: self._estep_batch(d, o, sp, tm), data, off, cuts,
                                  sp.shape[0])
        total = parts[0]
        for p in parts[1:]:
            total = add_sums(total, p)
        return total

    def _chunk_cuts(self, off, n_states, whole_blocks=False):
        """The sequences cutting the batch into chunks of about ``_estep_chunk_frames`` frames
        (chunk k starts at the first sequence starting at or after frame k * per; with
        ``whole_blocks``, rounded down to a multiple of CHUNK_SEQS where chunks hold few
        sequences), or None where the room names no chunk size or the batch fits in one.
        Fixed by the data."""
        per = self._estep_chunk_frames(n_states)
        n, S = int(off[-1]), len(off) - 1
        if per is None or n <= per:
            return None
        first = np.searchsorted(off[:-1], np.arange(0, n, per))
        if whole_blocks and per * S < CHUNK_ALIGN_BELOW * CHUNK_SEQS * n:  # few blocks a chunk
            first = np.minimum(S, first // CHUNK_SEQS * CHUNK_SEQS)
        return np.unique(np.concatenate([first, [S]]))

    def _over_chunks(self, fn, data, off, cuts, n_states):
        """``[fn(chunk's data, chunk's offsets) for each chunk]`` of ``_chunk_cuts``, in chunk
        order; the chunks on the backend's threads, each on one, a thread's chunks reusing its
        buffers (``reuse_buffers``: so ``fn``'s result must be none of them)."""
        parts = [None] * (len(cuts) - 1)
        pools = {}

        def chunk(i):
            s0, s1 = int(cuts[i]), int(cuts[i + 1])
            a, b = int(off[s0]), int(off[s1])
            pool = pools.setdefault(threading.get_ident(), {})
            with inline_pieces(), reuse_buffers(pool):
                parts[i] = fn(self._chunk_of(data, a, b), off[s0:s1 + 1] - a)

        run_pieces(chunk, len(parts), kernel_threads(SYSTEM, self._backend()),
                   work=int(off[-1]) * n_states ** 2)
        return parts

    def _estep_batch(self, data, off, sp, tm):
        """``_estep`` of the batch in one piece."""
        stats = self._run("stats", data, off, sp, tm)
        sums = dict(loglik=float(np.sum(stats["loglik"])), n_sequences=int(len(off) - 1),
                    n_frames=int(len(data)), start=stats["start"], trans=stats["trans"])
        sums.update(self._emission_sums(data, stats))
        return sums

    def _mstep(self, sums):
        """The M-step from summed statistics (``_estep`` of every batch, added up): the chain's
        Dirichlet updates, then ``_mstep_emissions``.  Needs ``_start_em`` to have run.

        All or nothing: the new parameters are taken together once all are computed, and an
        exception (a ``KeyboardInterrupt`` included) half-way restores the old ones."""
        with self._all_or_nothing():
            sp, tm = self.startprob_, self.transmat_
            sprior, tprior = self._chain_priors
            if "s" in self.params:
                sp = dirichlet_update(sp, sums["start"], sprior, True)
            if "t" in self.params:
                tm = dirichlet_update(tm, sums["trans"], tprior, True)
            dt = self._dtype()
            if dt != np.float64:
                # EM drives unused probabilities down geometrically; below the dtype's range
                # they are 0 in its arithmetic already: stored as 0, they pass the operand check
                sp, tm = (np.where(a.astype(dt) == 0, 0.0, a) for a in (sp, tm))
            self._mstep_emissions(sums)
            self.startprob_, self.transmat_ = sp, tm

    @contextlib.contextmanager
    def _all_or_nothing(self):
        """Undo every attribute (re)bound in the block, and ``monitor_``'s reports, if it
        raises: the M-steps rebind parameters, never change arrays in place."""
        saved = dict(self.__dict__)
        mon = self.__dict__.get("monitor_")
        mon_state = (mon.iter, len(mon.history)) if mon is not None else None
        try:
            yield
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            if mon_state is not None:
                mon.iter = mon_state[0]
                while len(mon.history) > mon_state[1]:
                    mon.history.pop()
            raise

    def _start_em(self, n_iter, tol=None):
        """Check the parameters and priors once before EM and reset ``monitor_`` (its
        ``n_iter`` and ``tol``: the given ones, else the estimator's); returns the checked
        float64 (startprob_, transmat_)."""
        sp, tm = self._check()
        n = sp.shape[0]
        self._chain_priors = (check_prior(self.startprob_prior, "startprob_prior", (n,)),
                              check_prior(self.transmat_prior, "transmat_prior", (n, n)))
        self._check_emission_priors()
        self.monitor_._reset()
        self.monitor_.tol = self.tol if tol is None else tol
        self.monitor_.n_iter, self.monitor_.verbose = n_iter, self.verbose
        return sp, tm

    def _check_fit_args(self):
        # 0 is hmmlearn's "initialise only": fit sets what init_params names and runs no EM
        n_iter = positive_int(self.n_iter, "n_iter", minimum=0)
        _check_tol(self.tol)
        for letters, name in ((self.params, "params"), (self.init_params, "init_params")):
            if not isinstance(letters, str):
                raise ValueError(f"{name} must be a string of parameter letters, got {letters!r}")
        return n_iter

    def fit(self, X, lengths=None):
        """Estimate the parameters by EM (Baum-Welch), hmmlearn's ``fit``: initialise what
        ``init_params`` names (or is unset), then iterate until the log-likelihood gains less
        than ``tol`` or ``n_iter`` iterations ran (``monitor_``).  Returns self.

        Interrupted (``KeyboardInterrupt`` or any exception during EM), the estimator keeps the
        parameters of its last completed iteration, and ``monitor_.iter`` says how many ran."""
        n_iter = self._check_fit_args()
        data, off = self._data(X, lengths, fitting=True)
        if len(data) == 0:
            raise ValueError("X must not be empty: there is nothing to fit")
        self._init_chain(np.size(data))
        self._init_emissions(data)
        sp, tm = self._start_em(n_iter)
        for _ in range(n_iter):
            sums = self._estep(data, off, sp, tm)
            with self._all_or_nothing():  # parameters and monitor_ move on together
                self._mstep(sums)
                self.monitor_.report(sums["loglik"])
            sp, tm = self.startprob_, self.transmat_
            if self.monitor_.converged:
                break
        return self

    def _check_emission_priors(self):
        """Validate the emission model's priors before EM starts (none by default)."""

    # ----------------------------------------------------------------- persistence
    def _emission_json(self):
        raise NotImplementedError

    @classmethod
    def _from_json(cls, obj, path, **kwargs):
        raise NotImplementedError

    def save(self, path):
        """Write the model as JSON (``format_version``, ``type``, the chain, the emission
        parameters), atomically: a reader never sees a half-written file."""
        sp, tm = self._check()
        obj = dict(format_version=FORMAT_VERSION, type=self._TYPE, startprob=sp.tolist(),
                   transmat=tm.tolist())
        obj.update(self._emission_json())
        write_json_atomic(path, obj)

    @classmethod
    def load(cls, path, **kwargs):
        """A model from a JSON file written by :meth:`save` (extra keyword arguments go to the
        constructor).

        Raises
        ------
        ValueError
            Not a model file, a file of another model type (the message names both), a newer
            format version, missing keys or invalid parameters (the message names them).
        """
        obj = read_json(path)
        kind = obj.get("type", "categorical")
        if kind != cls._TYPE:
            raise ValueError(f"{path}: holds a {kind!r} model, not a {cls._TYPE!r} one "
                             f"(load it with fasthw6.hmm.load_model, or the matching class)")
        model = cls._from_json(obj, path, **kwargs)
        model._check()
        return model


class JSONTextError(ValueError):
    """A model file's JSON that parses but cannot be read as numbers: an integer beyond float64's
    range, or nesting deeper than the parser recurses.  ``str()`` is ``"<path>:<line>: <message>"``;
    ``line`` and ``message`` are kept apart for callers that format their own."""

    def __init__(self, path, line, message):
        self.path, self.line, self.message = path, line, message
        super().__init__(f"{path}:{line}: {message}")


class _HugeInt(Exception):
    def __init__(self, digits):
        self.digits = digits


def _parse_int(text):
    # an integer beyond float64's range overflows where the arrays are made (and one over 4300
    # digits does not even convert): refused here, where the file and line are known
    if len(text) > 300 and math.isinf(float(text)):
        raise _HugeInt(text)
    return int(text)


def _deep_line(text, limit=256):
    """1-based line where JSON brackets (outside strings) first nest ``limit`` deep."""
    depth, in_str, esc = 0, False, False
    for i, c in enumerate(text):
        if in_str:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c in "[{":
            depth += 1
            if depth >= limit:
                return text.count("\n", 0, i) + 1
        elif c in "]}":
            depth -= 1
    return 1


def parse_json(text, path):
    """``json.loads(text)``, refusing an integer beyond float64's range and too deep nesting with
    a :class:`JSONTextError` naming ``path`` and the line (``json.JSONDecodeError`` as it is)."""
    try:
        return json.loads(text, parse_int=_parse_int)
    except _HugeInt as exc:
        d = exc.digits
        i = text.find(d)
        line = text.count("\n", 0, i) + 1 if i >= 0 else 1
        shown = d if len(d) <= 24 else f"{d[:12]}...{d[-6:]}"
        raise JSONTextError(path, line, f"number {shown} ({len(d.lstrip('-'))} digits) is "
                            f"out of range of a float") from None
    except RecursionError:
        raise JSONTextError(path, _deep_line(text), "JSON nested too deeply "
                            "(a model file holds arrays of at most 3 dimensions)") from None


def read_json(path):
    """The JSON object of a model file, its format version checked."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        obj = parse_json(text, path)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not a JSON model file ({exc})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object (a model), got {type(obj).__name__}")
    version = obj.get("format_version", 0)
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise ValueError(f"{path}: format_version must be a non-negative int, got {version!r}")
    if version > FORMAT_VERSION:
        raise ValueError(f"{path}: format version {version} is newer than this fasthw6 reads "
                         f"({FORMAT_VERSION}); upgrade fasthw6")
    missing = [k for k in ("startprob", "transmat") if k not in obj]
    if missing:
        raise ValueError(f"{path}: missing key(s) {', '.join(missing)}")
    return obj


def require(obj, path, *keys):
    missing = [k for k in keys if k not in obj]
    if missing:
        raise ValueError(f"{path}: missing key(s) {', '.join(missing)}")
    return [obj[k] for k in keys]


def _check_tol(tol):
    if isinstance(tol, (bool, np.bool_)) or not isinstance(tol, numbers.Real) or np.isnan(tol):
        raise ValueError(f"tol must be a real number, got {tol!r}")
    return float(tol)


def add_sums(a, b):
    """Two E-step dicts (``BaseHMM._estep``) added key by key: the statistics of both batches.

    Examples
    --------
    >>> add_sums(dict(loglik=-1.0, start=np.array([1.0, 0.0])),
    ...          dict(loglik=-2.0, start=np.array([0.5, 0.5])))
    {'loglik': -3.0, 'start': array([1.5, 0.5])}
    """
    if a.keys() != b.keys():
        raise ValueError(f"cannot add E-step statistics with different keys: {sorted(a)} and "
                         f"{sorted(b)}")
    return {k: a[k] + b[k] for k in a}


def write_json_atomic(path, obj):
    """Write ``obj`` as JSON to ``path`` through a temporary file renamed into place (straight
    through to a device or a pipe such as /dev/stdout: there is nothing to rename onto)."""
    path = os.fspath(path)
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        st = None
    if st is not None and not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        with open(path, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1)
            f.write("\n")
        return
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".part", dir=d)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
