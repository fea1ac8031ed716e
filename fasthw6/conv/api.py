"""Public convolution API: validation, output allocation and dispatch.

Semantics follow ``torch.nn.functional.conv2d`` / ``conv_transpose2d`` (cross-correlation,
weights (O, C, kh, kw) and (C_in, C_out, kh, kw) respectively).  Everything is checked here; the
kernels in ``_numba`` / ``_cython`` / ``reference`` check nothing.
"""
from __future__ import annotations

import numpy as np

from .._backend import get_kernel, kernel_threads, resolve_backend
from .._validate import as_float_array, as_pair, result_dtype
from . import _anchors  # noqa: F401  (registers torch as the anchor of these functions)

# Bound on stride, padding and output_padding: far above any real layer, and low enough that the
# kernels' int64 index arithmetic ((H - 1) * stride + k, H + 2 * padding) cannot overflow.
MAX_STEP = 2**31 - 1


def _empty(shape, dtype, why, alloc=np.empty):
    """The output array, or a ValueError naming the arguments when it cannot exist."""
    size = 1
    for s in shape:  # Python ints: no wrap-around
        size *= int(s)
    if size * np.dtype(dtype).itemsize >= 2**62:
        raise ValueError(f"{why} give an output of shape {tuple(shape)}, too large to allocate")
    return alloc(shape, dtype=dtype)


def _scratch(jobs, backend, shape, dtype, what):
    """The compiled kernels' scratch: one ``shape`` buffer per slot, as many slots as the kernel
    has threads (at most one per job; slot t runs jobs t, t+S, ...).  Allocated here, by NumPy,
    so that memory that is not there is a MemoryError naming the buffer before any kernel runs;
    the NumPy reference gets an empty one it does not use."""
    if resolve_backend(backend) == "numpy":
        return np.empty((0,) + tuple(shape), dtype)
    slots = max(1, min(int(jobs), kernel_threads("conv", backend)))
    try:
        return np.empty((slots,) + tuple(shape), dtype)
    except MemoryError:
        raise MemoryError(f"conv: no memory for {slots} x {what} of scratch") from None


# From this many channel pairs on, a transposed convolution is a BLAS GEMM per image (no zeros
# multiplied) followed by a compiled col2im scatter; below it the direct phase kernel wins.
GEMM_MIN_CHANNEL_PAIRS = 64


def _operands(x, weight, bias, transposed):
    """Coerce x/weight/bias to one float dtype and 4-D layout; report whether x was 2-D.

    x and weight decide the dtype; bias follows it (as batch norm's gamma/beta do), so a list
    bias does not turn a float32 convolution into a float64 one.
    """
    dt = result_dtype(x, weight)
    x = as_float_array(x, "x", dtype=dt, ndim=(2, 4))
    weight = as_float_array(weight, "weight", dtype=dt, ndim=(2, 4))
    plain = x.ndim == 2
    if plain != (weight.ndim == 2):
        raise ValueError(
            f"x and weight must both be 2-D (H, W)/(kh, kw) or both 4-D, got x {x.ndim}-D and "
            f"weight {weight.ndim}-D"
        )
    if plain:
        x, weight = x[None, None], weight[None, None]
    if 0 in weight.shape:
        raise ValueError(f"weight must not be empty, got shape {weight.shape}")
    if 0 in x.shape[1:]:
        raise ValueError(f"x must have non-empty channel and spatial axes, got shape {x.shape}")
    cin = weight.shape[0] if transposed else weight.shape[1]
    if x.shape[1] != cin:
        what = "weight.shape[0] (C_in)" if transposed else "weight.shape[1] (C)"
        raise ValueError(f"x has {x.shape[1]} channels but {what} is {cin}")
    cout = weight.shape[1] if transposed else weight.shape[0]
    if bias is None:
        bias = np.zeros(cout, dtype=dt)
    else:
        bias = as_float_array(bias, "bias", dtype=dt, ndim=1)
        if bias.shape[0] != cout:
            raise ValueError(f"bias must have {cout} entries (one per output channel), got {bias.shape[0]}")
    return x, weight, bias, plain


def _finish(out, plain):
    return out[0, 0] if plain else out


def conv2d(x, weight, bias=None, stride=1, padding=0, *, activation=None, backend=None):
    """2-D cross-correlation, as ``torch.nn.functional.conv2d``.

    Parameters
    ----------
    x : array_like, shape (N, C, H, W) or (H, W)
        Input.  float32 x and weight give float32 (bias follows them); float64 or integers
        give float64.
    weight : array_like, shape (O, C, kh, kw) or (kh, kw) when ``x`` is 2-D
    bias : array_like, shape (O,), optional
    stride, padding : int or (int, int)
        Stride >= 1 and zero padding >= 0, (vertical, horizontal).
    activation : {None, "relu"}
        Applied in the same pass as the convolution.
    backend : str, optional
        ``"numba"``, ``"cython"``, ``"numpy"`` or ``"auto"``; default: the current backend.

    Returns
    -------
    ndarray, shape (N, O, Ho, Wo) or (Ho, Wo)
        ``Ho = (H + 2*ph - kh) // sh + 1`` and likewise ``Wo``.

    Raises
    ------
    TypeError
        Non-numeric input or non-integer stride/padding.
    ValueError
        Wrong ranks, channel mismatch, kernel larger than the padded input, NaN/inf.

    Examples
    --------
    >>> conv2d(np.arange(9.0).reshape(3, 3), np.ones((2, 2)))
    array([[ 8., 12.],
           [20., 24.]])
    """
    x, weight, bias, plain = _operands(x, weight, bias, transposed=False)
    sh, sw = as_pair(stride, "stride", 1, MAX_STEP)
    ph, pw = as_pair(padding, "padding", 0, MAX_STEP)
    relu = _activation(activation)
    N, _, H, W = x.shape
    O, _, kh, kw = weight.shape
    if H + 2 * ph < kh or W + 2 * pw < kw:
        raise ValueError(
            f"kernel ({kh}, {kw}) is larger than the padded input ({H + 2 * ph}, {W + 2 * pw})"
        )
    out = _empty((N, O, (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1), x.dtype,
                 f"padding ({ph}, {pw}) and stride ({sh}, {sw})")
    Wo = out.shape[3]
    rows = _scratch(N * O, backend, (Wo,), x.dtype, f"a {Wo}-value row buffer")
    get_kernel("conv", "conv2d", backend)(x, weight, bias, sh, sw, ph, pw, relu, out, rows)
    return _finish(out, plain)


def conv_transpose2d(x, weight, bias=None, stride=1, padding=0, output_padding=0, *,
                     activation=None, backend=None):
    """Transposed 2-D convolution, as ``torch.nn.functional.conv_transpose2d``.

    Each input pixel scatters ``weight`` scaled by its value into the output at ``stride``
    spacing.  The compiled kernels never multiply the zeros a zero-interpolating implementation
    inserts: stride² fewer multiply-adds than the document's method.

    Parameters
    ----------
    x : array_like, shape (N, C_in, H, W) or (H, W)
    weight : array_like, shape (C_in, C_out, kh, kw) or (kh, kw) when ``x`` is 2-D
    bias : array_like, shape (C_out,), optional
    stride : int or (int, int), >= 1
    padding : int or (int, int), >= 0
        Removed from each side of the full output.
    output_padding : int or (int, int)
        Extra rows/columns at the bottom/right; each must be smaller than the stride.
    activation : {None, "relu"}
    backend : str, optional

    Returns
    -------
    ndarray, shape (N, C_out, Ho, Wo) or (Ho, Wo)
        ``Ho = (H-1)*sh - 2*ph + kh + oph`` and likewise ``Wo``.

    Raises
    ------
    TypeError, ValueError
        As ``conv2d``; also output_padding >= stride or an empty output.

    Examples
    --------
    >>> conv_transpose2d(np.array([[1.0, 2.0]]), np.ones((1, 2)), stride=2)
    array([[1., 1., 2., 2.]])
    """
    x, weight, bias, plain = _operands(x, weight, bias, transposed=True)
    sh, sw = as_pair(stride, "stride", 1, MAX_STEP)
    ph, pw = as_pair(padding, "padding", 0, MAX_STEP)
    oph, opw = as_pair(output_padding, "output_padding", 0, MAX_STEP)
    if oph >= sh or opw >= sw:
        raise ValueError(
            f"output_padding ({oph}, {opw}) must be smaller than stride ({sh}, {sw})"
        )
    relu = _activation(activation)
    N, Cin, H, W = x.shape
    _, Cout, kh, kw = weight.shape
    Ho = (H - 1) * sh - 2 * ph + kh + oph
    Wo = (W - 1) * sw - 2 * pw + kw + opw
    if Ho <= 0 or Wo <= 0:
        raise ValueError(f"padding ({ph}, {pw}) leaves an empty output ({Ho}, {Wo})")
    out = _empty((N, Cout, Ho, Wo), x.dtype, f"stride ({sh}, {sw}) and output_padding ({oph}, {opw})")
    # a row buffer holds the min(sw, Wo) phases of an output row, ceil(Wo / sw) values each
    phase = (min(sw, Wo), -(-Wo // sw))
    gemm = Cin * Cout >= GEMM_MIN_CHANNEL_PAIRS
    jobs = N if gemm else N * Cout
    phases = _scratch(jobs, backend, phase, x.dtype, f"a {phase[0]} x {phase[1]} row buffer")
    if gemm:
        # cols[(o, ky, kx), (iy, ix)] = sum_c wmat[(o, ky, kx), c] * x[n, c, iy, ix]
        wmat = np.ascontiguousarray(weight.reshape(Cin, Cout * kh * kw).T)
        cols = _scratch(jobs, backend, (Cout * kh * kw, H * W), x.dtype,
                        f"a {Cout * kh * kw} x {H * W} column matrix")
        get_kernel("conv", "conv_transpose2d_gemm", backend)(
            x, wmat, bias, kh, kw, sh, sw, ph, pw, relu, out, cols, phases
        )
    else:
        get_kernel("conv", "conv_transpose2d", backend)(
            x, weight, bias, sh, sw, ph, pw, relu, out, phases
        )
    return _finish(out, plain)


def zero_interpolate(x, stride=2):
    """Insert ``stride - 1`` zeros between neighbouring pixels along the last two axes.

    Parameters
    ----------
    x : array_like, at least 2-D, shape (..., H, W)
    stride : int or (int, int), >= 1

    Returns
    -------
    ndarray, shape (..., (H-1)*sh + 1, (W-1)*sw + 1)

    Examples
    --------
    >>> zero_interpolate(np.array([[1.0, 2.0], [3.0, 4.0]]))
    array([[1., 0., 2.],
           [0., 0., 0.],
           [3., 0., 4.]])
    """
    arr = np.asarray(x)
    if arr.ndim < 2:
        raise ValueError(f"x must be at least 2-D (..., H, W), got {arr.ndim}-D")
    arr = as_float_array(arr, "x")
    sh, sw = as_pair(stride, "stride", 1, MAX_STEP)
    H, W = arr.shape[-2:]
    if H == 0 or W == 0:
        raise ValueError(f"x must have non-empty spatial axes, got shape {arr.shape}")
    out = _empty(arr.shape[:-2] + ((H - 1) * sh + 1, (W - 1) * sw + 1), arr.dtype,
                 f"x's shape {arr.shape} and stride ({sh}, {sw})", np.zeros)
    out[..., ::sh, ::sw] = arr
    return out


def subpixel_conv2d(x, kernel, stride=2, activation=None, *, backend=None):
    """The document's sub-pixel convolution: zero-interpolate, pad k-1, valid cross-correlation.

    The kernel is applied as given (unflipped), which makes this ``conv_transpose2d`` with the
    kernel flipped in both axes; that identity is how it is computed, without the zeros.

    Parameters
    ----------
    x : array_like, shape (H, W) or (N, C_in, H, W)
    kernel : array_like, shape (k, k') or (C_out, C_in, k, k') (a conv2d-layout weight)
    stride : int or (int, int)
    activation : {None, "relu"}
        ``"relu"`` reproduces the document's ``ReLU(subpixel_convolution(A, K))``.
    backend : str, optional

    Returns
    -------
    ndarray, shape ((H-1)*sh + k, (W-1)*sw + k') (or with N, C_out in front)

    Examples
    --------
    >>> subpixel_conv2d(np.array([[1.0, 2.0]]), np.array([[1.0, -1.0]]), stride=2)
    array([[-1.,  1., -2.,  2.]])
    """
    k = as_float_array(kernel, "kernel", dtype=result_dtype(x, kernel), ndim=(2, 4))
    # flip both spatial axes; a 4-D conv-layout (O, C, kh, kw) kernel also swaps to (C, O, ...)
    w = k[::-1, ::-1] if k.ndim == 2 else k[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)
    return conv_transpose2d(x, np.ascontiguousarray(w), stride=stride, activation=activation,
                            backend=backend)


def relu(x):
    """max(x, 0) elementwise; float32 stays float32, integers give float64.

    Examples
    --------
    >>> relu(np.array([-1.0, 0.0, 2.0]))
    array([0., 0., 2.])
    """
    return np.maximum(as_float_array(x, "x"), 0)


def _activation(activation) -> bool:
    if activation is None:
        return False
    if isinstance(activation, str) and activation == "relu":
        return True
    if not isinstance(activation, str):
        raise TypeError(f"activation must be None or 'relu', got {type(activation).__name__} "
                        f"{activation!r}")
    raise ValueError(f"activation must be None or 'relu', got {activation!r}")
