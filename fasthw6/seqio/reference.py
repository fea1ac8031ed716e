"""Plain-Python tokeniser with the same signature as ``_numba.tokenize`` (backend ``"numpy"``).

Obviously right and slow; the compiled tokeniser is tested against it.
"""
from __future__ import annotations

_WS = b" \t\r\x0b\x0c"


def _walk(buf, convert, X, lengths, lines):
    """The tokenisers' common loop: ``convert(token, pos)`` gives a token's symbol, or
    ``(err_pos, err_kind)`` for a bad one (returned at once with the counts so far)."""
    data = bytes(buf)
    nt = ns = 0
    pos = 0
    for line_no, line in enumerate(data.split(b"\n")):
        start = nt
        i = 0
        while i < len(line):
            if line[i] in _WS:
                i += 1
                continue
            j = i
            while j < len(line) and line[j] not in _WS:
                j += 1
            v = convert(line[i:j], pos + i)
            if isinstance(v, tuple):
                return (nt, ns) + v
            X[nt] = v
            nt += 1
            i = j
        if nt > start:
            lengths[ns] = nt - start
            lines[ns] = line_no
            ns += 1
        pos += len(line) + 1
    return nt, ns, -1, 0


def tokenize(buf, n_symbols, X, lengths, lines):
    """See ``fasthw6.seqio._numba.tokenize``."""
    def convert(tok, at):
        for k, ch in enumerate(tok):
            if not 48 <= ch <= 57:
                return at + k, 1
        # compared by length first: int() refuses a string of over 4300 digits (and the
        # alphabet has at most 2**31 symbols, 10 digits); leading zeros do not count
        digits = tok.lstrip(b"0") or b"0"
        if len(digits) > 10 or int(digits) >= n_symbols:
            return at, 2
        return int(digits)

    return _walk(buf, convert, X, lengths, lines)


def tokenize_names(buf, keys, koff, table, X, lengths, lines):
    """See ``fasthw6.seqio._numba.tokenize_names``: the same results from a dict of the names
    (the hash table ``table`` is the compiled kernels' business)."""
    keys = bytes(keys)
    index = {keys[koff[k]:koff[k + 1]]: v for _, _, v, k in table.tolist() if k >= 0}

    def convert(tok, at):
        v = index.get(tok)
        return (at, 3) if v is None else v

    return _walk(buf, convert, X, lengths, lines)
