"""The numba and Cython kernels of convolution, batch norm and the SVM give the same bits.

The ``auto`` backend answers with the precompiled Cython kernel while numba's is not compiled
yet and with numba's afterwards (``fasthw6._backend.STANDIN``), so the two must agree exactly,
not within a tolerance: same input, same output, whatever happens to be compiled.  Each case
covers the size switches of its kernels: conv's direct and BLAS (GEMM) transposed paths and
ReLU; batch norm's (N, D) and (N, C, L) layouts, widths that leave lane tails, inference mode,
and outputs big enough to be written with streaming stores; the SVM on separable data of
several shapes, including more features than samples and badly scaled features.  (The HMM and
the VAE kernels have their own files, ``test_hmm_bitidentity.py`` and
``test_vae_bitidentity.py``.)
"""
from __future__ import annotations

import numpy as np
import pytest

import fasthw6
from fasthw6 import conv, nn
from fasthw6.svm import HardMarginSVC

pytestmark = pytest.mark.skipif(
    not {"numba", "cython"} <= set(fasthw6.available_backends()),
    reason="needs both compiled backends (FASTHW6_REQUIRE_BACKENDS makes a missing one fail)")

FLOATS = pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])


def assert_same_bits(outputs, what):
    """outputs: backend -> tuple of arrays."""
    a, b = outputs["numba"], outputs["cython"]
    assert len(a) == len(b)
    for k, (x, y) in enumerate(zip(a, b)):
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape, f"{what}, output {k}"
        if not np.array_equal(x, y, equal_nan=True):
            d = np.abs(x.astype(np.float64) - y.astype(np.float64))
            i = np.unravel_index(int(np.nanargmax(d)), d.shape)
            raise AssertionError(
                f"{what}, output {k}: numba and cython differ in {np.count_nonzero(x != y)} of "
                f"{x.size} entries, most at {i}: {x[i]!r} vs {y[i]!r}")


def both(fn):
    out = {}
    for b in ("numba", "cython"):
        r = fn(b)
        out[b] = r if isinstance(r, tuple) else (r,)
    return out


# (x shape, weight shape, stride, padding, output_padding): direct transposed (C_in * C_out
# below conv.api.GEMM_MIN_CHANNEL_PAIRS), GEMM transposed (from it on), 2-D input
CONV_T = [
    ((2, 3, 11, 13), (3, 5, 3, 3), 2, 0, 0),
    ((1, 2, 9, 7), (2, 3, 4, 4), 2, 1, 1),
    ((3, 1, 16, 16), (1, 1, 3, 5), (3, 1), (1, 2), 0),
    ((2, 16, 10, 12), (16, 8, 4, 4), 2, 1, 0),     # GEMM
    ((1, 32, 7, 9), (32, 24, 3, 3), 2, 0, 1),      # GEMM, odd sizes
    ((17, 19), (3, 3), 2, 0, 0),                   # plain 2-D
]


@FLOATS
@pytest.mark.parametrize("relu", [None, "relu"])
@pytest.mark.parametrize("case", CONV_T, ids=[f"{c[0]}x{c[1]}" for c in CONV_T])
def test_conv_transpose2d(case, relu, dtype):
    xs, ws, s, p, op = case
    rng = np.random.default_rng(len(xs) + sum(xs))
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    bias = None if len(ws) == 2 else rng.standard_normal(ws[1]).astype(dtype)
    assert_same_bits(both(lambda b: conv.conv_transpose2d(
        x, w, bias, stride=s, padding=p, output_padding=op, activation=relu, backend=b)),
        f"conv_transpose2d {case} {relu}")


@FLOATS
@pytest.mark.parametrize("case", [((2, 3, 12, 11), (4, 3, 3, 3), 1, 1),
                                  ((1, 8, 15, 15), (16, 8, 5, 3), 2, (2, 1)),
                                  ((21, 18), (4, 4), 3, 0)])
def test_conv2d(case, dtype):
    xs, ws, s, p = case
    rng = np.random.default_rng(sum(xs))
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    for relu in (None, "relu"):
        assert_same_bits(both(lambda b: conv.conv2d(x, w, stride=s, padding=p, activation=relu,
                                                    backend=b)), f"conv2d {case} {relu}")


BN_SHAPES = [(64, 300), (5, 7), (1100, 4099),          # (N, D); the last streams y and dx
             (8, 6, 17, 19), (3, 2, 1, 9),              # (N, C, H, W): lane tails
             (8, 3, 80, 80),                            # streams dx (channel > L2 budget)
             (4, 8, 370, 370)]                          # streams y as well


@FLOATS
@pytest.mark.parametrize("shape", BN_SHAPES, ids=[str(s) for s in BN_SHAPES])
def test_batchnorm(shape, dtype):
    rng = np.random.default_rng(sum(shape))
    x = (rng.standard_normal(shape) * 3 + 100).astype(dtype)  # an offset mean, as real layers
    dy = rng.standard_normal(shape).astype(dtype)
    C = shape[1]
    gamma = rng.standard_normal(C).astype(dtype)
    beta = rng.standard_normal(C).astype(dtype)

    def train(b):
        y, cache = nn.batchnorm_forward(x, gamma, beta, backend=b)
        dx, dg, db = nn.batchnorm_backward(dy, cache, backend=b)
        return y.copy(), dx.copy(), dg, db, cache.mean, cache.var

    def infer(b):
        y, _ = nn.batchnorm_forward(x, gamma, beta, training=False, running_mean=x.mean(0).mean(
            tuple(range(1, x.ndim - 1))) if x.ndim > 2 else x.mean(0),
            running_var=np.full(C, 2.0, dtype), backend=b)
        return (y.copy(),)

    assert_same_bits(both(train), f"batchnorm train {shape}")
    assert_same_bits(both(infer), f"batchnorm inference {shape}")


def _separable(n, d, seed, scale_decades=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    w = rng.standard_normal(d)
    s = X @ w / np.linalg.norm(w) + 0.3
    keep = np.abs(s) > 0.2
    X = X[keep] * 10.0 ** rng.uniform(-scale_decades, scale_decades, d)
    return X, np.where(s[keep] > 0, 1, 0)


@pytest.mark.parametrize("n,d,decades", [(40, 2, 0), (300, 5, 0), (60, 80, 0), (800, 20, 0),
                                         (400, 6, 3)])
def test_svm_fit(n, d, decades):
    X, y = _separable(n, d, seed=n + d, scale_decades=decades)

    def fit(b):
        m = HardMarginSVC(backend=b).fit(X, y)
        return (m.coef_, m.intercept_, m.alphas_, m.support_, m.dual_coef_,
                m.decision_function(X), np.array(m.n_iter_))

    assert_same_bits(both(fit), f"HardMarginSVC.fit n={n} d={d}")
