"""Numba tokeniser: bytes of a SEQS text block -> concatenated symbols, lengths, line numbers.

One pass over the bytes, no Python object per token.  The caller sizes the outputs from the
block (a block of B bytes holds at most B//2 + 1 tokens and count('\\n') + 1 lines).
"""
from __future__ import annotations

from numba import njit

from .._jit import install_cache_locator

install_cache_locator()  # before the first @njit: kernels are cached under fasthw6._jit.cache_dir()


@njit(nogil=True, cache=True)
def tokenize(buf, n_symbols, X, lengths, lines):
    """Parse whitespace-separated non-negative integers, one sequence per line.

    Blank lines are skipped.  Returns ``(n_tokens, n_sequences, err_pos, err_kind)``: ``err_kind``
    0 means success, 1 a byte that is neither a digit nor whitespace at ``err_pos``, 2 a token
    starting at ``err_pos`` whose value is ``>= n_symbols``.
    """
    n = buf.shape[0]
    nt = 0
    ns = 0
    line = 0
    seq_start = 0  # nt at the start of the current line
    val = 0
    in_tok = False
    tok_start = 0
    for i in range(n):
        c = buf[i]
        d = c - 48
        if 0 <= d <= 9:
            if not in_tok:
                in_tok = True
                tok_start = i
                val = d
            elif val < n_symbols:  # past n_symbols it is an error anyway: stop growing
                val = val * 10 + d
            continue
        if not (c == 10 or c == 32 or c == 9 or c == 13 or c == 11 or c == 12):
            return nt, ns, i, 1
        if in_tok:
            if val >= n_symbols:
                return nt, ns, tok_start, 2
            X[nt] = val
            nt += 1
            in_tok = False
        if c == 10:  # '\n' ends a sequence; blank lines give none
            if nt > seq_start:
                lengths[ns] = nt - seq_start
                lines[ns] = line
                ns += 1
                seq_start = nt
            line += 1
    if in_tok:
        if val >= n_symbols:
            return nt, ns, tok_start, 2
        X[nt] = val
        nt += 1
    if nt > seq_start:
        lengths[ns] = nt - seq_start
        lines[ns] = line
        ns += 1
    return nt, ns, -1, 0
