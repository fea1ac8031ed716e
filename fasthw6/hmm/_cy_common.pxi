# Shared helpers: the symbol range pass, the log-likelihood accumulator, chunk bounds.
# Included by _cython.pyx (one extension: the fused types and helpers are shared, and one
# module builds and loads once); see its docstring for the conventions.

cdef extern from *:
    """
    #define fh6_prefetch(p) __builtin_prefetch((const void*)(p), 0, 3)
    """
    void fh6_prefetch(const void* p) noexcept nogil


cdef inline void prefetch_row(const void* row, Py_ssize_t nbytes) noexcept nogil:
    """Hint the CPU to fetch a row of ``nbytes`` at ``row`` into cache, its first 16 cache lines
    at most (as _numba._prefetch_row; a hint: no effect on any value, no fault)."""
    cdef Py_ssize_t off = 0
    while off < nbytes and off < 16 * 64:
        fh6_prefetch(<const char*>row + off)
        off += 64


cdef inline (int64_t, int64_t) span_range(const sym_t[::1] X, Py_ssize_t a, Py_ssize_t b,
                                          int64_t mn, int64_t mx) noexcept nogil:
    """As _numba._span_range: (min, max) of mn, mx and X[a:b] in one pass, four running
    minima and maxima."""
    cdef Py_ssize_t i = a
    cdef int64_t v, v1, v2, v3
    cdef int64_t m1 = mn, m2 = mn, m3 = mn, x1 = mx, x2 = mx, x3 = mx
    while i + 4 <= b:
        v = X[i]
        v1 = X[i + 1]
        v2 = X[i + 2]
        v3 = X[i + 3]
        mn = v if v < mn else mn
        m1 = v1 if v1 < m1 else m1
        m2 = v2 if v2 < m2 else m2
        m3 = v3 if v3 < m3 else m3
        mx = v if v > mx else mx
        x1 = v1 if v1 > x1 else x1
        x2 = v2 if v2 > x2 else x2
        x3 = v3 if v3 > x3 else x3
        i += 4
    while i < b:
        v = X[i]
        mn = v if v < mn else mn
        mx = v if v > mx else mx
        i += 1
    mn = m1 if m1 < mn else mn
    m2 = m3 if m3 < m2 else m2
    mx = x1 if x1 > mx else mx
    x2 = x3 if x3 > x2 else x2
    return (m2 if m2 < mn else mn), (x2 if x2 > mx else mx)


def symbol_range(const sym_t[::1] X, Py_ssize_t n_chunks, int64_t[::1] out):
    """Smallest and largest symbol of X (non-empty) into out[0], out[1]: one pass, chunks in
    parallel (``n_chunks`` <= len(X), so no chunk is empty)."""
    cdef Py_ssize_t n = X.shape[0], c, a, b
    cdef (int64_t, int64_t) r
    lo = np.empty(n_chunks, np.int64)
    hi = np.empty(n_chunks, np.int64)
    cdef int64_t[::1] lo_v = lo, hi_v = hi
    with nogil:
        for c in range(n_chunks):
            a = c * n // n_chunks
            b = (c + 1) * n // n_chunks
            r = span_range(X, a, b, X[a], X[a])
            lo_v[c] = r[0]
            hi_v[c] = r[1]
    out[0] = lo.min()
    out[1] = hi.max()
    return out


cdef struct LL:
    double p
    double e
    double extra


cdef inline void ll_push(LL* a, double s) noexcept nogil:
    if s >= SMALL:
        a.p *= s
        if a.p < TWO_M512:
            a.p *= TWO_P512
            a.e += 1.0
    elif s > 0.0:
        a.extra += log(s)
    else:
        a.extra = -INFINITY


cdef inline double ll_value(LL* a) noexcept nogil:
    if a.extra == -INFINITY:
        return -INFINITY
    return log(a.p) - a.e * LN2_512 + a.extra


def _bounds(const int64_t[::1] offsets, Py_ssize_t n_chunks):
    """Chunk boundaries over sequences with about equal symbol counts (as ``_numba._chunks``)."""
    cdef Py_ssize_t S = offsets.shape[0] - 1
    n_chunks = max(1, min(n_chunks, S))
    total = offsets[S]
    off = np.asarray(offsets)
    bounds = np.empty(n_chunks + 1, np.int64)
    bounds[0] = 0
    for c in range(1, n_chunks):
        b = int(np.searchsorted(off, (total * c) // n_chunks))
        bounds[c] = max(bounds[c - 1], min(b, S))
    bounds[n_chunks] = S
    return bounds


cdef inline double exp_le0(double y) noexcept nogil:
    """As _numba._common._exp_le0, operation for operation (the two backends give the same
    bits): exp(y) for y <= 0, 0 below -708.  Constants as literals, so that gcc sees them
    constant and vectorises the loops calling it."""
    cdef double z, t, k, r, p, s
    cdef uint64_t bits
    z = y if y > -708.0 else -708.0
    t = z * 1.4426950408889634 + 6755399441055744.0  # the shifter: 1.5 * 2^52
    k = t - 6755399441055744.0
    r = (z - k * 0.6931471803691238) - k * 1.9082149292705877e-10  # ln 2, hi + lo
    p = 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    memcpy(&bits, &t, 8)
    bits = (bits + 1023) << 52
    memcpy(&s, &bits, 8)
    return p * s if y > -708.0 else 0.0
