"""The E-step's lockstep sweeps compiled for each small N (2 to ``ESTEP_SMALL_MAX_N`` states):
forward and backward over a whole block, lanes innermost, with lazy power-of-two scaling."""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..._jit import njit_variant
from ._common import ESTEP_LANES, _far_rows, _fetch_ahead, _fetch_back


@njit(nogil=True, cache=True)
def _forward_rare(cur, sv, e, extra, up, tiny):
    """A lane whose α sum ``sv`` fell below ``tiny`` (after one rescaling by ``up``): normalise it
    exactly, log the sum into ``extra`` (-inf and zeros if it is 0)."""
    N, L = cur.shape
    for l in range(L):
        v = sv[l]
        if v < tiny:
            e[l] -= 1.0
            if v > 0.0:
                extra[l] += math.log(v)
                for j in range(N):
                    cur[j, l] = cur[j, l] / up / v
            else:
                extra[l] = -np.inf
                for j in range(N):
                    cur[j, l] = 0.0


def _make_estep_small(N):
    """The lockstep E-step's forward and backward sweeps for a fixed small N over a full block
    of W = ESTEP_LANES lanes: (forward_sweep, backward_sweep).

    With N and W compile-time constants every access is a constant offset from one of a few
    base pointers (α̂ in ``ab``; the block's scratch ``fb``/``db`` in ``_lockstep_block``'s
    layout), so LLVM proves the loops over lanes free of aliasing and vectorises them, and the
    loops over states unroll: measured at N=3, the backward step ran 3.4x faster than the same
    code with the lane count a run-time value.  Same operations in the same order and types as
    the generic loops of ``_lockstep_forward`` / ``_lockstep_block``.
    """
    W = ESTEP_LANES
    NW = N * W
    U, V, B = 0, NW, 2 * NW  # u, v, β in fb; in db: γ, the lane rows, Σξ terms, ξ weights
    G, E, EXTRA, LIVE, F, SV = 0, NW + W, NW + 2 * W, NW + 3 * W, NW + 4 * W, NW + 5 * W
    XA = NW + 6 * W + N
    P = XA + N * NW + N * N

    @njit_variant(f"n{N}", nogil=True)
    def forward(prev, cur, xt, emit_t, a_flat, db, up, low, tiny):
        """α_t into ``cur`` from α_{t-1} in ``prev`` (both N x W, flat), lazily rescaled; the
        sums into the lane row ``sv``; returns how many are below ``tiny`` (left to
        ``_forward_rare``).  Indexes are constants plus the lane: numba's wraparound of a
        possibly negative index would hide the access pattern from the vectoriser."""
        for l in range(W):  # the gather apart: in the loop below it stops vectorisation
            row = emit_t[xt[l]]
            for j in range(N):
                cur[j * W + l] = row[j]
        nbad = 0
        nlow = 0
        for l in range(W):
            s = 0.0
            for j in range(N):
                acc = a_flat[j] * prev[l]
                for i in range(1, N):
                    acc += a_flat[i * N + j] * prev[i * W + l]
                w = acc * cur[j * W + l]
                cur[j * W + l] = w
                s += w
            lw = s < low
            db[F + l] = up if lw else 1.0
            db[E + l] += 1.0 if lw else 0.0
            nlow += 1 if lw else 0
            nbad += 1 if s < tiny else 0
            db[SV + l] = s
        if nlow > 0:
            for j in range(N):
                for l in range(W):
                    cur[j * W + l] *= db[F + l]
        return nbad

    @njit_variant(f"n{N}", nogil=True, inline="always")
    def backward(at, fb, db, xt, xt1, emit_t, a_flat, up, low, ob, want_stats):
        """One backward step: β_t from β_{t+1} (power-of-two rescaled), γ_t and, if
        ``want_stats``, α̂_t/Z_t ⊗ u_{t+1} added to the Σξ terms; α̂_t is ``at`` (N x W).
        Inlined into the sweep: called, it took two atomic reference counts per step for
        each of four array arguments (N=3 fit 9.5-10.1 -> 9.3-9.4 ms per 10^6 symbols).
        ``forward`` stays a call: inlined, it stopped vectorising at N=4 (12.5 -> 16 ms), and
        rows indexed at a run-time offset instead of sliced do not vectorise either."""
        for l in range(W):  # the gather apart, as in ``forward``
            row = emit_t[xt1[l]]
            for j in range(N):
                fb[U + j * W + l] = row[j]
        for l in range(W):
            for j in range(N):
                fb[U + j * W + l] = fb[U + j * W + l] * fb[B + j * W + l]
            z = 0.0
            sv = 0.0
            for i in range(N):
                acc = a_flat[i * N] * fb[U + l]
                for j in range(1, N):
                    acc += a_flat[i * N + j] * fb[U + j * W + l]
                fb[V + i * W + l] = acc
                z += at[i * W + l] * acc
                sv += acc
            okz = z > 0.0
            zi = (db[LIVE + l] if okz else 0.0) / (z if okz else 1.0)
            fl = up if sv < low else (low if sv > up else 1.0)
            for i in range(N):
                a = at[i * W + l]
                vi = fb[V + i * W + l]
                db[G + i * W + l] = a * vi * zi
                fb[B + i * W + l] = vi * fl
                db[P + i * W + l] = a * zi
        if want_stats:  # apart: a branch in the loop above stops its vectorisation
            for l in range(W):
                for i in range(N):
                    w = db[P + i * W + l]
                    for j in range(N):
                        db[XA + (i * N + j) * W + l] += w * fb[U + j * W + l]
            if ob.shape[0] > 0:  # (none: γ goes to ``gamma`` rows only)
                for l in range(W):
                    orow = ob[xt[l]]
                    for i in range(N):
                        orow[i] += db[G + i * W + l]

    @njit_variant(f"n{N}", nogil=True)
    def forward_sweep(ab, xs, emit_t, a_flat, db, up, low, tiny):
        """Steps 1 .. T0-1 of the lockstep forward (step 0 is the caller's)."""
        e = db[E:E + W]
        extra = db[EXTRA:EXTRA + W]
        sv = db[SV:SV + W]
        far = _far_rows(emit_t)
        for t in range(1, xs.shape[0]):
            if far:
                _fetch_ahead(emit_t, xs, t)
            cur = ab[t * NW:(t + 1) * NW]
            nbad = forward(ab[(t - 1) * NW:t * NW], cur, xs[t], emit_t, a_flat, db, up, low, tiny)
            if nbad > 0:
                _forward_rare(cur.reshape((N, W)), sv, e, extra, up, tiny)

    @njit_variant(f"n{N}", nogil=True)
    def backward_sweep(ab, fb, db, xs, emit_t, a_flat, up, low, ob, gamma, offsets, seqs,
                       want_stats, want_gamma):
        """Steps T0-2 .. 0 of the lockstep backward, γ rows into ``gamma`` if ``want_gamma``."""
        far = _far_rows(emit_t)
        for t in range(xs.shape[0] - 2, -1, -1):
            if far:
                _fetch_back(emit_t, xs, t, gamma, offsets, seqs, want_gamma)
            backward(ab[t * NW:(t + 1) * NW], fb, db, xs[t], xs[t + 1], emit_t, a_flat, up, low,
                     ob, want_stats)
            if want_gamma:
                for l in range(W):
                    grow = gamma[offsets[seqs[l]] + t]
                    for i in range(N):
                        grow[i] = db[G + i * W + l]

    return forward_sweep, backward_sweep


_estep_forward_2, _estep_backward_2 = _make_estep_small(2)
_estep_forward_3, _estep_backward_3 = _make_estep_small(3)
_estep_forward_4, _estep_backward_4 = _make_estep_small(4)  # ESTEP_SMALL_MAX_N


@njit(nogil=True, cache=True)
def _estep_forward_small(N, ab, xs, emit_t, a_flat, db, up, low, tiny):
    """``_make_estep_small(N)``'s forward sweep (numba cannot index a tuple of functions at run
    time)."""
    if N == 2:
        _estep_forward_2(ab, xs, emit_t, a_flat, db, up, low, tiny)
    elif N == 3:
        _estep_forward_3(ab, xs, emit_t, a_flat, db, up, low, tiny)
    else:
        _estep_forward_4(ab, xs, emit_t, a_flat, db, up, low, tiny)


@njit(nogil=True, cache=True)
def _estep_backward_small(N, ab, fb, db, xs, emit_t, a_flat, up, low, ob, gamma, offsets, seqs,
                          want_stats, want_gamma):
    """``_make_estep_small(N)``'s backward sweep."""
    if N == 2:
        _estep_backward_2(ab, fb, db, xs, emit_t, a_flat, up, low, ob, gamma, offsets, seqs,
                          want_stats, want_gamma)
    elif N == 3:
        _estep_backward_3(ab, fb, db, xs, emit_t, a_flat, up, low, ob, gamma, offsets, seqs,
                          want_stats, want_gamma)
    else:
        _estep_backward_4(ab, fb, db, xs, emit_t, a_flat, up, low, ob, gamma, offsets, seqs,
                          want_stats, want_gamma)
