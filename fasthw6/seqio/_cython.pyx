# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython tokeniser (backend ``"cython"``): the loop of ``_numba.tokenize``, same signature and
results.  Built at install time, it is what ``auto`` runs while numba's tokeniser is not yet
compiled (integers in, integers out: the two agree exactly)."""
from libc.stdint cimport int32_t, int64_t, uint8_t, uint64_t


def tokenize(const uint8_t[::1] buf, int64_t n_symbols, int32_t[::1] X, int64_t[::1] lengths,
             int64_t[::1] lines):
    """See ``fasthw6.seqio._numba.tokenize``."""
    cdef Py_ssize_t n = buf.shape[0], i, tok_start = 0
    cdef int64_t nt = 0, ns = 0, line = 0, seq_start = 0, val = 0
    cdef int64_t err_pos = -1, err_kind = 0
    cdef bint in_tok = False
    cdef uint8_t c
    cdef int d
    with nogil:
        for i in range(n):
            c = buf[i]
            d = <int>c - 48
            if 0 <= d <= 9:
                if not in_tok:
                    in_tok = True
                    tok_start = i
                    val = d
                elif val < n_symbols:  # past n_symbols it is an error anyway: stop growing
                    val = val * 10 + d
                continue
            if not (c == 10 or c == 32 or c == 9 or c == 13 or c == 11 or c == 12):
                err_pos, err_kind = i, 1
                break
            if in_tok:
                if val >= n_symbols:
                    err_pos, err_kind = tok_start, 2
                    break
                X[nt] = <int32_t>val
                nt += 1
                in_tok = False
            if c == 10:  # '\n' ends a sequence; blank lines give none
                if nt > seq_start:
                    lengths[ns] = nt - seq_start
                    lines[ns] = line
                    ns += 1
                    seq_start = nt
                line += 1
        if err_kind == 0:
            if in_tok:
                if val >= n_symbols:
                    err_pos, err_kind = tok_start, 2
                else:
                    X[nt] = <int32_t>val
                    nt += 1
            if err_kind == 0 and nt > seq_start:
                lengths[ns] = nt - seq_start
                lines[ns] = line
                ns += 1
    return nt, ns, err_pos, err_kind


cdef inline bint _is_space(uint8_t c) noexcept nogil:
    return c <= 32 and (c == 32 or c == 10 or c == 9 or c == 13 or c == 11 or c == 12)


def tokenize_names(const uint8_t[::1] buf, const uint8_t[::1] keys, const int64_t[::1] koff,
                   const int64_t[:, ::1] table, int32_t[::1] X, int64_t[::1] lengths,
                   int64_t[::1] lines):
    """See ``fasthw6.seqio._numba.tokenize_names``: the same loop, word and hash (unsigned
    64-bit arithmetic here, numba's wrapping signed one there: the same bits)."""
    cdef Py_ssize_t n = buf.shape[0], i = 0, j, ln, q
    cdef uint64_t w, mul = 0x9E3779B97F4A7C15ULL
    cdef int64_t mask = table.shape[0] - 1, h, a, found
    cdef int shift = 64
    cdef int64_t nt = 0, ns = 0, line = 0, seq_start = 0
    cdef int64_t err_pos = -1, err_kind = 0
    cdef bint same
    cdef uint8_t c
    h = mask
    while h > 0:
        h >>= 1
        shift -= 1
    with nogil:
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
            h = <int64_t>(((w ^ <uint64_t>ln) * mul) >> shift) & mask
            found = -1
            while table[h, 3] >= 0:
                if <uint64_t>table[h, 0] == w and table[h, 1] == ln:
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
                err_pos, err_kind = i, 3
                break
            X[nt] = <int32_t>found
            nt += 1
            i = j
    return nt, ns, err_pos, err_kind
