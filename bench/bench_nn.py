"""Batch norm forward + backward (training mode), float32: numba, Cython, reference and torch.

Work is bytes of the five array passes an ideal implementation makes (read x, write y, read dy,
read x, write dx); ``test_copy_bandwidth`` measures numpy's copy bandwidth (read + write bytes per
second) in the same run, the yardstick of the >= 50 % target.
"""
from __future__ import annotations

import functools

import numpy as np
import pytest

import fasthw6.nn as nn
from bench.conftest import QUICK
from fasthw6._backend import comparisons

# quick: a quarter of the rows and of the batch
_SHAPES = [(256, 4096), (8, 64, 56, 56)] if QUICK else [(1024, 4096), (32, 64, 56, 56)]
CASES = {str(shape): shape for shape in _SHAPES}
IMPLS = comparisons("batchnorm_forward_backward", nn.batchnorm_forward_backward)


@functools.lru_cache(maxsize=1)  # one case's arrays at a time (the cases run in turn)
def operands(case):
    shape = CASES[case]
    rng = np.random.default_rng(4)
    x = (rng.standard_normal(shape) * 2 + 1).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    g = rng.standard_normal(shape[1]).astype(np.float32)
    b = rng.standard_normal(shape[1]).astype(np.float32)
    return x, g, b, dy


@functools.lru_cache(maxsize=1)
def expected(case):
    x, g, b, dy = operands(case)
    return nn.batchnorm_forward_backward(x.astype(np.float64), g.astype(np.float64),
                                         b.astype(np.float64), dy.astype(np.float64), backend="numba")


def check(case):
    def run(out):
        for o, r in zip(out, expected(case)):
            np.testing.assert_allclose(o, r, rtol=1e-3, atol=1e-3 * max(1.0, float(np.abs(r).max())))
    return run


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("case", list(CASES))
def test_batchnorm_forward_backward(measure, case, impl):
    fn = IMPLS[impl]
    if fn is None:
        pytest.skip(f"{impl} not installed")
    x, g, b, dy = operands(case)
    measure(lambda: fn(x, g, b, dy), group="batchnorm fwd+bwd f32", case=case, impl=impl,
            work=5 * x.nbytes, unit="B/s", baseline="torch", check=check(case),
            rounds=2 if impl == "numpy" else None)


@pytest.mark.parametrize("case", list(CASES))
def test_copy_bandwidth(measure, case):
    x = operands(case)[0]
    dst = np.empty_like(x)

    def chk(_):
        np.testing.assert_array_equal(dst[:1], x[:1])

    measure(lambda: np.copyto(dst, x), group="batchnorm fwd+bwd f32", case=case,
            impl="numpy copy (bandwidth)", work=2 * x.nbytes, unit="B/s", baseline="torch",
            check=chk)
