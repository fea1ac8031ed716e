"""Transposed convolution + ReLU: the document's method, numba, Cython and torch side by side.

Work is the useful multiply-adds N*H*W*k²*C_in*C_out; the document's method (backend "numpy")
does stride² times as many because it multiplies the zeros it inserts.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

import fasthw6
from fasthw6._backend import comparisons

from .conftest import QUICK, assert_close

# quick: case a on a 128x128 image (the naive reference takes ~13 s at 512x512), b and c on a
# quarter of the batch
_A, _Q = (128, 4) if QUICK else (512, 1)
CASES = {
    f"a: 1x1x{_A}x{_A} k3 s2": dict(n=1, cin=1, cout=1, hw=_A, k=3, s=2, p=0),
    f"b: {8 // _Q}x64->64 64x64 k3 s2": dict(n=8 // _Q, cin=64, cout=64, hw=64, k=3, s=2, p=0),
    f"c: {64 // _Q}x128->64 16x16 k4 s2 p1": dict(n=64 // _Q, cin=128, cout=64, hw=16, k=4, s=2, p=1),
}
IMPLS = comparisons("conv_transpose2d", fasthw6.conv_transpose2d)


@functools.lru_cache(maxsize=1)  # one case's arrays at a time (the cases run in turn)
def operands(case):
    c = CASES[case]
    rng = np.random.default_rng(5)
    x = rng.standard_normal((c["n"], c["cin"], c["hw"], c["hw"])).astype(np.float32)
    w = (rng.standard_normal((c["cin"], c["cout"], c["k"], c["k"])) / np.sqrt(c["cin"] * c["k"] ** 2)).astype(np.float32)
    b = rng.standard_normal(c["cout"]).astype(np.float32)
    return x, w, b


@functools.lru_cache(maxsize=1)
def expected(case):
    """float64 result of the numba backend, itself checked against the reference by the tests."""
    c = CASES[case]
    x, w, b = operands(case)
    return fasthw6.conv_transpose2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64),
                                    stride=c["s"], padding=c["p"], activation="relu")


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("case", list(CASES))
def test_conv_transpose2d_relu(measure, case, impl):
    fn = IMPLS[impl]
    if fn is None:
        pytest.skip(f"{impl} not installed")
    c = CASES[case]
    x, w, b = operands(case)
    work = c["n"] * c["hw"] ** 2 * c["k"] ** 2 * c["cin"] * c["cout"]
    measure(
        lambda: fn(x, w, b, stride=c["s"], padding=c["p"], activation="relu"),
        group="conv_transpose2d+relu f32", case=case, impl=impl, work=work, unit="MAC/s",
        baseline="torch", check=assert_close(expected(case), rtol=1e-3, atol=1e-3),
        rounds=1 if impl == "numpy" else None,
    )
