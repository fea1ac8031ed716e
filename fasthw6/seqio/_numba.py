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


@njit(nogil=True, cache=True, inline="always")
def _bits(mask):
    """b for a mask 2^b - 1."""
    b = 0
    while mask > 0:
        mask >>= 1
        b += 1
    return b


# the multiplier of the names' hash (2^64 / golden ratio), as a signed 64-bit value
NAME_MUL = 0x9E3779B97F4A7C15 - (1 << 64)


@njit(nogil=True, cache=True, inline="always")
def _is_space(c):
    """Whitespace as ``bytes.split`` has it; one compare for a token byte (> 32)."""
    return c <= 32 and (c == 32 or c == 10 or c == 9 or c == 13 or c == 11 or c == 12)


@njit(nogil=True, cache=True)
def tokenize_names(buf, keys, koff, table, X, lengths, lines):
    """``tokenize`` for symbol names: each whitespace-separated token is looked up in a hash
    table of the model's names (and of the integers that also mean symbols).

    A token's *word* is its last 8 bytes packed into 64 bits (``w = w << 8 | byte``, built as
    the bytes go by: no per-byte multiply); its slot, the top bits of ``(word ^ length) *
    NAME_MUL``, one multiply per token.  ``table`` (int64, (2^b, 4), at most half full) holds
    per slot the word, the length, the symbol and the name's index ``k`` (-1: an empty slot;
    collisions in the next slots), so that a lookup reads one slot; ``keys`` (uint8) holds the
    names end to end, name ``k`` at ``keys[koff[k]:koff[k+1]]``, compared past 8 bytes only.
    Several names may mean one symbol (a name and an integer).  Returns ``(n_tokens,
    n_sequences, err_pos, err_kind)``: err_kind 0 success, 3 an unknown token starting at
    ``err_pos``.  Outputs and blank lines as ``tokenize``."""
    n = buf.shape[0]
    mask = table.shape[0] - 1
    shift = 64 - _bits(mask)
    nt = 0
    ns = 0
    line = 0
    seq_start = 0
    i = 0
    while i <= n:
        c = buf[i] if i < n else 10
        if _is_space(c):
            if c == 10:
                if nt > seq_start:
                    lengths[ns] = nt - seq_start
                    lines[ns] = line
                    ns += 1
                    seq_start = nt
                line += 1
            i += 1
            continue
        w = 0
        j = i
        while j < n and not _is_space(buf[j]):
            w = (w << 8) | buf[j]
            j += 1
        ln = j - i
        h = (((w ^ ln) * NAME_MUL) >> shift) & mask
        found = -1
        while table[h, 3] >= 0:
            if table[h, 0] == w and table[h, 1] == ln:
                same = True
                a = koff[table[h, 3]]
                for q in range(ln - 8):  # longer than a word: the rest of the bytes
                    if keys[a + q] != buf[i + q]:
                        same = False
                        break
                if same:
                    found = table[h, 2]
                    break
            h = (h + 1) & mask
        if found < 0:
            return nt, ns, i, 3
        X[nt] = found
        nt += 1
        i = j
    return nt, ns, -1, 0
