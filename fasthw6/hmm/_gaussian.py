"""Gaussian densities and moments for the continuous emission models (``GaussianHMM``, and the
components of ``GMMHMM``): fused compiled kernels (``diag_frames``, ``full_frames``,
``diag_moments``) or a compiled kernel's features times one BLAS product (``frame_pairs``), over
blocks of frames and all states at once, pieces of frames on the backend's threads.

Covariances come in hmmlearn's four kinds and its compact shapes, for K densities (states, or
states x mixture components) in D dimensions: "spherical" (K,), "diag" (K, D), "tied" (D, D)
shared by all, "full" (K, D, D).

The data are centred first (on the mean of the means, ``center``): the quadratic forms below are
expanded into products, and centring keeps the terms of the expansion from cancelling when the
data sit far from the origin.
"""
from __future__ import annotations

import numpy as np

from .._backend import get_kernel, kernel_threads
from .._parallel import run_pieces, scratch
from . import _logspace
from ._checks import SYSTEM
from ._sizes import DIAG_SMALL_MAX_N, ESTEP_GEMM_MAX_MADDS, SMALL_MAX_N
from .api import _score_ops, _viterbi_logs
from .frames import _iota

COVARIANCE_TYPES = ("spherical", "diag", "full", "tied")
_LOG_2PI = np.log(2.0 * np.pi)
# Diagonal moments by BLAS from K = 16 states on, or 32 with 16 features or more (the
# ``diag_moments`` kernel below that).  numba, one thread, 10^6 frames, AMD EPYC family 25
# model 17, kernel -> BLAS: K=16 D=1 18 -> 9.7 ms, D=4 33 -> 20, D=8 58 -> 35; K=64 D=4 169 ->
# 79, D=16 210 -> 188; but K=16 D=16 47.5 -> 58, K=24 D=16 71 -> 82, K=32 D=16 92 -> 99, K=12
# D=16 33 -> 74.  (Up to e8cd4dd the kernel moved frames into lanes first and lost to BLAS
# from K=16 at every D: K=12 D=16 63 -> 79 on the Xeon of the earlier results.)
_DIAG_BLAS_MIN_K = 16
_DIAG_BLAS_MIN_K_WIDE = 32
_DIAG_WIDE_D = 16
# Full densities of fewer than 32 states over K D < 256 take the ``full_frames`` kernel (L⁻¹
# times each state's residuals, lanes innermost); from there the pairs-and-BLAS product, whose
# GEMM runs fused multiply-adds that the kernel (in numba and baseline x86-64 Cython alike)
# does not.  numba, one thread, 10^6 frames, pairs -> kernel: K=3 D=4 20 -> 13 ms, D=16 105
# -> 52; K=8 D=16 148 -> 121; K=16 D=4 61 -> 53, D=8 100 -> 95; but K=16 D=16 233 -> 237,
# K=20 D=16 269 -> 283, K=32 D=16 364 -> 457, K=64 D=4 186 -> 203.
_FULL_KERNEL_MAX_K = 32
_FULL_KERNEL_MAX_KD = 256
# Full second moments of fewer than 6 states take the ``full_moments`` kernel (per-lane partial
# sums, no pairs written per frame); from there ``frame_pairs`` and a BLAS product with K
# columns.  numba, one thread, 10^6 frames, pairs -> kernel: K=2 D=2 9.5 -> 8.0 ms; K=3 D=4
# 16.7 -> 12.4, D=16 110 -> 68; K=5 D=16 121 -> 108; but K=8 D=4 21 -> 27, D=16 137 -> 173.
_FULL_MOMENTS_MAX_K = 6
_PAIR_ELEMS = 1 << 16  # frame_pairs features per block of frames (stays in cache)
_PIECE_FRAMES = 1 << 16  # frames per piece of the moments (fixed by n: see _pieces)
# Diagonal scoring computes the densities inside the scoring kernel (``score_diag``) from
# FUSED_MIN_N states on, where the scoring steps are GEMMs anyway, and up to DIAG_SMALL_MAX_N
# states for frames of at most FUSED_NARROW_D features, where the kernel's unrolled small-N
# lanes compute each step's densities from the data (``fused_score``).  numba, one thread,
# 2000 x 500 frames, table of scaled densities -> fused: N=16 D=4 87 -> 61 ms, N=16 D=16 125
# -> 99, N=64 D=4 366 -> 277.  Log-density table -> fused lanes (AMD EPYC family 25 model 17,
# fastest of 7-9 alternating in one process, the same bits): N=3 D=4 19.3 -> 14.9, D=7 24.9
# -> 20.9, N=2 D=4 13.1 -> 10.8, D=7 18.7 -> 16.9, N=4 D=4 22.1 -> 15.9, D=6 27.8 -> 22.1,
# N=1 D=4 even (8.9 / 9.0); Cython N=3 D=4 61.8 -> 29.1, N=4 D=4 99 -> 57.  Wider frames stay
# with the table (N=3 D=8 even, 21.9 / 22.0; D=16 29.0 -> 67.3: each lane's frame gathered
# from another sequence costs more than the table saves), as do 5 to 8 states (their lanes
# are not compiled for the fused kernel: first-call compile time).
FUSED_MIN_N = SMALL_MAX_N + 1
# Diagonal decoding computes the densities inside the Viterbi kernel (``viterbi_diag``) from
# FUSED_VITERBI_MIN_N states on, and at any N for frames of at most FUSED_NARROW_D
# features (``fused_viterbi``).  numba, one thread, 2000 x 500 frames, table -> fused: N=8 D=4
# 67 -> 39 ms, D=16 94 -> 72; N=16 D=4 128 -> 65, D=16 185 -> 96; N=64 D=4 733 -> 542, D=16 882
# -> 662.  Below 5 states the kernel's gather of each lane's frame costs more than the table
# saves once frames are wide, and less while they are narrow (numba, AMD EPYC family 25 model
# 17, fastest of 7 alternating in one process or of 2 processes against the rule before): N=3
# D=1 19.7 -> 9.6, D=4 19.2-22.4 -> 11.9-12.8, N=4 D=4 23.0-28.7 -> 13.1-15.1, N=2 D=6
# 18.0-19.3 -> 15.5-16.7, D=7 even (19.2-31.8 -> 19.0-21.3), D=8 16.3 -> 20.5, N=3 D=12 29.3 ->
# 41.9, D=16 29.8 -> 55.9; Cython N=3 D=4 49.3-50.9 -> 33.9-36.2.
FUSED_VITERBI_MIN_N = 5
FUSED_NARROW_D = 7


def fused_score(N, D):
    """Whether scoring diagonal (or spherical) densities of N states over D features in
    float64 takes a fused kernel (``forward_loglik_diag``, or ``_lanes`` up to
    DIAG_SMALL_MAX_N states: ``score_diag``) rather than a table."""
    return N >= FUSED_MIN_N or (N <= DIAG_SMALL_MAX_N and D <= FUSED_NARROW_D)


def fused_viterbi(N, D):
    """Whether diagonal (or spherical) decoding of N states over D features takes the fused
    kernel (``viterbi_diag``) rather than the table of log-likelihoods."""
    return N >= FUSED_VITERBI_MIN_N or D <= FUSED_NARROW_D


def check_covariance_type(kind):
    if kind not in COVARIANCE_TYPES:
        raise ValueError(f"covariance_type must be one of {', '.join(map(repr, COVARIANCE_TYPES))}"
                         f", got {kind!r}")
    return kind


def compact_shape(kind, K, D):
    return {"spherical": (K,), "diag": (K, D), "tied": (D, D), "full": (K, D, D)}[kind]


def check_covars(covars, kind, K, D, name="covars_", what="state"):
    """``covars`` as float64 in the compact shape of ``kind``, each matrix symmetric positive
    definite (each variance positive); ValueError naming the state otherwise."""
    from ._checks import check_real  # noqa: PLC0415

    check_real(covars, name)
    try:
        cv = np.array(covars, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a numeric array") from None
    shape = compact_shape(kind, K, D)
    if kind == "spherical" and cv.shape == (K, D) and D > 0:
        cv = cv.mean(axis=1)  # hmmlearn's layout: one column per feature, all equal
    if cv.shape != shape:
        raise ValueError(f"{name} must have shape {shape} for covariance_type={kind!r}, "
                         f"got {cv.shape}")
    if not np.isfinite(cv).all():
        raise ValueError(f"{name} must be finite")
    if kind in ("spherical", "diag"):
        bad = np.argwhere(cv <= 0)
        if bad.size:
            k = int(bad[0][0])
            raise ValueError(f"{name} of {what} {k} must be positive, got {cv[tuple(bad[0])]}")
        return cv
    mats = cv[None] if kind == "tied" else cv
    for k, m in enumerate(mats):
        if not np.allclose(m, m.T, rtol=1e-8, atol=1e-12 * max(1.0, np.abs(m).max())):
            raise ValueError(f"{name} of {what} {k} must be symmetric" if kind == "full" else
                             f"{name} (tied) must be symmetric")
        try:
            np.linalg.cholesky(m)
        except np.linalg.LinAlgError:
            where = f"{what} {k}" if kind == "full" else "all states (tied)"
            raise ValueError(f"{name} of {where} is not positive definite (singular or "
                             f"indefinite covariance); raise min_covar or check the data") \
                from None
    return cv


def full_covars(cv, kind, K, D):
    """The (K, D, D) matrices of compact covariances (hmmlearn's ``covars_`` property)."""
    if kind == "full":
        return cv.copy()
    if kind == "tied":
        return np.tile(cv, (K, 1, 1))
    var = np.repeat(cv[:, None], D, axis=1) if kind == "spherical" else cv
    out = np.zeros((K, D, D))
    idx = np.arange(D)
    out[:, idx, idx] = var
    return out


def diag_terms(means, cv, kind):
    """(center, lin, quad, const) of diagonal (or spherical) densities for the fused kernels
    (``diag_frames``): log N(x | μ_k, σ_k²) = const_k + Σ_d y_d (lin_kd + y_d quad_kd) with
    y = x - center."""
    D = means.shape[1]
    c = means.mean(axis=0)
    mc = means - c
    var = np.repeat(cv[:, None], D, axis=1) if kind == "spherical" else cv
    prec = 1.0 / var
    const = -0.5 * (D * _LOG_2PI + np.log(var).sum(axis=1) + (mc * mc * prec).sum(axis=1))
    return (np.ascontiguousarray(c), np.ascontiguousarray(mc * prec),
            np.ascontiguousarray(-0.5 * prec), np.ascontiguousarray(const))


def full_terms(means, cv, kind):
    """(center, mc, linv, const) of full (or tied) densities for the ``full_frames`` kernel:
    log N(x | μ_k, Σ_k) = const_k - ½ |L_k⁻¹ (x - center - mc_k)|², Σ_k = L_k L_kᵀ, with
    ``linv`` (K, Dp, Dp) the L_k⁻¹ zero-padded to Dp, D rounded up to a multiple of 4."""
    K, D = means.shape
    c = means.mean(axis=0)
    mats = np.broadcast_to(cv, (K, D, D)) if kind == "tied" else cv
    L = np.linalg.cholesky(mats)
    Dp = -(-D // 4) * 4
    linv = np.zeros((K, Dp, Dp))
    linv[:, :D, :D] = np.tril(np.linalg.inv(L))
    const = -0.5 * (D * _LOG_2PI + 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1))
    return (np.ascontiguousarray(c), np.ascontiguousarray(means - c), linv,
            np.ascontiguousarray(const))


def full_kernel(K, D):
    """Whether full densities of K states over D features take the ``full_frames`` kernel
    (``_FULL_KERNEL_MAX_K``, ``_FULL_KERNEL_MAX_KD``), else the pairs-and-BLAS product."""
    return K < _FULL_KERNEL_MAX_K and K * D < _FULL_KERNEL_MAX_KD


def _pieces(n, threads_of=None):
    """Bounds of the pieces a pass over n frames runs as: fixed by n alone (so sums folded in
    piece order do not depend on the thread count), or 4 per thread with ``threads_of``."""
    k = max(1, -(-n // _PIECE_FRAMES)) if threads_of is None else 4 * threads_of
    return (n * np.arange(k + 1)) // k


def over_frames(n, backend, run):
    """``run(a, b)`` on frames [a, b) of pieces of n frames, 4 per thread of the backend, on
    its threads: how every per-frame pass of the continuous models is launched (densities,
    mixtures); the moments, whose sums are folded by piece, cut by n alone instead."""
    threads = kernel_threads(SYSTEM, backend)
    b = _pieces(n, threads)
    run_pieces(lambda i: run(b[i], b[i + 1]), len(b) - 1, threads)


def diag_frames(X, means, cv, kind, scaled, backend=None):
    """Diagonal densities of every frame in one fused pass (the backend's ``diag_frames``
    kernel, pieces of frames on its threads): (out (n, K), shift (n,)); with ``scaled``, out
    holds exp(ll - shift) and shift each frame's maximum, else out holds ll (shift empty)."""
    return _fused_frames(X, "diag_frames", diag_terms(means, cv, kind), scaled, backend)


def full_frames(X, means, cv, kind, scaled, backend=None):
    """``diag_frames`` for full (or tied) covariances, by the ``full_frames`` kernel."""
    return _fused_frames(X, "full_frames", full_terms(means, cv, kind), scaled, backend)


def _fused_frames(X, name, terms, scaled, backend):
    """The densities of every frame by the fused kernel ``name`` and its ``terms`` (center
    first, the per-state constants last): (out (n, K), shift)."""
    n, K = X.shape[0], terms[-1].shape[0]
    out = scratch("frames", (n, K))
    shift = scratch("shift", n if scaled else 0)
    kernel = get_kernel(SYSTEM, name, backend)
    over_frames(n, backend, lambda a, b: kernel(X, terms[0], a, b, *terms[1:], out, shift,
                                                scaled))
    return out, shift


def score_diag(X, means, cv, kind, sp, tm, off, backend=None):
    """Per-sequence log-likelihoods of the frames X (float64, C order) under diagonal (or
    spherical) Gaussians and the chain (sp, tm), float64: the densities are computed inside
    the scoring kernel as it uses them (``forward_loglik_diag``, or ``_lanes`` up to
    DIAG_SMALL_MAX_N states), so no (n, N) table is written and read back; the same bits as
    ``frames._score`` on ``log_density``'s table (from 5 to SMALL_MAX_N states, to rounding:
    a GEMM there, the table's unrolled lanes)."""
    g = (X,) + diag_terms(means, cv, kind)
    name = "forward_loglik_diag_lanes" if sp.shape[0] <= DIAG_SMALL_MAX_N else \
        "forward_loglik_diag"
    _, out = _score_ops(_iota(X.shape[0]), off, (sp, tm, g), backend, name)
    if (out == -np.inf).any():  # underflow inside one step, or truly impossible: log space
        _logspace.rescore(out, off, lambda a, b: log_density(X[a:b], means, cv, kind, backend),
                          *_logspace.logs(sp, tm))
    return out


def viterbi_diag(X, means, cv, kind, sp, tm, off, backend=None):
    """(log-probabilities, states) of the Viterbi paths of the frames X (float64, C order)
    under diagonal (or spherical) Gaussians and the chain (sp, tm): the densities are
    computed inside the Viterbi kernel as each step uses them (``viterbi_diag``), so no
    (n, N) table is written and read back; the same paths and floats as ``frames._viterbi``
    on ``log_density``'s table."""
    g = (X,) + diag_terms(means, cv, kind)
    return _viterbi_logs(_iota(X.shape[0]), off, *_logspace.logs(sp, tm), g, backend,
                         "viterbi_diag")


def _pair_rows(feats, cols):
    """Frames per block of ``feats`` features a frame (the rows of a ``frame_pairs`` block:
    D(D+3)/2, or 2D for diagonal features, plus the moments' row of ones; the block stays in
    cache) multiplied by ``cols`` columns of weights: few enough that OpenBLAS runs the product
    on one thread (``ESTEP_GEMM_MAX_MADDS``).  The blocks run on the backend's threads already
    (pieces of frames, or the E-step's chunks), and OpenBLAS's own threads spinning beside them
    took the cores: numba, 2 threads, one fit iteration in E-step chunks, N=64 D=4 diag 1.35
    -> 0.66 s.  Each block costs a few calls from Python, so no fewer rows than the cap
    allows: the diagonal moments sized as full pairs (D(D+3)/2 features) took 107-frame blocks
    at K=16 D=16, 167 ms per 10^6 frames against 131 in 512-frame blocks."""
    return int(min(4096, max(64, _PAIR_ELEMS // feats),
                   max(64, ESTEP_GEMM_MAX_MADDS // (feats * max(1, cols)))))


def log_density(X, means, cv, kind, backend=None):
    """log N(x_t | means_k, Σ_k): float64 (n_samples, K), X float64 C-contiguous (n, D).

    diag/spherical: the fused ``diag_frames`` kernel.  full/tied with few states and
    features (``full_kernel``): the ``full_frames`` kernel.  Else log N = c_k - ½ yᵀP_k y +
    yᵀ P_k μ_k (y = x - center, P_k = Σ_k⁻¹ from its Cholesky factor), and yᵀP_k y is a
    product too: of the D(D+1)/2 pairwise products y_i y_j (i <= j) against each state's
    matching entries of P_k (doubled off the diagonal).  The ``frame_pairs`` kernel writes
    the pairs and y of a block of frames, one BLAS product gives every state's density of
    the block: no loop over states, pieces of frames on the backend's threads."""
    if kind in ("spherical", "diag"):
        return diag_frames(X, means, cv, kind, False, backend)[0]
    n, D = X.shape
    K = means.shape[0]
    if full_kernel(K, D):
        return full_frames(X, means, cv, kind, False, backend)[0]
    c, mc, linv, const = full_terms(means, cv, kind)
    Li = linv[:, :D, :D]
    P = np.einsum("kji,kjl->kil", Li, Li)  # L⁻ᵀ L⁻¹
    Pm = np.einsum("kij,kj->ki", P, mc)  # P_k μ_k
    const = const - 0.5 * (Pm * mc).sum(axis=1)
    iu, ju = np.triu_indices(D)
    Wq = -0.5 * P[:, iu, ju] * np.where(iu == ju, 1.0, 2.0)  # (K, D(D+1)/2)
    W = np.ascontiguousarray(np.hstack([Wq, Pm]).T)  # (D(D+1)/2 + D, K): pairs, then y
    out = scratch("frames", (n, K))
    pairs = get_kernel(SYSTEM, "frame_pairs", backend)
    rows = _pair_rows(W.shape[0], K)

    def piece(lo, hi):
        buf = np.empty((W.shape[0], rows))
        for a in range(lo, hi, rows):
            b = min(a + rows, hi)
            pairs(X, c, a, b, buf, False)
            o = out[a:b]
            np.dot(buf[:, :b - a].T, W, out=o)
            o += const

    over_frames(n, backend, piece)
    return out


def moments(X, w, kind, center, backend=None):
    """Weighted moments of the centred data y = x - center: (Σ_t w_tk, Σ_t w_tk y_t, second
    moments), with second moments (K, D) Σ w y² for diag/spherical, (K, D, D) Σ w y yᵀ for
    full/tied.  Diag/spherical with K < ``_DIAG_BLAS_MIN_K`` (``_DIAG_BLAS_MIN_K_WIDE`` from
    ``_DIAG_WIDE_D`` features on): the fused ``diag_moments`` kernel; full/tied with
    K < ``_FULL_MOMENTS_MAX_K``: ``full_moments``.  Else one BLAS product per block of frames,
    of the weights against the block's features from the ``frame_pairs`` kernel: y_i y_j
    (i <= j; i = j only for diag/spherical), y, and a row of ones for Σ w (NumPy's
    w.sum(axis=0) over 10^6 x 16 frames took 39 ms).  Pieces of frames
    fixed by n, on the backend's threads, folded in piece order: the sums do not depend on
    the thread count."""
    n, D = X.shape
    K = w.shape[1]
    w = np.ascontiguousarray(w, dtype=np.float64)
    center = np.ascontiguousarray(center, dtype=np.float64)
    bounds = _pieces(n)
    k = len(bounds) - 1
    threads = kernel_threads(SYSTEM, backend)
    diag = kind in ("spherical", "diag")
    nq = D if diag else D * (D + 1) // 2
    if diag:
        fused = K < (_DIAG_BLAS_MIN_K_WIDE if D >= _DIAG_WIDE_D else _DIAG_BLAS_MIN_K)
    else:
        fused = K < _FULL_MOMENTS_MAX_K
    if fused:
        post, obs, sq = np.zeros((k, K)), np.zeros((k, K, D)), np.zeros((k, K, nq))
        kernel = get_kernel(SYSTEM, "diag_moments" if diag else "full_moments", backend)
        run_pieces(lambda i: kernel(X, center, w, bounds[i], bounds[i + 1], post[i], obs[i],
                                    sq[i]), k, threads)
        post, obs, acc = post.sum(axis=0), obs.sum(axis=0), sq.sum(axis=0)
        return post, obs, acc if diag else _unpack_pairs(acc, D)
    pairs = get_kernel(SYSTEM, "frame_pairs", backend)
    acc = np.zeros((k, K, nq + D + 1))
    rows = _pair_rows(nq + D + 1, K)

    def piece(i):
        buf = np.empty((nq + D + 1, rows))
        buf[nq + D] = 1.0  # a row of ones: the product's last column is Σ w
        for a in range(bounds[i], bounds[i + 1], rows):
            b = min(a + rows, bounds[i + 1])
            pairs(X, center, a, b, buf, diag)
            acc[i] += np.dot(w[a:b].T, buf[:, :b - a].T)

    run_pieces(piece, k, threads)
    acc = acc.sum(axis=0)
    post, obs = acc[:, nq + D], acc[:, nq:nq + D]
    return post, obs, acc[:, :nq] if diag else _unpack_pairs(acc[:, :nq], D)


def _unpack_pairs(packed, D):
    """(K, D, D) symmetric matrices from their upper triangles (K, D(D+1)/2), row-major."""
    iu, ju = np.triu_indices(D)
    out = np.empty((packed.shape[0], D, D))
    out[:, iu, ju] = packed
    out[:, ju, iu] = packed
    return out


def floor_covars(cv, kind, min_covar):
    """Variances below ``min_covar`` raised to it; a full (tied) matrix whose smallest
    eigenvalue is below it gets the difference added to its diagonal."""
    if kind in ("spherical", "diag"):
        return np.maximum(cv, min_covar)
    mats = cv[None] if kind == "tied" else cv
    lo = np.linalg.eigvalsh(mats)[:, 0]
    add = np.where(lo < min_covar, min_covar - lo, 0.0)
    if (add > 0).any():
        mats = mats + add[:, None, None] * np.eye(mats.shape[1])
    mats = 0.5 * (mats + mats.transpose(0, 2, 1))
    return mats[0] if kind == "tied" else mats
