"""Scoring under many models at once (``forward_loglik_models``): the forward pass of every
(sequence, model) pair, with the models as lanes.

``forward_loglik`` (``score.py``) advances LANES sequences of one model in lockstep, its lanes
innermost; most of its time at small N goes to gathering each lane's emission column, a scalar
copy per state and lane-step, since every lane reads another row of the emission table.  Here a
lane is a (sequence slot, model) pair: a block of ``Ls`` sequences times ``Kg`` models fills the
MULTI_LANES = 16 lanes (``Ls = 16 // Kg``; 64 models: one sequence, four groups of 16 models
in turn, its symbols read from memory once and then from L1).  Sixteen lanes, not 64: the
tables of 64 lanes (transitions and emissions 32 KB each at N = M = 8) do not fit in L1 with
the rest (8.1 against 6.6 ns per model-step).  The
tables are replicated per lane (``_make_tables`` in ``fasthw6.hmm.multi``): ``E_rep[g, x]`` holds
symbol x's emission of every state and lane.  With one slot (16 models or more, or a sequence
finishing alone) every lane reads the same symbol, and a step reads the row ``E_rep[g, x]`` in
place: no gather at all, the step's arithmetic is the whole cost (K = 64, N = M = 8, one
thread: 5.0 ns per model-step against 11.3 with a gathered tile, and 7.8 for ``score_sequences``
per model).  With several slots the lanes of a slot copy one contiguous run of values per state
into the tile (vector loads and stores) where ``forward_loglik`` gathered scalars, and the
symbol is read once for all the models of its slot.  ``A_rep`` holds each lane's transition
matrix, a vector load where ``forward_loglik`` broadcast a scalar.

Each (sequence, model) chain does exactly the operations of ``forward_loglik``'s lanes and
``finish_one`` (``score._make_forward``), in the same order (sum of α in float64, power-of-two
scale, Σ_i A_ij α_i from i = 0, times the emission times the scale), so a score equals
``score_sequences``'s bit for bit for N <= SMALL_MAX_N (the only N this kernel takes: above it
the API scores model by model), and the lanes it shares do not matter.  Models of fewer states
than the largest are padded with zero states, which add exact zeros.

Layouts (W = MULTI_LANES, N the padded state count, G model groups of ``Kg`` models each):
``sp_rep`` (G, N*W) [j*W + l]; ``A_rep`` (G, N*N*W) [(i*N + j)*W + l]; ``E_rep`` (G, M, N*W)
[x, j*W + l]; lane l belongs to slot min(l // Kg, Ls - 1) (the last slot also takes the spare
lanes past Ls*Kg, whose tables hold valid models, so every lane computes finite values).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..._jit import njit_variant
from ._common import TILE, TILE_BYTES, _loglik_pow2, _pow2_scale
from .score import _first_bad_symbol


MULTI_LANES = 16  # lanes of this kernel (fasthw6.hmm.multi.MULTI_LANES, _cy_multi.pxi agree)


def _steps_source(N):
    """Source of the step kernel for a fixed N: the loop over lanes with each lane's α held in
    N named locals and the N x N product written out.  Written as loops (``for i in range(N)``
    over array elements), LLVM reloads every α and stores every partial sum through memory:
    1.8x slower at N=8 (12 against 6.6 ns per model-step)."""
    W = MULTI_LANES
    L = ["def steps(em, xs, nt, first, sp, A, alpha, k):",
         "    t0 = 0",
         "    if first:",
         "        e = em[xs[0]]",
         "        for l in range(%d):" % W]
    L += [f"            alpha[{j * W} + l] = sp[{j * W} + l] * e[{j * W} + l]"
          for j in range(N)]
    L += ["        t0 = 1",
          "    for tt in range(t0, nt):",
          "        e = em[xs[tt]]",
          "        for l in range(%d):" % W]
    L += [f"            a{i} = alpha[{i * W} + l]" for i in range(N)]
    L += ["            s = np.float64(a0)"] + [f"            s += a{i}" for i in range(1, N)]
    L += ["            r, kk = _pow2_scale(s)", "            k[l] += kk"]
    for j in range(N):
        L.append(f"            acc = A[{j * W} + l] * a0")
        L += [f"            acc += A[{(i * N + j) * W} + l] * a{i}" for i in range(1, N)]
        L.append(f"            v{j} = acc * (e[{j * W} + l] * r)")
    L += [f"            alpha[{j * W} + l] = v{j}" for j in range(N)]
    return "\n".join(L) + "\n"


def _make_steps(N):
    """``nt`` forward steps of all lanes for a fixed N, step tt's emissions the row
    ``em[xs[tt]]`` (N*W): a row of the emission table itself when every lane reads one symbol,
    else of the tile's gathered rows; ``first``: the tile's step 0 is the sequences' first
    symbol.  Compiled per float
    dtype only (no symbols here).  The source is generated (``_steps_source``) and compiled
    under this file's name, so numba caches it as any kernel of this module (the cache stamp
    is this package's sources, ``fasthw6._jit.source_stamp``)."""
    ns = dict(__name__=__name__, np=np, _pow2_scale=_pow2_scale)
    exec(compile(_steps_source(N), __file__, "exec"), ns)  # noqa: S102 -- our own source
    return njit_variant(f"m{N}", nogil=True)(ns["steps"])


_steps_1 = _make_steps(1)


_steps_2 = _make_steps(2)


_steps_3 = _make_steps(3)


_steps_4 = _make_steps(4)


_steps_5 = _make_steps(5)


_steps_6 = _make_steps(6)


_steps_7 = _make_steps(7)


_steps_8 = _make_steps(8)  # SMALL_MAX_N


@njit(nogil=True, cache=True)
def _run(X, pos, nslots, Kg, ta, tb, sp, A, E, em, xs, alpha, k):
    """Steps ta..tb-1 of the sequences starting at pos[0:nslots] (slot s: lanes s*Kg.., the last
    slot up to W), tile by tile.  One slot (16 or more models, or a sequence finishing alone):
    every lane reads the same symbol, so a step reads its row of ``E`` in place; several: the
    tile's emissions are gathered first (contiguous runs of ``E[x]``) into ``em``.  ``xs``
    (TT,) int64 scratch: the row of each step."""
    W = MULTI_LANES
    N = alpha.shape[0] // W
    TT = em.shape[0]
    for t0 in range(ta, tb, TT):
        nt = min(TT, tb - t0)
        if nslots == 1:
            for tt in range(nt):
                xs[tt] = X[pos[0] + t0 + tt]
            rows = E
        else:
            for tt in range(nt):
                xs[tt] = tt
                for s in range(nslots):
                    row = E[X[pos[s] + t0 + tt]]
                    lo = s * Kg
                    hi = W if s == nslots - 1 else lo + Kg
                    for j in range(N):
                        for l in range(lo, hi):
                            em[tt, j * W + l] = row[j * W + l]
            rows = em
        first = t0 == 0
        if N == 1:
            _steps_1(rows, xs, nt, first, sp, A, alpha, k)
        elif N == 2:
            _steps_2(rows, xs, nt, first, sp, A, alpha, k)
        elif N == 3:
            _steps_3(rows, xs, nt, first, sp, A, alpha, k)
        elif N == 4:
            _steps_4(rows, xs, nt, first, sp, A, alpha, k)
        elif N == 5:
            _steps_5(rows, xs, nt, first, sp, A, alpha, k)
        elif N == 6:
            _steps_6(rows, xs, nt, first, sp, A, alpha, k)
        elif N == 7:
            _steps_7(rows, xs, nt, first, sp, A, alpha, k)
        elif N == 8:
            _steps_8(rows, xs, nt, first, sp, A, alpha, k)
        else:  # the API scores models of more states one at a time (score_sequences)
            raise ValueError("forward_loglik_models: models of at most 8 states")


@njit(nogil=True, cache=True)
def _finish(alpha, k, l, N):
    W = MULTI_LANES
    s = np.float64(alpha[l])
    for i in range(1, N):
        s += alpha[i * W + l]
    return _loglik_pow2(s, k[l])


@njit(nogil=True, cache=True)
def forward_loglik_models(X, offsets, order, Ls, Kg, sp_rep, A_rep, E_rep, out):
    """Log-likelihoods of the sequences ``order`` (non-empty, shortest first) under every model
    into ``out`` (S, K) float64, ``out[seq, model]``.  Blocks of ``Ls`` consecutive entries of
    ``order`` advance in lockstep over the shortest one's length under each group of ``Kg``
    models in turn (their symbols read from memory once, then from cache); the sequences
    past it finish one at a time, with all the group's models as lanes.

    The symbols are range-checked block by block before use: returns -1 if all lie in [0, M),
    else the position of one that does not (blocks holding one are not scored)."""
    W = MULTI_LANES
    S = order.shape[0]
    G = sp_rep.shape[0]
    N = sp_rep.shape[1] // W
    M = E_rep.shape[1]
    K = out.shape[1]
    TT = max(2, min(TILE, TILE_BYTES // (8 * N * W)))
    em = np.zeros((TT, N * W), sp_rep.dtype)
    alpha = np.zeros(N * W, sp_rep.dtype)
    keep = np.zeros(N * W, sp_rep.dtype)
    xs = np.zeros(TT, np.int64)
    k = np.zeros(W, np.int64)
    kkeep = np.zeros(W, np.int64)
    pos = np.empty(Ls, np.int64)
    one = np.empty(1, np.int64)
    bad = -1
    for b0 in range(0, S, Ls):
        idx = order[b0:min(b0 + Ls, S)]
        p = _first_bad_symbol(X, offsets, idx, M)
        if p >= 0:
            bad = p
            continue
        L = idx.shape[0]
        T = offsets[idx[0] + 1] - offsets[idx[0]]
        for s in range(Ls):
            pos[s] = offsets[idx[min(s, L - 1)]]  # spare slots repeat the last sequence
        for g in range(G):
            nq = min(Kg, K - g * Kg)
            for l in range(W):
                k[l] = 0
            _run(X, pos, Ls, Kg, 0, T, sp_rep[g], A_rep[g], E_rep[g], em, xs, alpha, k)
            keep[:] = alpha
            kkeep[:] = k
            for s in range(L):
                a, b = offsets[idx[s]], offsets[idx[s] + 1]
                base = s * Kg
                if b - a == T:
                    for q in range(nq):
                        out[idx[s], g * Kg + q] = _finish(keep, kkeep, base + q, N)
                    continue
                # alone from step T: the slot's lanes moved to lanes 0..Kg-1 (the others keep
                # finite values of other slots and are discarded)
                for j in range(N):
                    for q in range(Kg):
                        alpha[j * W + q] = keep[j * W + base + q]
                for q in range(Kg):
                    k[q] = kkeep[base + q]
                one[0] = a
                _run(X, one, 1, Kg, T, b - a, sp_rep[g], A_rep[g], E_rep[g], em, xs, alpha, k)
                for q in range(nq):
                    out[idx[s], g * Kg + q] = _finish(alpha, k, q, N)
    return bad
