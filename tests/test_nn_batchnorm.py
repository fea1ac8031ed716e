"""Batch norm: every backend against the reference, torch + autograd and finite differences."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fasthw6
from fasthw6.nn import batchnorm_backward, batchnorm_forward, batchnorm_forward_backward

SHAPES = [(7, 5), (64, 33), (3, 4, 5, 6), (2, 3, 1, 9)]


def _data(shape, dtype, seed=0, shift=3.0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(shape) * 2 + shift).astype(dtype)
    C = shape[1]
    return x, rng.standard_normal(C).astype(dtype), rng.standard_normal(C).astype(dtype), \
        rng.standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("shape", SHAPES)
def test_backends_match_reference(backend, dtype, tol, shape):
    x, g, b, dy = _data(shape, dtype)
    ref = batchnorm_forward_backward(x.astype(np.float64), g.astype(np.float64),
                                     b.astype(np.float64), dy.astype(np.float64), backend="numpy")
    out = batchnorm_forward_backward(x, g, b, dy, backend=backend)
    for o, r in zip(out, ref):
        assert o.dtype == dtype
        np.testing.assert_allclose(o, r, rtol=tol["rtol"] * 10, atol=tol["atol"] * 10 * max(1, np.abs(r).max()))


# BatchNorm1d's (N, C, L) and BatchNorm3d's (N, C, D, H, W) go through the (N, C, L) kernels
@pytest.mark.parametrize("shape", SHAPES + [(4, 3, 7), (2, 3, 2, 3, 4)])
def test_matches_torch_autograd_and_running_stats(backend, dtype, shape):
    torch = pytest.importorskip("torch")
    x, g, b, dy = _data(shape, dtype, seed=1)
    C = shape[1]
    rm, rv = np.zeros(C, dtype), np.ones(C, dtype)
    y, cache = batchnorm_forward(x, g, b, 1e-5, True, rm, rv, 0.1, backend=backend)
    dx, dg, db = batchnorm_backward(dy, cache)
    tx, tg, tb = (torch.from_numpy(a.copy()).requires_grad_(True) for a in (x, g, b))
    trm, trv = torch.zeros(C, dtype=tx.dtype), torch.ones(C, dtype=tx.dtype)
    ty = torch.nn.functional.batch_norm(tx, trm, trv, tg, tb, training=True, momentum=0.1, eps=1e-5)
    ty.backward(torch.from_numpy(dy))
    t = dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(y, ty.detach().numpy(), **t)
    np.testing.assert_allclose(dx, tx.grad.numpy(), **t)
    np.testing.assert_allclose(dg, tg.grad.numpy(), **t)
    np.testing.assert_allclose(db, tb.grad.numpy(), **t)
    np.testing.assert_allclose(rm, trm.numpy(), **t)
    np.testing.assert_allclose(rv, trv.numpy(), **t)
    # eval mode uses the running statistics, as torch does
    ye, ce = batchnorm_forward(x, g, b, 1e-5, False, rm, rv, backend=backend)
    dxe, _, _ = batchnorm_backward(dy, ce)
    tx2 = torch.from_numpy(x.copy()).requires_grad_(True)
    te = torch.nn.functional.batch_norm(tx2, trm, trv, tg.detach(), tb.detach(), training=False, eps=1e-5)
    te.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(ye, te.detach().numpy(), **t)
    np.testing.assert_allclose(dxe, tx2.grad.numpy(), **t)


@pytest.mark.parametrize("shape", [(5, 3), (3, 2, 2, 3)])
def test_gradients_match_finite_differences(backend, shape):
    x, g, b, dy = _data(shape, np.float64, seed=2)

    def loss(x_, g_, b_):
        return float(np.sum(batchnorm_forward(x_, g_, b_, backend=backend)[0] * dy))

    _, dx, dg, db = batchnorm_forward_backward(x, g, b, dy, backend=backend)
    h = 1e-6
    for arr, grad, args in ((x, dx, 0), (g, dg, 1), (b, db, 2)):
        num = np.zeros_like(arr)
        it = np.nditer(arr, flags=["multi_index"])
        for _ in it:
            i = it.multi_index
            p, m = [x.copy(), g.copy(), b.copy()], [x.copy(), g.copy(), b.copy()]
            p[args][i] += h
            m[args][i] -= h
            num[i] = (loss(*p) - loss(*m)) / (2 * h)
        np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-6)


def test_variance_is_stable_for_large_offsets(backend):
    # E[x^2] - E[x]^2 loses every digit here; two passes in float64 do not
    rng = np.random.default_rng(3)
    x = (1e4 + rng.standard_normal((256, 4))).astype(np.float32)
    y, cache = batchnorm_forward(x, backend=backend)
    np.testing.assert_allclose(cache.var, x.astype(np.float64).var(axis=0), rtol=1e-6)
    np.testing.assert_allclose(y.std(axis=0), 1.0, rtol=1e-3)


@pytest.mark.parametrize("rows,slices", [(1, 1), (3, 2), (7, 3), (64, 1)])
@pytest.mark.parametrize("shift", [0.0, 1e4])
@pytest.mark.parametrize("stream", [False, True])
def test_2d_kernels_chunked_and_sliced(backend, dtype, tol, rows, slices, shift, stream):
    """The (N, D) kernels merge row chunks (Chan's update) and split columns into slices: any
    chunking and slicing gives the reference statistics and gradients, offsets included."""
    from fasthw6._backend import get_kernel

    N, D = 23, 11
    x, g, b, dy = _data((N, D), dtype, seed=7, shift=shift)
    g, b = g.astype(np.float64), b.astype(np.float64)
    xd = x.astype(np.float64)
    out = {}
    for be, rs in ((backend, (rows, slices)), ("numpy", (1, 1))):
        mean, var, y = np.empty(D), np.empty(D), np.empty_like(x)
        get_kernel("nn", "batchnorm_forward_2d", be)(x, g, b, 1e-5, True, mean, var, y, *rs,
                                                     stream)
        dx, dg, db = np.empty_like(x), np.empty(D), np.empty(D)
        get_kernel("nn", "batchnorm_backward_2d", be)(dy, x, g, mean, var, 1e-5, True, dx, dg, db,
                                                      rs[1], stream)
        out[be] = (mean, var, y, dx, dg, db)
    np.testing.assert_allclose(out[backend][0], xd.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(out[backend][1], xd.var(axis=0), rtol=1e-9)
    for o, r in zip(out[backend][2:], out["numpy"][2:]):
        np.testing.assert_allclose(o, r, rtol=tol["rtol"] * 10, atol=tol["atol"] * 10 * max(1, np.abs(r).max()))


@pytest.mark.parametrize("stream", [False, True])
def test_2d_kernels_column_slices_race_free(backend, stream):
    """Column slices run on parallel threads: each must write its own columns only (the Cython
    kernels once shared the slice bounds between threads).  Repeated, since a race is timing."""
    from fasthw6._backend import get_kernel

    fwd = get_kernel("nn", "batchnorm_forward_2d", backend)
    bwd = get_kernel("nn", "batchnorm_backward_2d", backend)
    rng = np.random.default_rng(2)
    for it in range(300):
        N, D = ((2, 3), (5, 37), (4, 64))[it % 3]
        x = rng.standard_normal((N, D))
        dy = rng.standard_normal((N, D))
        g, b = np.ones(D), np.zeros(D)
        mean, var, y = np.empty(D), np.empty(D), np.full((N, D), np.nan)
        fwd(x, g, b, 1e-5, True, mean, var, y, 2, 3, stream)
        dx, dg, db = np.full((N, D), np.nan), np.empty(D), np.empty(D)
        bwd(dy, x, g, mean, var, 1e-5, True, dx, dg, db, 3, stream)
        xhat = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + 1e-5)
        np.testing.assert_allclose(y, xhat, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(db, dy.sum(axis=0), rtol=1e-9, atol=1e-9)
        ref = (dy - dy.mean(axis=0) - xhat * (dy * xhat).mean(axis=0)) / np.sqrt(x.var(axis=0) + 1e-5)
        np.testing.assert_allclose(dx, ref, rtol=1e-7, atol=1e-9)


def _misaligned(shape, dtype, offset):
    """An uninitialised (NaN) output array starting ``offset`` elements into a buffer, and the
    buffer, whose margins must stay NaN."""
    size = int(np.prod(shape))
    buf = np.full(size + offset + 1, np.nan, dtype=dtype)
    return buf[offset:offset + size].reshape(shape), buf


@pytest.mark.parametrize("shape", [(3, 2, 37), (2, 3, 64), (1, 1, 5), (5, 37), (4, 64), (9, 48), (2, 3)])
@pytest.mark.parametrize("offset", [0, 1, 3])
def test_streamed_outputs_equal_ordinary(backend, dtype, shape, offset):
    """The streaming-store loops (aligned vector body, scalar head and tail) write exactly what
    the ordinary loops write, whatever the alignment of the output and the row/plane length."""
    from fasthw6._backend import get_kernel

    x, g, b, dy = _data(shape, dtype, seed=11)
    C = shape[1]
    g, b = g.astype(np.float64), b.astype(np.float64)
    four = x.ndim == 3
    out = []
    for stream in (False, True):
        mean, var = np.empty(C), np.empty(C)
        y, ybuf = _misaligned(shape, dtype, offset)
        if four:
            get_kernel("nn", "batchnorm_forward_4d", backend)(x, g, b, 1e-5, True, mean, var, y,
                                                              stream)
        else:
            get_kernel("nn", "batchnorm_forward_2d", backend)(x, g, b, 1e-5, True, mean, var, y,
                                                              2, 2, stream)
        dx, dbuf = _misaligned(shape, dtype, offset)
        dg, db = np.empty(C), np.empty(C)
        args = (dy, x, g, mean, var, 1e-5, True, dx, dg, db)
        if four:
            get_kernel("nn", "batchnorm_backward_4d", backend)(*args, stream)
        else:
            get_kernel("nn", "batchnorm_backward_2d", backend)(*args, 2, stream)
        for buf in (ybuf, dbuf):
            assert np.isnan(buf[:offset]).all() and np.isnan(buf[offset + x.size:]).all()
        out.append((y.copy(), dx.copy(), mean, var, dg, db))
    for a, b_ in zip(*out):
        np.testing.assert_array_equal(a, b_)
    assert np.isfinite(out[1][0]).all() and np.isfinite(out[1][1]).all()


def test_output_recycler_reuses_only_dropped_memory():
    from fasthw6.nn.api import _OutputRecycler

    r = _OutputRecycler(min_bytes=1024, max_blocks=3)
    small = r.empty((10,), np.float32)
    assert small.flags.owndata and not r._blocks
    a = r.empty((64, 32), np.float32)
    a[:] = 1.0
    addr = a.ctypes.data
    b = r.empty((64, 32), np.float32)  # a is alive: new memory
    assert not np.shares_memory(a, b)
    view = a[3:]
    del a
    c = r.empty((64, 32), np.float32)  # a's block is still used by ``view``
    assert not np.shares_memory(c, view) and (view == 1.0).all()
    del view
    d = r.empty((32, 64), np.float32)  # now free: same bytes, another shape is fine
    assert d.ctypes.data == addr and d.shape == (32, 64) and d.flags.c_contiguous
    e = r.empty((1024,), np.float64)  # same byte count, another dtype
    assert not np.shares_memory(e, d) and e.dtype == np.float64
    assert len(r._blocks) <= 3
    r.clear()
    assert not r._blocks and d.shape == (32, 64)


def test_output_recycler_threads_never_share_live_outputs():
    import threading

    from fasthw6.nn.api import _OutputRecycler

    r = _OutputRecycler(min_bytes=1024, max_blocks=4)
    errors = []

    def work(k):
        for i in range(200):
            a = r.empty((512,), np.float32)
            a.fill(k)
            b = r.empty((512,), np.float32)
            b.fill(-k)
            if not ((a == k).all() and (b == -k).all()):
                errors.append((k, i))

    threads = [threading.Thread(target=work, args=(k,)) for k in (1, 2, 3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


@pytest.mark.parametrize("shape", [(1024, 1024), (4, 16, 128, 128)])
def test_recycled_outputs_survive_later_calls(shape):
    """Outputs big enough to be recycled stay intact while held, and calls after they are
    dropped still give the right values (on recycled memory)."""
    x, g, b, dy = _data(shape, np.float32, seed=3)
    first = batchnorm_forward_backward(x, g, b, dy)
    kept = [a.copy() for a in first]
    for seed in (4, 5):
        x2, g2, b2, dy2 = _data(shape, np.float32, seed=seed)
        out = batchnorm_forward_backward(x2, g2, b2, dy2)
        for o in out[:2]:
            assert not any(np.shares_memory(o, f) for f in first[:2])
        ref = batchnorm_forward_backward(x2.astype(np.float64), g2.astype(np.float64),
                                         b2.astype(np.float64), dy2.astype(np.float64))
        for o, r_ in zip(out, ref):
            np.testing.assert_allclose(o, r_, rtol=2e-3, atol=2e-3 * max(1.0, np.abs(r_).max()))
        del out
    for a, k in zip(first, kept):
        np.testing.assert_array_equal(a, k)
    held = {a.ctypes.data for a in first[:2]}
    del first, a
    again = batchnorm_forward_backward(x, g, b, dy)
    assert {a.ctypes.data for a in again[:2]} == held  # dropped memory is recycled


def test_streaming_thresholds():
    from fasthw6.nn.api import _stream_y

    assert _stream_y(np.empty((1024, 4096), np.float32))
    assert not _stream_y(np.empty((512, 4096), np.float32))
    assert not _stream_y(np.empty((16, 64, 56, 56), np.float32))


def test_4d_backward_streams_large_channels_only():
    from fasthw6.nn.api import _stream_dx

    assert _stream_dx(np.empty((32, 64, 56, 56), np.float32))
    assert _stream_dx(np.empty((24, 64, 56, 56), np.float32))
    assert _stream_dx(np.empty((16, 64, 56, 56), np.float64))
    assert not _stream_dx(np.empty((16, 64, 56, 56), np.float32))
    assert not _stream_dx(np.empty((3, 4, 5, 6)))


@settings(max_examples=25, deadline=None, derandomize=True)
@given(n=st.integers(2, 9), c=st.integers(1, 5), hw=st.integers(1, 4), four=st.booleans())
def test_property_shapes_numba_vs_reference(n, c, hw, four):
    shape = (n, c, hw, hw + 1) if four else (n, c)
    x, g, b, dy = _data(shape, np.float64, seed=n * 31 + c)
    out = batchnorm_forward_backward(x, g, b, dy, backend="numba")
    ref = batchnorm_forward_backward(x, g, b, dy, backend="numpy")
    for o, r in zip(out, ref):
        np.testing.assert_allclose(o, r, rtol=1e-9, atol=1e-9)


def test_top_level_exports():
    assert fasthw6.batchnorm_forward is batchnorm_forward
    assert fasthw6.batchnorm_backward is batchnorm_backward


def test_errors():
    x = np.ones((4, 3))
    with pytest.raises(ValueError, match=r"2-D \(N, D\) or \(N, C, ...\).*got 1-D"):
        batchnorm_forward(np.ones(3))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        batchnorm_forward(np.ones((1, 3)))
    with pytest.raises(ValueError, match="gamma must have 3 entries"):
        batchnorm_forward(x, gamma=np.ones(2))
    with pytest.raises(ValueError, match="x must be finite.*channel 1"):
        batchnorm_forward(np.array([[1.0, np.nan], [2.0, 3.0]]))
    with pytest.raises(ValueError, match="x must be finite"):
        batchnorm_forward(np.array([[1.0, np.inf], [2.0, 3.0]]), training=False,
                          running_mean=np.zeros(2), running_var=np.ones(2))
    with pytest.raises(ValueError, match="pass running_mean and running_var"):
        batchnorm_forward(x, training=False)
    with pytest.raises(TypeError, match="running_mean must be a float32/float64 ndarray"):
        batchnorm_forward(x, running_mean=[0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match=r"running_var must have shape \(3,\)"):
        batchnorm_forward(x, running_var=np.ones(4))
    with pytest.raises(ValueError, match="momentum"):
        batchnorm_forward(x, momentum=1.5)
    with pytest.raises(ValueError, match="eps must be > 0"):
        batchnorm_forward(x, eps=0.0)
    with pytest.raises(TypeError, match="training must be a bool"):
        batchnorm_forward(x, training="yes")
    with pytest.raises(TypeError, match="numeric"):
        batchnorm_forward(np.array([["a", "b"], ["c", "d"]]))
    _, cache = batchnorm_forward(np.arange(12.0).reshape(4, 3))
    with pytest.raises(ValueError, match="dy must have the shape of x"):
        batchnorm_backward(np.ones((4, 2)), cache)
    with pytest.raises(ValueError, match="dy must be finite.*channel 2"):
        batchnorm_backward(np.array([[0, 0, np.nan]] * 4), cache)
    with pytest.raises(TypeError, match="BatchNormCache"):
        batchnorm_backward(np.ones((4, 3)), (1, 2))


def test_2d_statistics_stable_across_row_chunks(backend):
    """float64 data at an offset of 1e8 with unit spread: E[x^2] - E[x]^2 would keep no digit
    of the variance (eps * 1e16 ~ 1).  The (N, D) forward's shifted sums per row chunk, merged
    by Chan's update over several chunks (1000 rows), keep it to about 1e-12."""
    rng = np.random.default_rng(11)
    x = 1e8 + rng.standard_normal((1000, 8)) * np.linspace(0.5, 3.0, 8)
    y, cache = batchnorm_forward(x, eps=1e-12, backend=backend)
    ref = (x - x.mean(axis=0)).var(axis=0)  # two-pass reference
    np.testing.assert_allclose(cache.var, ref, rtol=1e-12)
    np.testing.assert_allclose(cache.mean, x.mean(axis=0), rtol=1e-14)  # an ulp or two
    np.testing.assert_allclose(y.std(axis=0), 1.0, rtol=1e-9)


@pytest.mark.slow
def test_cython_sse2_streaming_path(tmp_path):
    """This machine may have AVX-512, so the Cython streaming stores' SSE2 path would go
    untested: run the streamed-vs-ordinary equality test on it in a process that forces it."""
    import os
    import subprocess
    import sys

    if "cython" not in fasthw6.available_backends():
        pytest.skip("cython backend not built")
    env = dict(os.environ, FASTHW6_NO_AVX512="1")
    probe = subprocess.run([sys.executable, "-c", "from fasthw6.nn import _cython as c; "
                            "print(c.wide_streaming_stores())"], env=env, capture_output=True,
                           text=True, check=True)
    assert probe.stdout.strip() == "False"
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "-k", "test_streamed_outputs_equal_ordinary and cython", __file__],
                         env=env, capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert " passed" in run.stdout and "failed" not in run.stdout


def _readonly(a):
    a = np.array(a)
    a.setflags(write=False)
    return a


@pytest.mark.parametrize("shape", [(8, 5), (4, 3, 2, 5)])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_read_only_inputs_match_numba(shape, dt):
    # e.g. np.load(..., mmap_mode="r"): the Cython memoryviews of inputs are const
    if "cython" not in fasthw6.available_backends():
        pytest.skip("cython backend not built")
    rng = np.random.default_rng(9)
    x, dy = rng.standard_normal(shape).astype(dt), rng.standard_normal(shape).astype(dt)
    C = shape[1]
    g, b = rng.uniform(0.5, 2, C), rng.standard_normal(C)
    tol = dict(rtol=1e-5, atol=1e-5) if dt == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for training in (True, False):
        rm, rv = np.zeros(C), np.ones(C)
        y0, c0 = batchnorm_forward(x, g, b, training=training, running_mean=rm.copy(),
                                   running_var=rv.copy(), backend="numba")
        y1, c1 = batchnorm_forward(_readonly(x), _readonly(g), _readonly(b), training=training,
                                   running_mean=rm.copy(), running_var=rv.copy(), backend="cython")
        assert y1.dtype == y0.dtype
        np.testing.assert_allclose(y1, y0, **tol)
        for a, c in zip(batchnorm_backward(dy, c0), batchnorm_backward(_readonly(dy), c1)):
            np.testing.assert_allclose(c, a, **tol)


@pytest.mark.parametrize("shape", [(6, 3), (2, 3, 2, 2)])
def test_big_endian_float32_stays_float32(shape):
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    y, _ = batchnorm_forward(x.astype(">f4"), np.ones(3, ">f8"))
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, batchnorm_forward(x)[0])


def test_finite_x_whose_variance_overflows_is_not_called_non_finite(backend):
    with pytest.raises(ValueError, match="x is finite but channel 1's variance overflows float64"):
        batchnorm_forward(np.array([[0.0, 1e200], [1.0, -1e200]]), backend=backend)
    with pytest.raises(ValueError, match="x must be finite, found NaN or inf in channel 0"):
        batchnorm_forward(np.array([[np.inf], [1.0]]), backend=backend)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_running_statistics_rejected_in_both_modes(training, bad):
    x = np.random.default_rng(0).normal(size=(4, 3))
    rm, rv = np.zeros(3), np.ones(3)
    rm[1] = bad
    with pytest.raises(ValueError, match="running_mean must be finite, found NaN or inf at index 1"):
        batchnorm_forward(x, training=training, running_mean=rm, running_var=rv)
    rm[1] = 0.0
    rv[2] = bad
    with pytest.raises(ValueError, match="running_var must be finite, found NaN or inf at index 2"):
        batchnorm_forward(x, training=training, running_mean=rm, running_var=rv)
    rv[2] = -1.0
    with pytest.raises(ValueError, match="running_var must be >= 0, got -1.0 at index 2"):
        batchnorm_forward(x, training=training, running_mean=rm, running_var=rv)
    np.testing.assert_array_equal(rm, [0, 0, 0])  # nothing updated on error


def test_read_only_running_statistics_in_eval_mode(backend):
    # eval mode only reads them (np.load(..., mmap_mode="r") of a saved model); training writes
    x = np.random.default_rng(1).normal(size=(4, 3))
    rm, rv = _readonly(np.array([0.5, -1.0, 2.0])), _readonly(np.array([1.0, 4.0, 0.25]))
    y, _ = batchnorm_forward(x, training=False, running_mean=rm, running_var=rv, backend=backend)
    np.testing.assert_allclose(y, (x - rm) / np.sqrt(rv + 1e-5), rtol=1e-12)
    with pytest.raises(ValueError, match="running_mean must be writeable \\(training mode updates it"):
        batchnorm_forward(x, running_mean=rm, backend=backend)
