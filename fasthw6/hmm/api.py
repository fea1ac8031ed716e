"""Public HMM batch functions: one compiled call per ragged batch, dispatched through
``fasthw6._backend.get_kernel``; inputs are checked by ``_checks`` first, the kernels check
nothing.

Batch functions take hmmlearn's ragged-batch convention -- every sequence's symbols end to end in
``X`` plus their ``lengths``.  ``CategoricalHMM`` (``estimator``) is built on them.
"""
from __future__ import annotations

import numpy as np

from .._backend import get_kernel, kernel_threads
from .._parallel import cut, run_pieces
from . import _anchors  # noqa: F401  (registers hmmlearn as the anchor of these functions)
from . import _sizes
from . import _logspace
from ._checks import SYSTEM, _as_symbols, _batch, _kernel_operands, _model

# α̂ values one lockstep block of the E-step and posteriors kernels stores (shortest length x N x
# lanes; 16 MB per thread in float64); a sequence longer than this over N is a block of its
# own.  An argument of the kernels, so that it has one home (and tests can make long-sequence
# blocks with short sequences).  It caps the lanes where N x length is large, and wider
# blocks make larger GEMMs: numba, one thread, 10^6 symbols, E-step, 2^20 -> 2^21 values: N=64
# x 2000 steps (8 -> 16 lanes) 911-926 -> 792-804 ms, N=128 x 500 (16 -> 32 lanes) 1.33-1.34
# -> 1.10-1.20 s (5 x 10^5 symbols), N=64 x 500 (32 -> 64) 692-713 -> 675-710, N=24-32 the
# same (64 lanes either way).
ESTEP_BLOCK_ELEMS = 1 << 21
ESTEP_LANES = _sizes.ESTEP_LANES
# A batch's scoring order is cut into pieces at multiples of the kernels' lanes, so that its
# blocks are the same whatever the thread count.
SCORE_LANES = _sizes.LANES
SCORE_PIECES_PER_THREAD = 4  # more balance ragged batches; each costs a kernel call
# Scoring and Viterbi (whose results do not depend on the pieces) cut a big batch into pieces of
# at most about this much work (symbols x N^2), so that an interrupted call leaves at most one
# short piece running behind it.  The E-step's pieces stay as they are: its sums are merged per
# piece, and another count rounds differently.
PIECE_WORK = 1 << 28


def _work(x, n):
    """About the scalar operations of a kernel call on the symbols ``x`` with ``n`` states."""
    return int(x.shape[0]) * int(n) * int(n)


def _extra_pieces(work, n_pieces):
    return max(int(n_pieces), -(-int(work) // PIECE_WORK))


def _score_batch(X, lengths, sp, tm, em, dtype, backend):
    """Per-sequence log-likelihoods; the scoring kernel range-checks the symbols itself, in the
    same pass over X (a separate check cost 0.36 ms of 2.9 per 10^6 int64 symbols)."""
    x, off = _batch(X, lengths, em.shape[1], backend, defer_range=True)
    bad, out = _score_ops(x, off, _kernel_operands(sp, tm, em, dtype), backend)
    if bad >= 0:
        _as_symbols(X, em.shape[1], backend=backend)  # raises, naming the symbols' range
        raise ValueError(f"X holds symbol {np.asarray(X).ravel()[bad]} at position {bad}, "
                         f"outside 0..{em.shape[1] - 1}")
    if (out == -np.inf).any():  # underflow inside one step, or truly impossible: log space
        lem = _log_emissions(em)
        _logspace.rescore(out, off, lambda a, b: lem[:, x[a:b]].T, *_logspace.logs(sp, tm))
    return out


def _log_emissions(em):
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(em, np.float64))


def _recover(out, off, x, sp, tm, em):
    """The sequences the kernels scored -inf, in log space (``_logspace``): yields
    (sequence, a, b, log P, γ, Σξ) for each that is possible after all."""
    if not (out == -np.inf).any():
        return
    lsp, ltm = _logspace.logs(sp, tm)
    lem = _log_emissions(em)
    for s in np.nonzero(out == -np.inf)[0]:
        a, b = int(off[s]), int(off[s + 1])
        if b > a:
            ll, g, xi = _logspace.forward_backward(lem[:, x[a:b]].T, lsp, ltm, True)
            if ll > -np.inf:
                yield s, a, b, ll, g, xi


def _score_ops(x, off, ops, backend, name="forward_loglik"):
    """(position of a symbol outside the emission table or -1, per-sequence log-likelihoods)
    of kernel operands ``ops`` = (startprob, transmat, emission rows by symbol); ``name``: the
    kernel, ``forward_loglik`` or (rows of log-likelihoods) ``forward_loglik_frames``."""
    out = np.zeros(off.shape[0] - 1, np.float64)  # an empty sequence scores 0
    kernel = get_kernel(SYSTEM, name, backend)
    lens = off[1:] - off[:-1]
    order = np.argsort(lens, kind="stable")  # shortest first; the kernels' blocks are
    order = order[np.count_nonzero(lens == 0):]  # SCORE_LANES consecutive entries of it
    # pieces: whole blocks of about equal symbol count, so blocks do not depend on the pieces
    n_blocks = -(-order.shape[0] // SCORE_LANES)
    work = np.add.reduceat(lens[order], np.arange(0, order.shape[0], SCORE_LANES)) \
        if n_blocks else np.zeros(0, np.int64)
    total = _work(x, ops[0].shape[0])
    bounds = cut(np.concatenate(([0], np.cumsum(work))),
                 _extra_pieces(total, SCORE_PIECES_PER_THREAD * _n_threads(backend))) * SCORE_LANES
    bad = np.full(bounds.shape[0] - 1, -1, np.int64)

    def piece(i):
        bad[i] = kernel(x, off, order[bounds[i]:bounds[i + 1]], *ops, out)

    run_pieces(piece, bounds.shape[0] - 1, _n_threads(backend), work=total)
    return (int(bad[bad >= 0][0]) if bad.max(initial=-1) >= 0 else -1), out


def _bp_dtype(n):
    return np.int8 if n <= 127 else np.int16 if n <= 32767 else np.int32


def _pieces(off, backend, per_thread):
    """Boundaries of the pieces a batch is cut into (``fasthw6._parallel``): ``per_thread`` per
    thread.  Every backend gets the same pieces, so results agree bit for bit."""
    return cut(off, per_thread * _n_threads(backend))


def _lockstep(x, off, ops, backend, per_thread, gamma, want_stats, m, obs=None,
              max_lanes=ESTEP_LANES, obs_rows=False):
    """Posteriors (into ``gamma``) or E-step sums of kernel operands ``ops``: one plan of
    lockstep blocks for the batch (blocks do not depend on the thread count), its chunks run
    as pieces.  Returns (per-sequence log P, per-chunk sums (st, tr, ob)).

    ``obs``: one (m, N) float64 array that every chunk adds its Σγ by symbol into, instead of
    one per chunk; right when no two chunks see one symbol (the framewise path, where symbol t
    is frame t), and then ``ob`` is returned empty.  With ``obs_rows`` (framewise, float64
    operands) the kernel stores each frame's γ into its row of ``obs`` instead (its γ rows
    mode, with an ``ob`` of no rows): no zeroed table to add into, and no load of a row that
    has left the cache before each add, which perf put at 12% of a framewise E-step at N=16.
    ``max_lanes``: most sequences per block (``lockstep_plan``)."""
    n = ops[0].shape[0]
    plan = get_kernel(SYSTEM, "lockstep_plan", backend)(
        off, n, per_thread * _n_threads(backend), ESTEP_BLOCK_ELEMS, max_lanes)
    order, bstart, cbound, sizes = plan
    C = cbound.shape[0] - 1
    out = np.zeros(off.shape[0] - 1, np.float64)  # an empty sequence (not in the plan) scores 0
    mm = m if want_stats and obs is None else 1
    st, tr, ob = np.zeros((C, n)), np.zeros((C, n, n)), np.zeros((C, mm, n))
    kernel = get_kernel(SYSTEM, "lockstep_run", backend)
    want_gamma = not want_stats
    if obs_rows:  # γ rows into obs; an ob of no rows takes no Σγ by symbol
        gamma, obs, want_gamma = obs, np.zeros((0, n)), True

    def piece(c):
        kernel(x, off, *ops, order, bstart, cbound[c], cbound[c + 1], sizes[c], st[c], tr[c],
               ob[c] if obs is None else obs, gamma, out, want_stats, want_gamma)

    run_pieces(piece, C, _n_threads(backend), work=_work(x, n))
    return out, (st, tr, ob)


def _n_threads(backend):
    return kernel_threads(SYSTEM, backend)


# --------------------------------------------------------------------------- batch functions
def score_sequences(X, lengths, startprob, transmat, emissionprob, *, dtype=None, backend=None):
    """Log-likelihood of every sequence of a ragged batch, in one compiled call.

    Parameters
    ----------
    X : array_like of int, shape (n_samples,) or (n_samples, 1)
        Symbols of all sequences end to end, each in ``[0, n_features)``; any integer dtype
        (8- and 64-bit ones are read in place, others widened to int64).
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
    gamma = np.empty((x.shape[0], sp.shape[0]), dt)
    out, _ = _lockstep(x, off, _kernel_operands(sp, tm, em, dt), backend, 4, gamma, False,
                       em.shape[1])
    for s, a, b, ll, g, _ in _recover(out, off, x, sp, tm, em):
        out[s], gamma[a:b] = ll, g
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
    ops = _kernel_operands(sp, tm, em, dt)
    out, (st, tr, ob) = _lockstep(x, off, ops, backend, 1, np.zeros((1, n), dt), True, m)
    start, trans = _chain_sums(st, tr, ops[1])
    obs_t = np.zeros((m, n))
    for c in range(ob.shape[0]):  # in chunk order, as _chain_sums
        obs_t += ob[c]
    for s, a, b, ll, g, xi in _recover(out, off, x, sp, tm, em):
        out[s] = ll
        start += g[0]
        trans += xi
        np.add.at(obs_t, np.asarray(x[a:b], np.int64), g)
    return dict(loglik=out, start=start, trans=trans, obs=np.ascontiguousarray(obs_t.T))


def _chain_sums(st, tr, A):
    """(Σγ_0, Σξ) from the chunks' sums, added in chunk order: the sums do not depend on which
    thread ran what.  ``A``: the kernels' transition matrix."""
    n = A.shape[0]
    start, trans = np.zeros(n), np.zeros((n, n))
    for c in range(st.shape[0]):
        start += st[c]
        trans += tr[c] * A  # Σ_t ξ_t(i, j) = A_ij Σ_t α̂_t(i) u_{t+1}(j) / Z_t
    return start, trans


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
    x, off = _batch(X, lengths, em.shape[1], backend, defer_range=True)
    return _viterbi(x, off, sp, tm, em, backend, X)


def _viterbi(x, off, sp, tm, em, backend, X=None):
    """``_viterbi_logs`` of the model's logs, the symbols ``x`` range-checked by the kernel as
    it first reads each block (a separate pass cost 0.45 ms of 7.0 per 10^6 int64 symbols at
    N=3), so the caller may pass them unchecked; a bad one raises here as ``_as_symbols``
    would have, naming the value in the caller's array X if given."""
    with np.errstate(divide="ignore"):
        lsp, ltm, lem = np.log(sp), np.log(tm), np.ascontiguousarray(np.log(em).T)
    out, states, bad = _viterbi_logs(x, off, lsp, ltm, lem, backend, check=True)
    if bad >= 0:
        _as_symbols(X if X is not None else x, em.shape[1], backend=backend)  # names the range
        raise ValueError(f"X holds symbol {x[bad]} at position {bad}, outside "
                         f"0..{em.shape[1] - 1}")
    return out, states


def _viterbi_logs(x, off, lsp, ltm, lem, backend, name="viterbi", check=False):
    """Viterbi of float64 log operands: ``lem`` holds the log-emission row of each symbol
    (or, for ``name="viterbi_diag"``, the terms its kernel computes them from).  Returns (log
    probabilities, states); with ``check``, the kernel range-checks the symbols against the
    rows of ``lem`` and the position of a bad one (or -1) is returned third.  Without, the
    symbols are the caller's to guarantee (the framewise callers' are 0..n-1)."""
    S = off.shape[0] - 1
    states = np.empty(x.shape[0], np.int64)
    out = np.empty(S, np.float64)
    kernel = get_kernel(SYSTEM, name, backend)
    total = _work(x, lsp.shape[0])
    bounds = cut(off, _extra_pieces(total, _n_threads(backend)))
    bp_dtype = _bp_dtype(lsp.shape[0])
    bad = np.full(bounds.shape[0] - 1, -1, np.int64)
    check_m = lem.shape[0] if check else -1

    def piece(i):
        a, b = bounds[i], bounds[i + 1]
        maxlen = int(np.max(off[a + 1:b + 1] - off[a:b])) if b > a else 0
        bp = np.empty((1, maxlen, lsp.shape[0]), bp_dtype)
        bad[i] = kernel(x, off[a:b + 1], lsp, ltm, lem, bp, states, out[a:b], check_m)

    run_pieces(piece, bounds.shape[0] - 1, _n_threads(backend), work=total)
    if check:
        return out, states, int(bad[bad >= 0][0]) if bad.max(initial=-1) >= 0 else -1
    return out, states
