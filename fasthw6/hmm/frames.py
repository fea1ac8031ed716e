"""The emission-agnostic engine: HMM batch functions on per-frame emission log-likelihoods.

Any emission model plugs in here: it computes ``framelogprob[t, i] = log p(x_t | state i)`` for
every frame of a ragged batch (a Gaussian, a mixture, a neural network's per-frame scores), and
these functions do the rest -- scaled forward, posteriors, E-step sums, Viterbi -- on the same
compiled kernels as the categorical model.

How: the kernels read each step's emission row from a table indexed by the step's symbol.  Here
the symbol of frame t is t itself, and row t of the table is the frame's likelihoods scaled by
their maximum, ``exp(framelogprob[t] - max_i framelogprob[t, i])``: in (0, 1] with a 1 in every
possible frame, so no range is lost however small the likelihoods (a frame at -1000 everywhere
scores right), and the maxima are added back to each sequence's log-likelihood.  Scoring in
float64 reads ``framelogprob`` itself and scales each row as it goes (``forward_loglik_frames``),
which spares writing and reading back the table.  Viterbi runs in log space on
``framelogprob`` itself.  One set of kernels serves every emission model, the
categorical one keeping its gather of a small table.
"""
from __future__ import annotations

import numpy as np

from .._backend import kernel_threads
from .._parallel import run_pieces, scratch
from .._validate import check_dtype_arg
from ._checks import SYSTEM, _offsets, _prob
from ._sizes import ESTEP_FRAMES_LANES, ESTEP_LANES, ESTEP_SMALL_MAX_N
from . import _logspace
from .api import _chain_sums, _lockstep, _score_ops, _viterbi_logs

# frames converted to scaled likelihoods per block of about this many values: a block stays in
# cache across the three passes over it (max, subtract, exp)
_SCALE_ELEMS = 1 << 15


def _chain(startprob, transmat):
    """Validated float64 (startprob, transmat)."""
    sp = np.asarray(startprob)
    if sp.ndim != 1 or sp.size == 0:
        raise ValueError(f"startprob must be a non-empty 1-D array, got shape {sp.shape}")
    n = sp.shape[0]
    return (_prob(startprob, "startprob", (n,), "one entry per state"),
            _prob(transmat, "transmat", (n, n), "n_components x n_components"))


def _bad_entry(arr, name, a=0, b=None):
    """ValueError naming the first NaN or +inf entry of ``arr[a:b]`` (rows), if it has one."""
    rows = arr[a:b]
    bad = np.isnan(rows) | (rows == np.inf)
    if bad.any():
        r, c = (int(i) for i in np.argwhere(bad)[0])
        return ValueError(f"{name}[{a + r}, {c}] is {rows[r, c]}: log-likelihoods must be "
                          f"finite or -inf")
    return None


def check_frames(framelogprob, n_states, lengths=None, name="framelogprob", scan=True):
    """(framelogprob as a C-contiguous float64 array of shape (n_samples, n_states), offsets).

    Entries may be -inf (a state that cannot emit the frame); NaN and +inf raise ValueError.
    ``scan=False``: the caller finds them later for free (``scaled_frames`` and the framewise
    scoring kernel do, from each frame's maximum), which saves two passes over the array."""
    arr = np.asarray(framelogprob)
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.floating)
                                     or np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must hold real numbers, got {arr.dtype}")
    if arr.ndim != 2 or arr.shape[1] != n_states:
        raise ValueError(f"{name} must have shape (n_samples, {n_states}) (one column per "
                         f"state), got {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if scan:
        err = _bad_entry(arr, name)
        if err is not None:
            raise err
    return arr, _offsets(lengths, arr.shape[0])


def scaled_frames(flp, dtype, backend=None, overwrite=False, name=None):
    """(B, shift): B[t] = exp(flp[t] - shift[t]) in ``dtype``, shift[t] = max_i flp[t, i]
    (0 for a frame impossible in every state, whose row of B is then 0).

    ``overwrite``: B may be ``flp`` itself (float64), which saves a pass over memory.  The rows
    are done in blocks that stay in cache across the passes (max, subtract, exp), blocks in
    parallel (NumPy releases the GIL).  A NaN log-likelihood raises ValueError."""
    n, N = flp.shape
    inplace = overwrite and np.dtype(dtype) == np.float64 and flp.dtype == np.float64 \
        and flp.flags.c_contiguous
    B = flp if inplace else scratch("scaled", (n, N), dtype)
    shift = scratch("shift", n)
    rows = max(256, _SCALE_ELEMS // max(N, 1))
    nb = max(1, -(-n // rows))
    threads = kernel_threads(SYSTEM, backend)

    def block(i):
        a, b = i * rows, min(n, (i + 1) * rows)
        if a >= b:
            return
        f = flp[a:b]
        if N <= 16:  # a running maximum over columns: max(axis=1) is slow on short rows
            m = f[:, 0].copy()
            for j in range(1, N):
                np.maximum(m, f[:, j], out=m)
        else:
            m = f.max(axis=1)
        m[m == -np.inf] = 0.0  # all -inf: exp(-inf - 0) = 0
        shift[a:b] = m
        if inplace:
            f -= m[:, None]
            np.exp(f, out=f)
        else:
            tmp = f - m[:, None]
            np.exp(tmp, out=tmp)
            B[a:b] = tmp

    run_pieces(block, nb, threads)
    bad = ~np.isfinite(shift)  # a NaN or +inf in a row makes its maximum NaN or +inf
    if bad.any():
        t = int(np.argmax(bad))
        err = _bad_entry(flp, name, t, t + 1) if name is not None and not inplace else None
        if err is not None:
            raise err
        raise ValueError(f"the emission log-likelihoods of frame {t} hold NaN or +inf")
    return B, shift


def _seq_sums(v, off):
    """Sum of ``v`` over each sequence's frames (0 for an empty one): one pass
    (``np.add.reduceat`` over the non-empty sequences), no cumulative-sum array."""
    out = np.zeros(off.shape[0] - 1, np.float64)
    full = off[1:] > off[:-1]
    if full.any():
        out[full] = np.add.reduceat(v[:off[-1]], off[:-1][full])
    return out


_IOTA = np.zeros(0, np.int64)
_IOTA_MAX = 1 << 22  # frames; a longer batch gets its own array


def _iota(n):
    """``np.arange(n)`` as int64, the framewise path's symbols (frame t is symbol t): one
    shared array for batches up to ``_IOTA_MAX`` frames, so that a call does not page in 8
    bytes per frame again.  Left writeable (the kernels only read their symbols): a read-only
    array is another type to numba and would compile every kernel again."""
    global _IOTA
    if n > _IOTA_MAX:
        return np.arange(n, dtype=np.int64)
    if _IOTA.shape[0] < n:
        _IOTA = np.arange(max(n, min(2 * _IOTA.shape[0], _IOTA_MAX)), dtype=np.int64)
    return _IOTA[:n]


def _operands(framelogprob, lengths, startprob, transmat, dtype, backend, scan=False):
    """Checked operands; ``scan=False`` leaves NaN and +inf to ``scaled_frames``."""
    sp, tm = _chain(startprob, transmat)
    if dtype is None:
        dtype = np.float32 if np.asarray(framelogprob).dtype == np.float32 else np.float64
    dt = check_dtype_arg(dtype)
    flp, off = check_frames(framelogprob, sp.shape[0], lengths, scan=scan)
    return sp, tm, dt, flp, off


def _table_ops(sp, tm, B, dt):
    """Kernel operands and symbols of a table B of scaled frame likelihoods: frame t is
    symbol t, its emission row B[t]."""
    B = B if B.dtype == dt else B.astype(dt)
    ops = (np.ascontiguousarray(sp, dt), np.ascontiguousarray(tm, dt), B)
    if dt != np.float64:
        for name, a, a32 in (("startprob", sp, ops[0]), ("transmat", tm, ops[1])):
            lost = (a32 == 0) & (a != 0)
            if lost.any():
                idx = tuple(int(i) for i in np.argwhere(lost)[0])
                raise ValueError(f"{name}[{', '.join(map(str, idx))}] = {a[idx]:.3g} underflows "
                                 f"to 0 in {np.dtype(dt)}; use dtype=np.float64")
    return _iota(B.shape[0]), ops


def score_table(sp, tm, B, shift, off, dt, backend):
    """Per-sequence log-likelihoods from scaled frames (B, shift) (``scaled_frames``)."""
    x, ops = _table_ops(sp, tm, B, dt)
    _, out = _score_ops(x, off, ops, backend)
    out += _seq_sums(shift, off)
    if (out == -np.inf).any():  # underflow inside one step, or truly impossible: log space
        _logspace.rescore(out, off, lambda a, b: _log_table(B, shift, a, b),
                          *_logspace.logs(sp, tm))
    return out


def _log_table(B, shift, a, b):
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(B[a:b], np.float64)) + shift[a:b, None]


def _recover(out, off, B, shift, sp, tm):
    """As ``api._recover``, on a table of scaled frames."""
    if not (out == -np.inf).any():
        return
    lsp, ltm = _logspace.logs(sp, tm)
    for s in np.nonzero(out == -np.inf)[0]:
        a, b = int(off[s]), int(off[s + 1])
        if b > a:
            ll, g, xi = _logspace.forward_backward(_log_table(B, shift, a, b), lsp, ltm, True)
            if ll > -np.inf:
                yield s, a, b, ll, g, xi


def _lanes(N):
    """Most sequences per lockstep block of the E-step and posteriors over a table of frames
    (``_sizes.ESTEP_FRAMES_LANES``)."""
    return ESTEP_LANES if N <= ESTEP_SMALL_MAX_N else ESTEP_FRAMES_LANES


def posteriors_table(sp, tm, B, shift, off, dt, backend):
    """(per-sequence log-likelihoods, γ) from scaled frames (B, shift)."""
    x, ops = _table_ops(sp, tm, B, dt)
    gamma = np.empty(B.shape, dt)
    out, _ = _lockstep(x, off, ops, backend, 4, gamma, False, B.shape[0],
                       max_lanes=_lanes(sp.shape[0]))
    out += _seq_sums(shift, off)
    for s, a, b, ll, g, _ in _recover(out, off, B, shift, sp, tm):
        out[s], gamma[a:b] = ll, g
    return out, gamma


def statistics_table(sp, tm, B, shift, off, dt, backend):
    """The E-step dict (``frames_statistics``) from scaled frames (B, shift)."""
    n = sp.shape[0]
    x, ops = _table_ops(sp, tm, B, dt)
    # float64: every frame's γ stored into its row; float32 operands keep the float64 sums by
    # frame (added into zeros), as the kernels' γ rows would be float32
    rows = np.dtype(dt) == np.float64
    gamma = scratch("gamma", B.shape, zero=not rows)  # disjoint rows, one chunk each
    out, (st, tr, _) = _lockstep(x, off, ops, backend, 1, np.zeros((1, n), dt), True,
                                 B.shape[0], obs=gamma, max_lanes=_lanes(n), obs_rows=rows)
    start, trans = _chain_sums(st, tr, ops[1])
    out += _seq_sums(shift, off)
    for s, a, b, ll, g, xi in _recover(out, off, B, shift, sp, tm):
        out[s], gamma[a:b] = ll, g
        start += g[0]
        trans += xi
    return dict(loglik=out, start=start, trans=trans, gamma=gamma)


def _scaled(flp, dt, backend, overwrite):
    return scaled_frames(flp, dt, backend, overwrite, "framelogprob")


def _score(sp, tm, flp, off, dt, backend, overwrite=False, name="framelogprob"):
    """Per-sequence log-likelihoods of log-likelihood frames ``flp`` (float64, C order).  In
    float64 the kernel scales each frame as it reads it (``forward_loglik_frames``): no table
    of scaled frames is written and read back (numba, one thread, 10^6 frames: N=3 16 -> 11 ms,
    N=64 0.48 -> 0.30 s).  float32 arithmetic takes the table (``scaled_frames``), its rows
    rounded to float32 once."""
    if np.dtype(dt) != np.float64:
        return score_table(sp, tm, *_scaled(flp, dt, backend, overwrite), off, dt, backend)
    _, out = _score_ops(_iota(flp.shape[0]), off, (sp, tm, flp), backend,
                        "forward_loglik_frames")
    nan = np.isnan(out)  # a NaN or +inf entry (the kernel does not stop for it)
    if nan.any():
        s = int(np.argmax(nan))
        err = _bad_entry(flp, name, int(off[s]), int(off[s + 1]))
        raise err if err is not None else ValueError(
            f"the emission log-likelihoods of sequence {s} hold NaN or +inf")
    if (out == -np.inf).any():  # underflow inside one step, or truly impossible: log space
        _logspace.rescore(out, off, lambda a, b: flp[a:b], *_logspace.logs(sp, tm))
    return out


def _posteriors(sp, tm, flp, off, dt, backend, overwrite=False):
    return posteriors_table(sp, tm, *_scaled(flp, dt, backend, overwrite), off, dt, backend)


def _statistics(sp, tm, flp, off, dt, backend, overwrite=False):
    return statistics_table(sp, tm, *_scaled(flp, dt, backend, overwrite), off, dt, backend)


def _viterbi(sp, tm, flp, off, backend):
    return _viterbi_logs(_iota(flp.shape[0]), off, *_logspace.logs(sp, tm), flp, backend)


# --------------------------------------------------------------------------- public functions
def score_frames(framelogprob, lengths, startprob, transmat, *, dtype=None, backend=None):
    """Log-likelihood of every sequence of a ragged batch, given per-frame emission scores.

    The way to use any emission model with fasthw6's kernels: compute
    ``framelogprob[t, i] = log p(x_t | state i)`` for every frame (a Gaussian, a mixture, a
    neural network's log-likelihoods), then score, decode and train the chain here.

    Parameters
    ----------
    framelogprob : array_like of float, shape (n_samples, N)
        Emission log-likelihoods of all sequences' frames end to end; -inf allowed (a state
        that cannot emit the frame), NaN and +inf are not.
    lengths : array_like of int, shape (n_sequences,), or None
        Length of each sequence (summing to ``n_samples``); None means one sequence.
    startprob, transmat : array_like
        Shapes (N,) and (N, N); rows are probability distributions (zeros allowed).
    dtype : {None, float32, float64}
        Arithmetic of the forward pass; None: float32 if ``framelogprob`` is float32, else
        float64.  Each frame is scaled by its maximum first, so float32 loses no range.
    backend : str, optional
        ``"numba"``, ``"cython"``, ``"numpy"`` or ``"auto"``.

    Returns
    -------
    ndarray of float64, shape (n_sequences,)
        ``log P(sequence)``; ``-inf`` for an impossible sequence, ``0.0`` for an empty one.

    Examples
    --------
    >>> import numpy as np
    >>> flp = np.log([[0.5, 0.25], [0.5, 0.25]]) - 1000.0   # tiny likelihoods lose nothing
    >>> ll = score_frames(flp, None, [1.0, 0.0], [[0.5, 0.5], [0.0, 1.0]])
    >>> round(float(ll[0]) + 2000.0, 6) == round(float(np.log(0.5 * 0.5 * 0.5 + 0.5 * 0.5 * 0.25)), 6)
    True
    """
    sp, tm, dt, flp, off = _operands(framelogprob, lengths, startprob, transmat, dtype, backend)
    return _score(sp, tm, flp, off, dt, backend)


def posteriors_frames(framelogprob, lengths, startprob, transmat, *, dtype=None, backend=None):
    """Per-sequence log-likelihoods and state posteriors γ, given per-frame emission scores.

    Parameters are those of :func:`score_frames`.

    Returns
    -------
    loglik : ndarray of float64, shape (n_sequences,)
    gamma : ndarray, shape (n_samples, N), of the arithmetic dtype
        Rows sum to 1; the rows of an impossible sequence are 0.

    Examples
    --------
    >>> ll, g = posteriors_frames(np.log([[0.9, 0.1]]), None, [0.5, 0.5], np.eye(2))
    >>> g.round(3).tolist()
    [[0.9, 0.1]]
    """
    sp, tm, dt, flp, off = _operands(framelogprob, lengths, startprob, transmat, dtype, backend)
    return _posteriors(sp, tm, flp, off, dt, backend)


def frames_statistics(framelogprob, lengths, startprob, transmat, *, dtype=None, backend=None):
    """The E-step on per-frame emission scores: what the M-step of any emission model needs.

    Parameters are those of :func:`score_frames`.

    Returns
    -------
    dict
        ``loglik`` (n_sequences,); ``start`` (N,) = Σ_seq γ_0; ``trans`` (N, N) = Σ_seq Σ_t ξ_t,
        summed without storing ξ; ``gamma`` (n_samples, N) float64, the posteriors, from which
        an emission model's weighted sums follow (e.g. ``gamma.T @ X``).  Impossible sequences
        contribute nothing (their γ rows are 0).

    Examples
    --------
    >>> st = frames_statistics(np.log([[1.0, 0.5], [0.5, 1.0]]), None, [0.5, 0.5],
    ...                        [[0.5, 0.5], [0.5, 0.5]])
    >>> float(st["trans"].sum().round(6)), st["gamma"].sum(axis=1).round(6).tolist()
    (1.0, [1.0, 1.0])
    """
    sp, tm, dt, flp, off = _operands(framelogprob, lengths, startprob, transmat, dtype, backend)
    return _statistics(sp, tm, flp, off, dt, backend)


def viterbi_frames(framelogprob, lengths, startprob, transmat, *, backend=None):
    """Jointly most likely state path of every sequence, given per-frame emission scores
    (float64 log space).

    Parameters are those of :func:`score_frames`.

    Returns
    -------
    logprob : ndarray of float64, shape (n_sequences,)
        ``max over paths of log P(path, sequence)``; -inf for an impossible sequence.
    states : ndarray of int64, shape (n_samples,)

    Examples
    --------
    >>> lp, path = viterbi_frames(np.log([[0.9, 0.1], [0.2, 0.8]]), None, [0.5, 0.5],
    ...                           [[0.9, 0.1], [0.1, 0.9]])
    >>> path.tolist()
    [0, 0]
    """
    sp, tm, _, flp, off = _operands(framelogprob, lengths, startprob, transmat, np.float64,
                                    backend, scan=True)
    return _viterbi(sp, tm, flp, off, backend)
