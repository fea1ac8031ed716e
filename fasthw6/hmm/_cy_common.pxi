# Shared helpers: the symbol range pass, the log-likelihood accumulator, chunk bounds.
# Included by _cython.pyx (one extension: the fused types and helpers are shared, and one
# module builds and loads once); see its docstring for the conventions.

cdef inline (int64_t, int64_t) span_range(const sym_t[::1] X, Py_ssize_t a, Py_ssize_t b,
                                          int64_t mn, int64_t mx) noexcept nogil:
    """As _numba._span_range: (min, max) of mn, mx and X[a:b] in one pass."""
    cdef Py_ssize_t i
    cdef int64_t v
    for i in range(a, b):
        v = X[i]
        mn = v if v < mn else mn
        mx = v if v > mx else mx
    return mn, mx


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
