"""Gaussian densities and moments for the continuous emission models (``GaussianHMM``, and the
components of ``GMMHMM``), every one a BLAS product over all frames and all states at once.

Covariances come in hmmlearn's four kinds and its compact shapes, for K densities (states, or
states x mixture components) in D dimensions: "spherical" (K,), "diag" (K, D), "tied" (D, D)
shared by all, "full" (K, D, D).

The data are centred first (on the mean of the means, ``center``): the quadratic forms below are
expanded into products, and centring keeps the terms of the expansion from cancelling when the
data sit far from the origin.
"""
from __future__ import annotations

import numpy as np

COVARIANCE_TYPES = ("spherical", "diag", "full", "tied")
_LOG_2PI = np.log(2.0 * np.pi)
_PAIR_ELEMS = 1 << 16  # pairwise products x_a x_b per block of frames (stays in cache)


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


def log_density(X, means, cv, kind, center=None):
    """log N(x_t | means_k, Σ_k): float64 (n_samples, K).

    diag/spherical: products of X² and X against the precisions; full/tied: products of the
    pairwise products x_a x_b and of X against every state's precision entries (frames in
    blocks that stay in cache), with no loop over states."""
    X = np.asarray(X, np.float64)
    n, D = X.shape
    K = means.shape[0]
    c = means.mean(axis=0) if center is None else center
    Xc = X - c
    mc = means - c
    if kind in ("spherical", "diag"):
        var = np.repeat(cv[:, None], D, axis=1) if kind == "spherical" else cv
        prec = 1.0 / var
        const = -0.5 * (D * _LOG_2PI + np.log(var).sum(axis=1) + (mc * mc * prec).sum(axis=1))
        # np.dot: numpy's matmul is ~3x slower on these skinny shapes (1e6 x 4 by 4 x 3)
        out = np.dot(Xc * Xc, (-0.5 * prec).T)
        out += np.dot(Xc, (mc * prec).T)
        out += const
        return out
    # tied and full: log N = c_k - ½ xᵀP_k x + xᵀ P_k μ_k, P_k = Σ_k⁻¹ (from its Cholesky
    # factor).  xᵀP_k x is a product too: of the D(D+1)/2 pairwise products x_a x_b (a <= b)
    # against each state's matching entries of P_k (doubled off the diagonal), so every
    # state's quadratic form comes from one product per block of frames.
    mats = cv[None] if kind == "tied" else cv
    L = np.linalg.cholesky(mats)
    Linv = np.linalg.inv(L)
    P = np.einsum("kji,kjl->kil", Linv, Linv)  # L⁻ᵀ L⁻¹
    logdet = 2.0 * np.log(np.diagonal(L, axis1=1, axis2=2)).sum(axis=1)
    if kind == "tied":
        P = np.broadcast_to(P, (K, D, D))
        logdet = np.broadcast_to(logdet, (K,))
    Pm = np.einsum("kij,kj->ki", P, mc)  # P_k μ_k
    const = -0.5 * (D * _LOG_2PI + logdet + (Pm * mc).sum(axis=1))
    iu, ju = np.triu_indices(D)
    Wq = -0.5 * P[:, iu, ju] * np.where(iu == ju, 1.0, 2.0)  # (K, D(D+1)/2)
    Wq = np.ascontiguousarray(Wq.T)
    Wl = np.ascontiguousarray(Pm.T)
    out = np.empty((n, K))
    rows = max(64, _PAIR_ELEMS // iu.shape[0])
    for a in range(0, n, rows):
        x = Xc[a:a + rows]
        o = out[a:a + rows]
        np.dot(x[:, iu] * x[:, ju], Wq, out=o)
        o += np.dot(x, Wl)
        o += const
    return out


def moments(X, w, kind, center):
    """Weighted moments of the centred data: (Σ_t w_tk, Σ_t w_tk x_t, second moments), with
    second moments (K, D) Σ w x² for diag/spherical, (K, D, D) Σ w x xᵀ for full/tied; each a
    product of the weights against the data (frames in blocks for the outer products)."""
    Xc = np.asarray(X, np.float64) - center
    post = w.sum(axis=0)
    obs = np.dot(w.T, Xc)
    n, D = Xc.shape
    if kind in ("spherical", "diag"):
        return post, obs, np.dot(w.T, Xc * Xc)
    K = w.shape[1]
    iu, ju = np.triu_indices(D)
    acc = np.zeros((K, iu.shape[0]))
    rows = max(64, _PAIR_ELEMS // iu.shape[0])
    for a in range(0, n, rows):
        x = Xc[a:a + rows]
        acc += np.dot(w[a:a + rows].T, x[:, iu] * x[:, ju])  # the D(D+1)/2 distinct products
    sq = np.empty((K, D, D))
    sq[:, iu, ju] = acc
    sq[:, ju, iu] = acc
    return post, obs, sq


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
