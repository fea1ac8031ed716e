"""Sampling a state path and its symbols from precomputed uniforms (hmmlearn's draw order)."""
from __future__ import annotations

from numba import njit


@njit(nogil=True, cache=True)
def sample_chain(u, start_cdf, trans_cdf, emit_cdf, states, symbols):
    """Draw a state path and its symbols from uniforms ``u`` (2 per step, in hmmlearn's order:
    state, symbol, state, symbol, ...): the first index whose cdf exceeds u (0 if none)."""
    n = states.shape[0]
    N = start_cdf.shape[0]
    M = emit_cdf.shape[1]
    cur = 0
    for t in range(n):
        us = u[2 * t]
        cdf = start_cdf if t == 0 else trans_cdf[cur]
        nxt = 0
        for j in range(N):
            if cdf[j] > us:
                nxt = j
                break
        cur = nxt
        states[t] = cur
        ue = u[2 * t + 1]
        ec = emit_cdf[cur]
        sym = 0
        for k in range(M):
            if ec[k] > ue:
                sym = k
                break
        symbols[t] = sym
    return states
