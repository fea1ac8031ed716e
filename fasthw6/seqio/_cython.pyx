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


cdef extern from *:
    """
    #include <string.h>
    #include <stdint.h>
    static inline unsigned long long fh6_load8(const unsigned char *p) {
        unsigned long long x; memcpy(&x, p, 8); return x;  /* little-endian: x86-64 */
    }
    static inline int fh6_ctz(unsigned long long x) { return __builtin_ctzll(x); }
    #if defined(__SSE2__) || defined(__x86_64__)
    #include <emmintrin.h>
    /* whitespace (' ', 9..13) and '\n' masks of p[0:64]: SSE2, every x86-64 has it */
    static inline void fh6_masks64(const unsigned char *p, uint64_t *sp, uint64_t *nl) {
        const __m128i c32 = _mm_set1_epi8(32), c9 = _mm_set1_epi8(9);
        const __m128i c4 = _mm_set1_epi8(4), c10 = _mm_set1_epi8(10);
        uint64_t s = 0, l = 0;
        for (int q = 0; q < 4; q++) {
            __m128i v = _mm_loadu_si128((const __m128i *)(p + 16 * q));
            __m128i t = _mm_sub_epi8(v, c9);
            __m128i ws = _mm_or_si128(_mm_cmpeq_epi8(v, c32),
                                      _mm_cmpeq_epi8(_mm_min_epu8(t, c4), t));
            s |= (uint64_t)(unsigned)_mm_movemask_epi8(ws) << (16 * q);
            l |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, c10)) << (16 * q);
        }
        *sp = s;
        *nl = l;
    }
    #else
    static inline void fh6_masks64(const unsigned char *p, uint64_t *sp, uint64_t *nl) {
        uint64_t s = 0, l = 0;
        for (int k = 0; k < 64; k++) {
            unsigned char c = p[k];
            s |= (uint64_t)(c == 32 || (unsigned char)(c - 9) <= 4) << k;
            l |= (uint64_t)(c == 10) << k;
        }
        *sp = s;
        *nl = l;
    }
    #endif
    """
    uint64_t fh6_load8(const uint8_t *p) nogil
    int fh6_ctz(uint64_t x) nogil
    void fh6_masks64(const uint8_t *p, uint64_t *sp, uint64_t *nl) nogil


cdef inline void _block_masks(const uint8_t *p, Py_ssize_t b, Py_ssize_t n, uint64_t *sp,
                              uint64_t *nl) noexcept nogil:
    cdef uint64_t s = 0, l = 0, bit
    cdef int k
    cdef uint8_t c
    if b + 64 <= n:
        fh6_masks64(p + b, sp, nl)
        return
    for k in range(64):
        bit = (<uint64_t>1) << k
        if b + k < n:
            c = p[b + k]
            if _is_space(c):
                s |= bit
            if c == 10:
                l |= bit
        else:
            s |= bit
    sp[0] = s
    nl[0] = l


def tokenize_names(const uint8_t[::1] buf, const uint8_t[::1] keys, const int64_t[::1] koff,
                   const int64_t[:, ::1] table, int32_t[::1] X, int64_t[::1] lengths,
                   int64_t[::1] lines):
    """See ``fasthw6.seqio._numba.tokenize_names``: the same blocks, masks, word and hash
    (unsigned 64-bit arithmetic: the bits of numba's)."""
    cdef Py_ssize_t n = buf.shape[0], b, s, e, ln, q, a
    cdef const uint8_t *p = &buf[0] if n > 0 else NULL
    cdef const uint8_t *kp = &keys[0]
    cdef uint64_t w, mul = 0x9E3779B97F4A7C15ULL, sp = 0, nl = 0, ev, carry = 1, rem
    cdef int64_t mask = table.shape[0] - 1, h, found
    cdef int shift = 64, k
    cdef int64_t nt = 0, ns = 0, line = 0, seq_start = 0
    cdef int64_t err_pos = -1, err_kind = 0
    cdef bint same
    h = mask
    while h > 0:
        h >>= 1
        shift -= 1
    with nogil:
        b = 0
        while b < n and err_kind == 0:
            _block_masks(p, b, n, &sp, &nl)
            ev = (~sp & ((sp << 1) | carry)) | nl  # token starts and line ends
            carry = sp >> 63
            while ev != 0:
                k = fh6_ctz(ev)
                ev &= ev - 1
                if (nl >> k) & 1:
                    if nt > seq_start:
                        lengths[ns] = nt - seq_start
                        lines[ns] = line
                        ns += 1
                        seq_start = nt
                    line += 1
                    continue
                s = b + k
                rem = sp >> k
                if rem != 0:
                    e = s + fh6_ctz(rem)
                else:  # runs past the block
                    e = b + 64
                    while e < n and not _is_space(p[e]):
                        e += 1
                ln = e - s
                if s + 8 <= n:
                    w = fh6_load8(p + s)
                    if ln < 8:
                        w &= ((<uint64_t>1) << (8 * ln)) - 1
                else:
                    w = 0
                    for q in range(min(ln, 8)):
                        w |= (<uint64_t>p[s + q]) << (8 * q)
                if ln > 8:
                    w ^= fh6_load8(p + e - 8)
                h = <int64_t>(((w ^ <uint64_t>ln) * mul) >> shift) & mask
                found = -1
                if ln <= 8 and <uint64_t>table[h, 0] == w and table[h, 1] == ln:
                    found = table[h, 2]  # at its own slot, as most names are (empty: -1, -1)
                while found < 0 and table[h, 3] >= 0:
                    if <uint64_t>table[h, 0] == w and table[h, 1] == ln:
                        same = True
                        if ln > 8:  # 8 bytes at a time, the last 8 overlapping
                            a = koff[table[h, 3]]
                            q = 0
                            while q < ln:
                                q = min(q, ln - 8)
                                if fh6_load8(kp + a + q) != fh6_load8(p + s + q):
                                    same = False
                                    break
                                q += 8
                        if same:
                            found = table[h, 2]
                            break
                    h = (h + 1) & mask
                if found < 0:
                    err_pos, err_kind = s, 3
                    break
                X[nt] = <int32_t>found
                nt += 1
            b += 64
        if err_kind == 0 and nt > seq_start:
            lengths[ns] = nt - seq_start
            lines[ns] = line
            ns += 1
    return nt, ns, err_pos, err_kind
