"""Convolution: the document's table, every backend against the reference, torch as oracle."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fasthw6
from fasthw6._backend import comparisons
from fasthw6.conv import api
from fasthw6.conv.reference import doc_subpixel_convolution

# Question 5 of the document: its input, its kernel, and the 11x11 table it prints.
DOC_A = [[6, 0, -4, 0, 1], [4, 4, 0, 2, 1], [3, -7, 1, 4, 2], [-2, 2, 1, -4, 2], [5, 1, 2, 4, -1]]
DOC_K = [[3, -1, 2], [-2, 1, -3], [-2, 0, 3]]
DOC_TABLE = [
    [18, 0, 0, 0, 0, 0, 8, 0, 3, 0, 0],
    [0, 6, 0, 0, 12, 0, 8, 0, 0, 1, 0],
    [24, 0, 22, 0, 0, 4, 0, 0, 1, 0, 1],
    [0, 4, 0, 4, 0, 0, 0, 2, 0, 1, 0],
    [17, 0, 0, 0, 29, 0, 14, 0, 6, 0, 0],
    [0, 3, 15, 0, 11, 1, 0, 4, 0, 2, 0],
    [0, 0, 5, 7, 0, 0, 0, 0, 30, 0, 2],
    [6, 0, 0, 2, 0, 1, 10, 0, 2, 2, 0],
    [11, 2, 0, 0, 12, 0, 3, 4, 0, 0, 8],
    [0, 5, 0, 1, 0, 2, 0, 4, 0, 0, 2],
    [10, 0, 17, 0, 7, 0, 14, 0, 10, 1, 0],
]


def test_document_method_prints_the_document_table():
    A, K = np.array(DOC_A, np.float32), np.array(DOC_K, np.float32)
    np.testing.assert_array_equal(doc_subpixel_convolution(A, K), np.array(DOC_TABLE, np.float32))


def test_subpixel_conv2d_reproduces_document_table(backend):
    A, K = np.array(DOC_A, np.float32), np.array(DOC_K, np.float32)
    y = fasthw6.subpixel_conv2d(A, K, stride=2, activation="relu", backend=backend)
    assert y.dtype == np.float32 and y.shape == (11, 11)
    np.testing.assert_array_equal(y, np.array(DOC_TABLE, np.float32))


def test_integer_input_promotes_to_float64(backend):
    y = fasthw6.subpixel_conv2d(DOC_A, DOC_K, activation="relu", backend=backend)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, DOC_TABLE)


def test_subpixel_is_transposed_conv_with_flipped_kernel(backend):
    rng = np.random.default_rng(0)
    x, k = rng.standard_normal((7, 6)), rng.standard_normal((3, 4))
    a = fasthw6.subpixel_conv2d(x, k, stride=(2, 3), backend=backend)
    b = fasthw6.conv_transpose2d(x, k[::-1, ::-1], stride=(2, 3), backend=backend)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    # and both equal the document's pipeline spelled out with zero_interpolate + conv2d
    z = fasthw6.zero_interpolate(x, (2, 3))
    c = fasthw6.conv2d(np.pad(z, ((2, 2), (3, 3))), k, backend=backend)
    np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)


def test_zero_interpolate():
    x = np.arange(1, 7, dtype=np.float32).reshape(1, 2, 3)
    z = fasthw6.zero_interpolate(x, 3)
    assert z.shape == (1, 4, 7) and z.dtype == np.float32
    np.testing.assert_array_equal(z[0, ::3, ::3], x[0])
    assert np.count_nonzero(z) == 6


def _rand(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


conv_cases = st.fixed_dictionaries(dict(
    n=st.integers(1, 3), c=st.integers(1, 4), o=st.integers(1, 4),
    h=st.integers(1, 9), w=st.integers(1, 9), kh=st.integers(1, 4), kw=st.integers(1, 4),
    sh=st.integers(1, 3), sw=st.integers(1, 3), ph=st.integers(0, 3), pw=st.integers(0, 3),
    oph=st.integers(0, 2), opw=st.integers(0, 2), bias=st.booleans(), relu=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
))


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=conv_cases)
def test_conv_transpose2d_matches_reference(backend, dtype, tol, case):
    c = case
    oph, opw = min(c["oph"], c["sh"] - 1), min(c["opw"], c["sw"] - 1)
    Ho = (c["h"] - 1) * c["sh"] - 2 * c["ph"] + c["kh"] + oph
    Wo = (c["w"] - 1) * c["sw"] - 2 * c["pw"] + c["kw"] + opw
    if Ho <= 0 or Wo <= 0:
        return
    rng = np.random.default_rng(c["seed"])
    x = _rand(rng, (c["n"], c["c"], c["h"], c["w"]), dtype)
    w = _rand(rng, (c["c"], c["o"], c["kh"], c["kw"]), dtype)
    b = _rand(rng, (c["o"],), dtype) if c["bias"] else None
    kw = dict(stride=(c["sh"], c["sw"]), padding=(c["ph"], c["pw"]), output_padding=(oph, opw),
              activation="relu" if c["relu"] else None)
    got = fasthw6.conv_transpose2d(x, w, b, backend=backend, **kw)
    ref = fasthw6.conv_transpose2d(x.astype(np.float64), w.astype(np.float64),
                                   None if b is None else b.astype(np.float64), backend="numpy", **kw)
    assert got.dtype == dtype and got.shape == (c["n"], c["o"], Ho, Wo)
    np.testing.assert_allclose(got, ref, **tol)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=conv_cases)
def test_conv2d_matches_reference(backend, dtype, tol, case):
    c = case
    if c["h"] + 2 * c["ph"] < c["kh"] or c["w"] + 2 * c["pw"] < c["kw"]:
        return
    rng = np.random.default_rng(c["seed"])
    x = _rand(rng, (c["n"], c["c"], c["h"], c["w"]), dtype)
    w = _rand(rng, (c["o"], c["c"], c["kh"], c["kw"]), dtype)
    b = _rand(rng, (c["o"],), dtype) if c["bias"] else None
    kw = dict(stride=(c["sh"], c["sw"]), padding=(c["ph"], c["pw"]),
              activation="relu" if c["relu"] else None)
    got = fasthw6.conv2d(x, w, b, backend=backend, **kw)
    ref = fasthw6.conv2d(x.astype(np.float64), w.astype(np.float64),
                         None if b is None else b.astype(np.float64), backend="numpy", **kw)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, ref, **tol)


@pytest.mark.parametrize("cin,cout", [(8, 8), (16, 4), (3, 40)])
def test_gemm_path_matches_reference(backend, dtype, tol, cin, cout):
    """Many channel pairs take the GEMM + col2im path; it must agree with the direct one."""
    assert cin * cout >= api.GEMM_MIN_CHANNEL_PAIRS
    rng = np.random.default_rng(cin * cout)
    x = _rand(rng, (2, cin, 5, 6), dtype)
    w = _rand(rng, (cin, cout, 4, 3), dtype)
    b = _rand(rng, (cout,), dtype)
    kw = dict(stride=(2, 3), padding=(1, 2), output_padding=(1, 0), activation="relu")
    got = fasthw6.conv_transpose2d(x, w, b, backend=backend, **kw)
    ref = fasthw6.conv_transpose2d(x.astype(float), w.astype(float), b.astype(float),
                                   backend="numpy", **kw)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, ref, **tol)


@pytest.mark.parametrize("channels", [(1, 1), (8, 8)])
@pytest.mark.parametrize("kw_,pw,opw,width",
                         [(3, 0, 0, 5), (4, 1, 0, 5), (3, 1, 1, 5), (1, 0, 0, 5), (1, 0, 0, 1)])
def test_stride2_interleaved_store(backend, dtype, tol, channels, kw_, pw, opw, width):
    """Horizontal stride 2 stores both phases in one interleaved pass (direct and GEMM paths):
    odd and even output widths, padding, and a one-column output."""
    cin, cout = channels
    rng = np.random.default_rng(kw_ * 10 + pw)
    x = _rand(rng, (2, cin, 3, width), dtype)
    w = _rand(rng, (cin, cout, 2, kw_), dtype)
    b = _rand(rng, (cout,), dtype)
    for relu in (None, "relu"):
        kw = dict(stride=2, padding=(0, pw), output_padding=(0, opw), activation=relu)
        got = fasthw6.conv_transpose2d(x, w, b, backend=backend, **kw)
        ref = fasthw6.conv_transpose2d(x.astype(float), w.astype(float), b.astype(float),
                                       backend="numpy", **kw)
        assert got.dtype == dtype and got.shape == ref.shape
        np.testing.assert_allclose(got, ref, **tol)


@pytest.mark.parametrize("op", ["conv2d", "conv_transpose2d"])
@pytest.mark.parametrize("shape", [((2, 3, 7, 9), 2, 1), ((1, 16, 6, 5), 3, 0), ((3, 8, 4, 4), 1, 2)])
def test_every_backend_matches_torch(op, shape):
    torch_impl = comparisons(op, getattr(fasthw6, op))["torch"]
    if torch_impl is None:
        pytest.importorskip("torch")
    (n, c, h, w), s, p = shape
    rng = np.random.default_rng(h * w)
    x = rng.standard_normal((n, c, h, w))
    wshape = (c, 5, 3, 3) if op == "conv_transpose2d" else (5, c, 3, 3)
    weight, bias = rng.standard_normal(wshape), rng.standard_normal(5)
    extra = dict(output_padding=1) if op == "conv_transpose2d" and s > 1 else {}
    expect = torch_impl(x, weight, bias, stride=s, padding=p, activation="relu", **extra)
    for name, impl in comparisons(op, getattr(fasthw6, op), with_anchors=False).items():
        if impl is not None:
            got = impl(x, weight, bias, stride=s, padding=p, activation="relu", **extra)
            np.testing.assert_allclose(got, expect, rtol=1e-10, atol=1e-10, err_msg=name)


# ---------------------------------------------------------------------------- bad input
X4, W4 = np.zeros((1, 2, 4, 4)), np.zeros((2, 3, 3, 3))


@pytest.mark.parametrize("call,exc,match", [
    (lambda: fasthw6.conv_transpose2d(np.zeros(4), np.zeros(3)), ValueError, "x must be 2-D or 4-D"),
    (lambda: fasthw6.conv_transpose2d(X4, np.zeros((3, 3))), ValueError, "must both be 2-D"),
    (lambda: fasthw6.conv_transpose2d(X4, np.zeros((3, 3, 3, 3))), ValueError, "x has 2 channels"),
    (lambda: fasthw6.conv2d(X4, W4), ValueError, "x has 2 channels"),
    (lambda: fasthw6.conv_transpose2d(X4, W4, np.zeros(2)), ValueError, "bias must have 3 entries"),
    (lambda: fasthw6.conv_transpose2d(X4, W4, stride=0), ValueError, "stride must be >= 1"),
    (lambda: fasthw6.conv_transpose2d(X4, W4, stride=1.5), TypeError, "stride must be an int"),
    (lambda: fasthw6.conv_transpose2d(X4, W4, stride=(1, 2, 3)), ValueError, "pair of ints"),
    (lambda: fasthw6.conv_transpose2d(X4, W4, padding=-1), ValueError, "padding must be >= 0"),
    (lambda: fasthw6.conv_transpose2d(X4, W4, stride=2, output_padding=2), ValueError,
     "output_padding .* smaller than stride"),
    (lambda: fasthw6.conv_transpose2d(X4, W4, padding=5), ValueError, "empty output"),
    (lambda: fasthw6.conv2d(np.zeros((2, 2)), np.zeros((3, 3))), ValueError, "larger than the padded"),
    (lambda: fasthw6.conv2d(np.array([[np.nan, 1.0]]), np.ones((1, 1))), ValueError, "finite"),
    (lambda: fasthw6.conv2d(np.array([["a"]]), np.ones((1, 1))), TypeError, "numeric"),
    (lambda: fasthw6.conv2d(np.ones((2, 2)), np.ones((1, 1)) * 1j), TypeError, "real"),
    (lambda: fasthw6.conv2d(np.zeros((1, 2, 0, 4)), np.zeros((1, 2, 1, 1))), ValueError, "non-empty"),
    (lambda: fasthw6.conv2d(np.ones((2, 2)), np.ones((1, 1)), activation="tanh"), ValueError, "activation"),
    (lambda: fasthw6.conv2d(np.ones((2, 2)), np.ones((1, 1)), backend="cuda"), ValueError,
     "backend 'cuda' is unknown; available: auto"),
    (lambda: fasthw6.zero_interpolate(np.ones(3)), ValueError, "at least 2-D"),
    (lambda: fasthw6.subpixel_conv2d(np.ones((2, 2)), np.ones(3)), ValueError, "kernel must be 2-D or 4-D"),
])
def test_bad_input_raises_clear_error(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_relu():
    y = fasthw6.relu(np.array([-2, 0, 3], dtype=np.float32))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, [0, 0, 3])
    with pytest.raises(ValueError, match="finite"):
        fasthw6.relu([np.nan])


def _readonly(a):
    a = np.array(a)
    a.setflags(write=False)
    return a


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_read_only_inputs_match_numba_on_every_kernel(dt):
    # e.g. np.load(..., mmap_mode="r"): the Cython memoryviews of inputs are const
    if "cython" not in fasthw6.available_backends():
        pytest.skip("cython backend not built")
    rng = np.random.default_rng(5)
    x2, k2 = rng.standard_normal((6, 7)).astype(dt), rng.standard_normal((2, 3)).astype(dt)
    x4 = rng.standard_normal((2, 3, 5, 6)).astype(dt)
    w4 = rng.standard_normal((4, 3, 2, 2)).astype(dt)
    wt = rng.standard_normal((3, 4, 3, 3)).astype(dt)
    xg = rng.standard_normal((2, 8, 5, 6)).astype(dt)  # 8 * 8 channel pairs: the GEMM path
    wg = rng.standard_normal((8, 8, 3, 3)).astype(dt)
    assert 8 * 8 >= api.GEMM_MIN_CHANNEL_PAIRS > 3 * 4
    b4, bt = rng.standard_normal(4).astype(dt), rng.standard_normal(8).astype(dt)
    calls = [
        (fasthw6.conv2d, (x2, k2), {}),
        (fasthw6.conv2d, (x4, w4, b4), dict(stride=2, padding=1, activation="relu")),
        (fasthw6.conv_transpose2d, (x2, k2), dict(stride=2)),
        (fasthw6.conv_transpose2d, (x4, wt), dict(stride=2, padding=1)),
        (fasthw6.conv_transpose2d, (xg, wg, bt), dict(stride=2, activation="relu")),
        (fasthw6.subpixel_conv2d, (x2, k2), dict(stride=2)),
    ]
    for f, args, kw in calls:
        want = f(*args, **kw, backend="numba")
        got = f(*(_readonly(a) for a in args), **kw, backend="cython")
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=1e-5 if dt == np.float32 else 1e-12, atol=1e-5)


def test_big_endian_float32_stays_float32():
    rng = np.random.default_rng(3)
    x, k = rng.standard_normal((5, 6)).astype(np.float32), rng.standard_normal((2, 2)).astype(np.float32)
    for f in (fasthw6.conv2d, fasthw6.conv_transpose2d):
        got = f(x.astype(">f4"), k.astype(">f4"))
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, f(x, k))


def test_stride_padding_activation_and_bias_arguments():
    x, k = np.ones((3, 3)), np.ones((2, 2))
    # a 0-d integer array is an int
    np.testing.assert_array_equal(fasthw6.conv_transpose2d(x, k, stride=np.array(2)),
                                  fasthw6.conv_transpose2d(x, k, stride=2))
    np.testing.assert_array_equal(fasthw6.conv2d(x, k, padding=np.int64(1)), fasthw6.conv2d(x, k, padding=1))
    for kw in (dict(stride=2**40), dict(stride=2**62), dict(stride=(1, 2**62))):
        with pytest.raises(ValueError, match="stride must be <= 2147483647"):
            fasthw6.conv_transpose2d(x, k, **kw)
    with pytest.raises(ValueError, match="padding must be <= 2147483647"):
        fasthw6.conv2d(x, k, padding=2**62)
    with pytest.raises(ValueError, match=r"padding \(1073741824, 1073741824\) and stride \(1, 1\) give an "
                                         r"output of shape \(1, 1, 2147483650, 2147483650\), too large"):
        fasthw6.conv2d(x, k, padding=2**30)
    with pytest.raises(ValueError, match="stride .* and output_padding .* too large"):
        fasthw6.conv_transpose2d(x, k, stride=2**31 - 1)
    with pytest.raises(ValueError, match="x's shape .* and stride .* too large"):
        fasthw6.zero_interpolate(x, 2**31 - 1)
    with pytest.raises(TypeError, match="activation must be None or 'relu', got ndarray"):
        fasthw6.conv2d(x, k, activation=np.array(["relu", "x"]))
    with pytest.raises(ValueError, match="activation must be None or 'relu', got 'tanh'"):
        fasthw6.conv2d(x, k, activation="tanh")
    # the bias follows x and weight's dtype, as batch norm's gamma/beta do
    x32 = np.ones((1, 1, 3, 3), np.float32)
    k32 = np.ones((2, 1, 2, 2), np.float32)  # conv2d (O, C, ...) with O = 2
    for f, w in ((fasthw6.conv2d, k32), (fasthw6.conv_transpose2d, k32.transpose(1, 0, 2, 3))):
        for bias in ([0.5, 1.0], np.array([0.5, 1.0])):
            out = f(x32, w, bias=bias)
            assert out.dtype == np.float32
            np.testing.assert_array_equal(out[0, 1] - out[0, 0], 0.5)
