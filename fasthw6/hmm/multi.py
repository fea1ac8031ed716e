"""Scoring a ragged batch under many models at once: ``score_models`` (the log-likelihood of
every sequence under each of K models) and ``predict_model`` (the best model per sequence), for
classifying sequences by the model that explains them best.

One pass over the symbols: the kernel (``forward_loglik_models``, numba, Cython and NumPy
reference, dispatched by ``fasthw6._backend.get_kernel``) takes a block of sequences, checks
their symbols' range, and scores them under every model while their symbols are in cache, the
models as the lanes of its lockstep forward pass (``fasthw6.hmm._numba.multi`` has the design).
The batch is cut into pieces of whole blocks, run in parallel as ``score_sequences``'s
(``api._score_ops``).  Every score equals ``score_sequences``'s under that model bit for bit
(models of at most ``SMALL_MAX_N`` = 8 states; above, to rounding), whatever the other models.
"""
from __future__ import annotations

import numpy as np

from .._backend import get_kernel
from .._parallel import cut, run_pieces
from .._validate import check_dtype_arg
from . import _sizes
from ._base import BaseHMM
from ._checks import SYSTEM, _batch, _kernel_operands, check_parameters
from .api import SCORE_PIECES_PER_THREAD, _n_threads, _score_ops
from .estimator import CategoricalHMM

# lanes of the kernel, (sequence slot, model) pairs: the kernels' own constant (``_numba/multi.py``
# explains the choice; tests compare the three)
MULTI_LANES = 16
W = MULTI_LANES
# fewest models worth a group of the kernel's lanes (``_kernel_models``): 16 lanes x 4.9 ns
# against about 8 ns per model-step for one model at a time (N = M = 8, bench_score_models)
MIN_GROUP = 10


def _describe(m):
    return type(m).__name__ if isinstance(m, BaseHMM) else "(startprob, transmat, emissionprob)"


def _categorical(models, dtype):
    """[(startprob, transmat, emissionprob) float64, validated], the arithmetic dtype, and None;
    or (None, None, frame models) when every model is a framewise (non-categorical) one."""
    if isinstance(models, (BaseHMM, np.ndarray)) or not hasattr(models, "__len__"):
        raise TypeError("models must be a list of CategoricalHMMs or (startprob, transmat, "
                        f"emissionprob) triples, got {type(models).__name__}")
    models = list(models)
    if not models:
        raise ValueError("models is empty: score_models needs at least one model")
    frames = [i for i, m in enumerate(models)
              if isinstance(m, BaseHMM) and not isinstance(m, CategoricalHMM)]
    if frames:
        if len(frames) == len(models):
            return None, None, models
        cat = [i for i in range(len(models)) if i not in frames]
        raise ValueError(
            f"models mix symbol and frame models: model {cat[0]} ({_describe(models[cat[0]])}) "
            f"reads symbols, model {frames[0]} ({_describe(models[frames[0]])}) reads frames; "
            f"score them in separate calls")
    out, all32 = [], True
    for i, m in enumerate(models):
        if isinstance(m, CategoricalHMM):
            sp, tm, em, dt = m._ops()
            all32 &= dt == np.float32
        elif isinstance(m, (tuple, list)) and len(m) == 3:
            all32 &= all(np.asarray(a).dtype == np.float32 for a in m)
            sp, tm, em = check_parameters(*m, suffix=f" of model {i}")
        else:
            raise TypeError(f"model {i} must be a CategoricalHMM or a (startprob, transmat, "
                            f"emissionprob) triple, got {type(m).__name__}")
        out.append((sp, tm, np.atleast_2d(em)))
    sizes = [em.shape[1] for _, _, em in out]
    if len(set(sizes)) > 1:
        other = next(i for i, s in enumerate(sizes) if s != sizes[0])
        raise ValueError(f"models disagree on the alphabet size: model 0 emits {sizes[0]} "
                         f"symbols, model {other} emits {sizes[other]}; every model must emit "
                         f"the same symbols 0..n_features-1")
    dt = check_dtype_arg(dtype if dtype is not None else np.float32 if all32 else np.float64)
    return out, dt, None


def _operands(models, dt):
    """Each model's kernel operands (startprob, transmat, emission rows by symbol) in ``dt``."""
    ops = []
    for i, (sp, tm, em) in enumerate(models):
        try:
            ops.append(_kernel_operands(sp, tm, em, dt))
        except ValueError as exc:
            raise ValueError(f"model {i}: {exc}") from None
    return ops


def _make_tables(ops, dt):
    """The kernel's lane tables (``_numba/multi.py``): (Ls, Kg, sp_rep, A_rep, E_rep).  Lane l
    of group g runs model g*Kg + q, q = l - slot*Kg (the spare lanes a valid model too); models
    of fewer states are padded with zero states to the largest N."""
    K, M = len(ops), ops[0][2].shape[0]
    N = max(o[0].shape[0] for o in ops)
    Kg = min(K, W)
    Ls = max(1, W // Kg)
    G = -(-K // Kg)
    SP, A, E = np.zeros((K, N), dt), np.zeros((K, N, N), dt), np.zeros((K, N, M), dt)
    for m, (sp, tm, et) in enumerate(ops):
        n = sp.shape[0]
        SP[m, :n], A[m, :n, :n], E[m, :n] = sp, tm, et.T
    lane = np.arange(W)
    q = (lane - np.minimum(lane // Kg, Ls - 1) * Kg) % Kg
    model = np.arange(G)[:, None] * Kg + q[None, :]
    model = np.where(model < K, model, (np.arange(G) * Kg)[:, None])  # (G, W)
    sp_rep = np.ascontiguousarray(SP[model].transpose(0, 2, 1)).reshape(G, N * W)
    A_rep = np.ascontiguousarray(A[model].transpose(0, 2, 3, 1)).reshape(G, N * N * W)
    E_rep = np.ascontiguousarray(E[model].transpose(0, 3, 2, 1)).reshape(G, M, N * W)
    return Ls, Kg, sp_rep, A_rep, E_rep


def _kernel_models(ops, backend):
    """How many of the models (the first ones) the many-model kernel scores; the rest go model
    by model through ``score_sequences``' kernel.  The kernel costs a step of all 16 lanes per
    group of models whether the group is full or not (N = M = 8: 16 x 4.9 ns), and
    ``score_sequences`` about 8 ns per model-step, so a group of fewer than ``MIN_GROUP``
    models (alone or as the last group) is cheaper model by model.  Large N: each model's step
    is a BLAS GEMM in ``score_sequences``, where sharing the pass over the symbols saves
    nothing worth a worse kernel.  The Cython kernels, built for baseline x86-64, break even at
    about the same group size (19 ns per model-step for a full group against 32 model by
    model).  Either way every score is ``score_sequences``' bit for bit."""
    K = len(ops)
    if max(o[0].shape[0] for o in ops) > _sizes.SMALL_MAX_N:
        return 0
    if K < W:
        return K if K >= MIN_GROUP else 0
    return K - (K % W if K % W < MIN_GROUP else 0)


def _score_models_ops(x, off, ops, dt, backend):
    """(position of a symbol outside the emission tables or -1, (S, K) log-likelihoods)."""
    S, K = off.shape[0] - 1, len(ops)
    out = np.zeros((S, K))  # an empty sequence scores 0
    nk = _kernel_models(ops, backend)
    for m in range(nk, K):  # model by model (all bit for bit score_sequences')
        bad, out[:, m] = _score_ops(x, off, ops[m], backend)
        if bad >= 0:
            return bad, out
    if nk == 0:
        return -1, out
    Ls, Kg, sp_rep, A_rep, E_rep = _make_tables(ops[:nk], dt)
    kernel = get_kernel(SYSTEM, "forward_loglik_models", backend)
    lens = off[1:] - off[:-1]
    order = np.argsort(lens, kind="stable")  # shortest first; blocks of Ls consecutive entries
    order = order[np.count_nonzero(lens == 0):]
    work = np.add.reduceat(lens[order], np.arange(0, order.shape[0], Ls)) \
        if order.shape[0] else np.zeros(0, np.int64)
    bounds = cut(np.concatenate(([0], np.cumsum(work))),
                 SCORE_PIECES_PER_THREAD * _n_threads(backend)) * Ls
    bad = np.full(bounds.shape[0] - 1, -1, np.int64)

    head = out[:, :nk] if nk == K else np.zeros((S, nk))

    def piece(i):
        bad[i] = kernel(x, off, order[bounds[i]:bounds[i + 1]], Ls, Kg, sp_rep, A_rep, E_rep,
                        head)

    run_pieces(piece, bounds.shape[0] - 1, _n_threads(backend))
    if nk < K:
        out[:, :nk] = head
    return (int(bad[bad >= 0][0]) if bad.max(initial=-1) >= 0 else -1), out


def score_models(models, X, lengths=None, *, dtype=None, backend=None):
    """Log-likelihood of every sequence of a ragged batch under each of K models, in one pass
    over the symbols.

    Parameters
    ----------
    models : sequence of CategoricalHMM or (startprob, transmat, emissionprob) triples
        K >= 1 models (the two kinds may be mixed), all emitting the same ``n_features``
        symbols; they may differ in their number of states.  A fitted estimator's own
        ``backend`` is not used (``backend=`` below is).  Framewise models (GaussianHMM,
        GMMHMM, PoissonHMM, MultinomialHMM) are accepted when every model is one: they are then
        scored one after the other by their own ``score_sequences`` on the frames ``X``.
    X, lengths :
        The ragged batch, as :func:`fasthw6.hmm.score_sequences` takes it.
    dtype : {None, float32, float64}
        Arithmetic precision; None: float32 if every model is float32 (an estimator's ``dtype``,
        a triple's arrays), else float64.  Results are float64 either way.
    backend : str, optional
        ``"numba"``, ``"cython"``, ``"numpy"`` or ``"auto"``.

    Returns
    -------
    ndarray of float64, shape (n_sequences, K)
        ``out[s, k] = log P(sequence s | model k)``: equal to ``score_sequences`` under model k
        (bit for bit for models of up to 8 states); -inf for an impossible sequence, 0.0 for an
        empty one.

    Raises
    ------
    ValueError
        No models; models disagreeing on the alphabet size (naming two of them); symbol and
        frame models mixed; invalid probabilities (naming the model and array); symbols out of
        range (naming the position), bad lengths.
    TypeError
        A model that is neither a CategoricalHMM nor a triple; non-integer ``X``.

    Examples
    --------
    >>> a = ([1.0], [[1.0]], [[0.5, 0.5]])
    >>> b = ([1.0], [[1.0]], [[0.9, 0.1]])
    >>> np.exp(score_models([a, b], [0, 0, 1], [2, 1])).round(3).tolist()
    [[0.25, 0.81], [0.5, 0.1]]
    """
    cat, dt, frames = _categorical(models, dtype)
    if frames is not None:
        return np.column_stack([np.asarray(m.score_sequences(X, lengths), np.float64)
                                for m in frames])
    m = cat[0][2].shape[1]
    x, off = _batch(X, lengths, m, backend, defer_range=True)
    bad, out = _score_models_ops(x, off, _operands(cat, dt), dt, backend)
    if bad >= 0:
        raise ValueError(f"X holds symbol {np.asarray(X).ravel()[bad]} at position {bad}, "
                         f"outside 0..{m - 1} (n_features={m})")
    return out


def predict_model(models, X, lengths=None, *, dtype=None, backend=None):
    """Index of the model under which each sequence is most likely (``argmax`` over the
    columns of :func:`score_models`, whose parameters it takes).

    Returns
    -------
    ndarray of int64, shape (n_sequences,)
        The index into ``models`` of the best model; ties go to the lowest index (an empty
        sequence, 0 under every model, gets 0).  A sequence impossible under every model
        (all scores -inf) gets -1.

    Examples
    --------
    >>> a = ([1.0], [[1.0]], [[0.5, 0.5, 0.0]])
    >>> b = ([1.0], [[1.0]], [[0.9, 0.1, 0.0]])
    >>> predict_model([a, b], [0, 0, 1, 2], [2, 1, 1]).tolist()
    [1, 0, -1]
    """
    ll = score_models(models, X, lengths, dtype=dtype, backend=backend)
    best = np.argmax(ll, axis=1).astype(np.int64) if ll.shape[0] else np.zeros(0, np.int64)
    if best.shape[0]:
        best[np.isneginf(ll.max(axis=1))] = -1
    return best
