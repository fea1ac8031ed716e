"""Naive NumPy convolution: the document's method, kept obviously right (backend ``"numpy"``).

The transposed convolution is computed exactly as the source document computes its sub-pixel
convolution: insert stride-1 zeros between the pixels, pad with k-1 zeros, then slide the
(flipped) kernel over the result one output pixel at a time with ``np.sum``.  It multiplies every
inserted zero, which is what the compiled kernels avoid.

Kernel signatures are shared with ``_numba`` and ``_cython``; shapes were checked by the caller.
"""
from __future__ import annotations

import numpy as np


def doc_conv(A, K):
    """The document's ``conv``: valid 2-D cross-correlation of a square image with a square kernel."""
    length = A.shape[0] - K.shape[0] + 1
    ks = K.shape[0]
    F = np.zeros((length, length), dtype=A.dtype)
    for i in range(length):
        for j in range(length):
            F[i, j] = np.sum(np.multiply(A[i:i + ks, j:j + ks], K))
    return F


def doc_subpixel_convolution(A, K, stride=2):
    """The document's ``subpixel_convolution`` followed by its ``ReLU``, on 2-D arrays."""
    Z = np.zeros(((A.shape[0] - 1) * stride + 1, (A.shape[1] - 1) * stride + 1), dtype=A.dtype)
    Z[::stride, ::stride] = A
    pad = K.shape[0] - 1
    Z = np.pad(Z, (pad, pad), "constant", constant_values=0)
    F = doc_conv(Z, K)
    return np.abs(np.multiply(F, (F >= 0.0).astype(F.dtype)))


def conv2d(x, w, bias, sh, sw, ph, pw, relu, out, rows=None):
    """out[n, o] = bias[o] + sum_c xcorr(pad(x[n, c]), w[o, c]) sampled every (sh, sw).
    (``rows``: the compiled kernels' scratch, unused here.)"""
    N, C, H, W = x.shape
    O, _, kh, kw = w.shape
    Ho, Wo = out.shape[2], out.shape[3]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    for i in range(Ho):
        for j in range(Wo):
            patch = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]  # (N, C, kh, kw)
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
    out += bias[None, :, None, None]
    if relu:
        np.maximum(out, 0, out=out)


def conv_transpose2d(x, w, bias, sh, sw, ph, pw, relu, out, phases=None):
    """Zero-interpolate x by the stride, pad k-1-p, then conv2d with the flipped, transposed kernel.
    (``phases``: the compiled kernels' scratch, unused here.)"""
    N, C, H, W = x.shape
    _, O, kh, kw = w.shape
    Ho, Wo = out.shape[2], out.shape[3]
    z = np.zeros((N, C, (H - 1) * sh + 1, (W - 1) * sw + 1), dtype=x.dtype)
    z[:, :, ::sh, ::sw] = x
    # full padding k-1 on each side, output_padding extra at the bottom/right; a padding p
    # larger than k-1 crops instead of pads
    top, left = kh - 1 - ph, kw - 1 - pw
    bottom = Ho + kh - 1 - top - z.shape[2]
    right = Wo + kw - 1 - left - z.shape[3]
    z = np.pad(z, ((0, 0), (0, 0), (max(top, 0), max(bottom, 0)), (max(left, 0), max(right, 0))))
    z = z[:, :, max(-top, 0):z.shape[2] - max(-bottom, 0), max(-left, 0):z.shape[3] - max(-right, 0)]
    wf = np.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    conv2d(z, wf, bias, 1, 1, 0, 0, relu, out)


def conv_transpose2d_gemm(x, wmat, bias, kh, kw, sh, sw, ph, pw, relu, out, cols=None,
                          phases=None):
    """The compiled backends' GEMM entry point, answered here by the document's method too: the
    reference has one algorithm whatever the channel count (``wmat`` is the weight reshaped to
    (C_in, C_out*kh*kw) and transposed; this undoes that; ``cols``, ``phases``: the compiled
    kernels' scratch, unused here)."""
    C, O = x.shape[1], out.shape[1]
    w = np.ascontiguousarray(wmat.T.reshape(C, O, kh, kw))
    conv_transpose2d(x, w, bias, sh, sw, ph, pw, relu, out)
