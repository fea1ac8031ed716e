"""Numba kernels for the VAE latent layer (backend ``"numba"``): KL divergence, the
reparameterisation z = mu + sigma * eps, and their gradients, fused so each array is read once.

Rows are samples, columns latent units; each row is independent work (``prange``).  ``sig``
selects the parameterisation of the second input: False, log-variance (sigma = exp(lv / 2));
True, sigma itself.  Sums (the per-sample KL) accumulate in float64.

The results are bit for bit those of the Cython kernels (``_cython.pyx``: same algorithms, same
signatures), on any x86-64 CPU: the ``auto`` backend may run either for the same call, and
``tests/test_vae_bitidentity.py`` holds them to it.  So the source fixes the order of every
floating-point operation and no compiler may change it: no ``fastmath`` here (LLVM then neither
reassociates nor fuses a multiply and an add), ``-ffp-contract=off`` for the C build (setup.py).
Each element's arithmetic is written in the same order in both files; float32 * float32 is a
float32 product in both, a float32 meeting a float64 is widened in both.  The vector width the
compiler picks (SSE, AVX2, AVX-512) then changes the speed only, never a bit.

Row sums have an explicit lane structure instead of a reduction the compiler could reorder
(``_lane_sum``): element j goes to lane j mod 8 for the full blocks of 8 (``LANES``), the tail
after the last full block is added to lane 0 in order, and the lanes are combined pairwise as
((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)).  The terms are computed first, in a loop of
their own that vectorises (it holds no reduction), and summed afterwards: the KL in float64
lanes, the finiteness checks of z and of the gradients (sums of x - x, 0 or NaN once an x is
inf/NaN) in lanes of the output's dtype.  The sigma parameterisation's KL terms, which take a
log, are computed inside the lane loop instead: numba does not vectorise a loop of float sums
without ``fastmath``, so that log is always the C library's, as in Cython, never a vector math
library's (which numba uses where one is installed, and which may round differently).

exp is evaluated by range reduction t = k ln2 + r, |r| <= ln2/2, a Taylor polynomial in r
(degree 13 for float64 results, 7 for float32: relative error below 1e-16 resp. 6e-9) and 2^k
assembled in the exponent bits.  Unlike a call to libm's exp it vectorises; t is clamped to
[-708, 709], the normal range of float64, so an overflowing variance shows up as an infinite KL
that the API reports.  Degree 7 is Horner's rule; degree 13 is Horner's rule down to the r^4
term, whose factor (the terms from r^4 on, under 0.1% of the value) pairs coefficients and
combines the pairs with r^2, r^4, r^8: a dependency chain half as long without fused
multiply-adds, at Horner's accuracy (~1 ulp).  p * 2^k is one multiplication in both backends
(here in a second loop, numba having no way to reinterpret a scalar's bits).  Inputs were
validated by ``fasthw6.vae.api``.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from .._jit import install_cache_locator

install_cache_locator()  # before the first @njit: kernels are cached under fasthw6._jit.cache_dir()

LOG2E = 1.4426950408889634
LN2_HI = 0.6931471803691238
LN2_LO = 1.9082149292705877e-10
LANES = 8  # lanes of the row sums (``_lane_sum``); the unrolled lane code below assumes 8
ROWS = 256  # rows per prange task: the row scratch is allocated once per task, not per row


@njit(nogil=True, cache=True)
def _exp_row(x, scale, lowp, out, kbuf):
    """out[j] = exp(scale * x[j]) for one row (float64 out, int64 scratch)."""
    n = x.shape[0]
    for j in range(n):
        t = min(max(scale * np.float64(x[j]), -708.0), 709.0)
        kf = np.floor(t * LOG2E + 0.5)
        r = (t - kf * LN2_HI) - kf * LN2_LO
        if lowp:
            p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6 + r * (1.0 / 24 + r * (
                1.0 / 120 + r * (1.0 / 720 + r * (1.0 / 5040)))))))
        else:
            r2 = r * r
            r4 = r2 * r2
            q = (((1.0 / 24 + r * (1.0 / 120)) + r2 * (1.0 / 720 + r * (1.0 / 5040)))
                 + r4 * ((1.0 / 40320 + r * (1.0 / 362880))
                         + r2 * (1.0 / 3628800 + r * (1.0 / 39916800)))
                 + (r4 * r4) * (1.0 / 479001600 + r * (1.0 / 6227020800.0)))
            p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6 + r * q)))
        out[j] = p
        # through int32, which converts 4 or 8 lanes at once (int64 would not on AVX2)
        kbuf[j] = (np.int64(np.int32(kf)) + 1023) << 52
    scale2 = kbuf.view(np.float64)
    for j in range(n):
        out[j] *= scale2[j]


@njit(nogil=True, cache=True)
def _sigma_row(v, sig, lowp, s, kbuf):
    if sig:
        for j in range(v.shape[0]):
            s[j] = v[j]
    else:
        _exp_row(v, 0.5, lowp, s, kbuf)


@njit(nogil=True, cache=True)
def _lane_sum(t, n, zero):
    """t[0] + ... + t[n-1] in the fixed lane order: t[j] into lane j mod 8 for the full blocks
    of 8, the tail t[n - n % 8:] into lane 0, then lanes (l, l + 4), (l, l + 2), (0, 1).
    ``zero`` is a 0 of t's dtype (the sum is in that dtype)."""
    n8 = n - n % LANES
    x0 = x1 = x2 = x3 = x4 = x5 = x6 = x7 = zero
    for j in range(0, n8, LANES):
        x0 += t[j]
        x1 += t[j + 1]
        x2 += t[j + 2]
        x3 += t[j + 3]
        x4 += t[j + 4]
        x5 += t[j + 5]
        x6 += t[j + 6]
        x7 += t[j + 7]
    for j in range(n8, n):
        x0 += t[j]
    return ((x0 + x4) + (x2 + x6)) + ((x1 + x5) + (x3 + x7))


@njit(nogil=True, cache=True)
def _kl_term_sigma(m, s, e, j):
    # mu^2 + sigma^2 - log sigma^2 - 1; 0 * eps adds nothing unless eps is NaN/inf
    mj = np.float64(m[j])
    return mj * mj + s[j] * s[j] - 2.0 * np.log(s[j]) - 1.0 + 0.0 * e[j]


@njit(nogil=True, cache=True)
def _kl_sum_sigma(m, s, e, n):
    """The KL sum of the sigma parameterisation, each term computed in its lane's step (the
    lane order of ``_lane_sum``): a loop of float sums is not vectorised, so ``log`` is the C
    library's, as in the Cython kernel, never a vector math library's."""
    n8 = n - n % LANES
    x0 = x1 = x2 = x3 = x4 = x5 = x6 = x7 = 0.0
    for j in range(0, n8, LANES):
        x0 += _kl_term_sigma(m, s, e, j)
        x1 += _kl_term_sigma(m, s, e, j + 1)
        x2 += _kl_term_sigma(m, s, e, j + 2)
        x3 += _kl_term_sigma(m, s, e, j + 3)
        x4 += _kl_term_sigma(m, s, e, j + 4)
        x5 += _kl_term_sigma(m, s, e, j + 5)
        x6 += _kl_term_sigma(m, s, e, j + 6)
        x7 += _kl_term_sigma(m, s, e, j + 7)
    for j in range(n8, n):
        x0 += _kl_term_sigma(m, s, e, j)
    return ((x0 + x4) + (x2 + x6)) + ((x1 + x5) + (x3 + x7))


@njit(nogil=True, cache=True, parallel=True)
def latent_forward(mu, v, eps, sig, lowp, z, kl, chk):
    """z = mu + sigma * eps and the per-row KL, one pass; eps may be mu (then z is unused).

    chk[i] is 0 unless row i of z, as stored in z's dtype, holds an inf or NaN: the lane sum
    of z[i, j] - z[i, j] in z's dtype, read back after the rounding, so a float32 overflow is
    seen.
    """
    N, D = mu.shape
    for blk in prange((N + ROWS - 1) // ROWS):
        s = np.empty(D)
        kbuf = np.empty(D, np.int64)
        t = np.empty(D)  # KL terms (log-variance)
        c = np.empty(D, z.dtype)  # z - z
        zero = np.zeros(1, z.dtype)[0]
        for i in range(blk * ROWS, min(N, (blk + 1) * ROWS)):
            _sigma_row(v[i], sig, lowp, s, kbuf)
            m = mu[i]
            vi = v[i]
            e = eps[i]
            zi = z[i]
            if sig:
                for j in range(D):
                    zi[j] = m[j] + s[j] * e[j]
                    c[j] = zi[j] - zi[j]
                acc = _kl_sum_sigma(m, s, e, D)
            else:
                for j in range(D):
                    zi[j] = m[j] + s[j] * e[j]
                    c[j] = zi[j] - zi[j]
                    mj = np.float64(m[j])
                    # mu^2 + sigma^2 - log sigma^2 - 1; 0 * eps adds nothing unless eps is NaN/inf
                    t[j] = mj * mj + s[j] * s[j] - np.float64(vi[j]) - 1.0 + 0.0 * e[j]
                acc = _lane_sum(t, D, 0.0)
            kl[i] = 0.5 * acc
            chk[i] = _lane_sum(c, D, zero)
    return kl


@njit(nogil=True, cache=True, parallel=True)
def latent_backward(dz, gkl, mu, v, eps, sig, lowp, dmu, dv, chk):
    """Gradients of sum(dz * z) + sum(gkl * kl) with respect to mu and lv (or sigma).

    With dz all zero this is the KL gradient; with gkl all zero, the reparameterisation's.
    chk[i] is 0 unless a gradient of row i, as stored in dmu/dv's dtype, is NaN/inf: the lane
    sum, in their dtype, of (dmu - dmu) + (dv - dv), each term on its own (float32 dmu + dv
    could overflow for two finite gradients).
    """
    N, D = mu.shape
    for blk in prange((N + ROWS - 1) // ROWS):
        s = np.empty(D)
        kbuf = np.empty(D, np.int64)
        c = np.empty(D, dmu.dtype)
        zn = np.zeros(2, dmu.dtype)
        zn[1] = np.nan
        zero = zn[0]
        nan = zn[1]
        for i in range(blk * ROWS, min(N, (blk + 1) * ROWS)):
            _sigma_row(v[i], sig, lowp, s, kbuf)
            g = gkl[i]
            m = mu[i]
            e = eps[i]
            d = dz[i]
            om = dmu[i]
            ov = dv[i]
            if sig:
                for j in range(D):
                    om[j] = d[j] + g * m[j]
                    ov[j] = d[j] * e[j] + g * (s[j] - 1.0 / s[j])
                    # the forward's log(sigma) rejects sigma <= 0; here nothing else would
                    c[j] = (om[j] - om[j]) + (ov[j] - ov[j]) + (zero if s[j] > 0.0 else nan)
            else:
                for j in range(D):
                    om[j] = d[j] + g * m[j]
                    ov[j] = 0.5 * (d[j] * e[j] * s[j] + g * (s[j] * s[j] - 1.0))
                    c[j] = (om[j] - om[j]) + (ov[j] - ov[j])
            chk[i] = _lane_sum(c, D, zero)
    return dmu
