"""Numba convolution kernels (backend ``"numba"``).

Shapes, strides and paddings were validated by ``fasthw6.conv.api``; nothing here checks bounds.
Each (batch item, output channel) plane is independent work, so ``prange`` runs over those and
every iteration writes only its own plane.

The transposed kernels work in *phase* form: output column ``ox = px + sw*j`` of output row ``oy``
only receives kernel taps ``ky = (oy+ph) mod sh (step sh)`` and ``kx = (px+pw) mod sw (step sw)``,
and for those taps the input column is ``ix = j + d`` with a constant ``d``.  The inner loop is
then a contiguous axpy over ``j`` into one row buffer per phase, and no inserted zero is ever
multiplied: stride² fewer multiply-adds than zero-interpolating first.  The phases of an output
row are then written in one pass (interleaved for stride 2, see ``_store_pair``).

Scratch comes from the caller (``fasthw6.conv.api``, with NumPy): ``S`` slots of row buffers
(and of column matrices on the GEMM path), sized to the work, and slot ``t`` runs jobs ``t,
t+S, t+2S, ...``.  An allocation that fails is then a MemoryError before any kernel starts; one
inside a ``prange`` worker would be lost (numba surfaces it as a SystemError).  A transposed row
buffer holds ``min(sw, Wo)`` phases, not ``sw``: an output narrower than the stride uses only
that many.  The Cython kernels take the same scratch and cut the work the same way.

Row buffers have the output's dtype: each output sums only ceil(k/s)²·C_in products, the same
float32 accumulation BLAS does on the GEMM path and torch does everywhere; a float64 buffer cost
1.55x on the 512x512 single-channel benchmark.
"""
from __future__ import annotations

import numpy as np
import numba
from numba import njit, prange

from .._jit import install_cache_locator

install_cache_locator()  # before the first @njit: kernels are cached under fasthw6._jit.cache_dir()


# Row slices rather than computed indices: numba then knows no index is negative, drops the
# wraparound selects and vectorises the inner loops (2.8x on the 512x512 benchmark).
@njit(nogil=True, cache=True, inline="always")
def _axpy(a, xs, acc):
    for j in range(xs.shape[0]):
        acc[j] += a * xs[j]


@njit(nogil=True, cache=True, inline="always")
def _add(xs, acc):
    for j in range(xs.shape[0]):
        acc[j] += xs[j]


@njit(nogil=True, cache=True, inline="always")
def _store_row(acc, b, relu, dst):
    for j in range(acc.shape[0]):
        v = acc[j] + b
        if relu and v < 0:
            v = 0
        dst[j] = v


@njit(nogil=True, cache=True, inline="always")
def _store_pair(a0, a1, b, relu, dst):
    """dst[2j] = a0[j] + b, dst[2j+1] = a1[j] + b (ReLU'd): the two phases of stride 2 interleaved.

    One contiguous pass the compiler vectorises with shuffles, where two stride-2 scatters are
    scalar stores: 1.6x on the whole 512x512 single-channel benchmark.
    """
    n1 = a1.shape[0]
    for j in range(n1):
        v0 = a0[j] + b
        v1 = a1[j] + b
        if relu and v0 < 0:
            v0 = 0
        if relu and v1 < 0:
            v1 = 0
        dst[2 * j] = v0
        dst[2 * j + 1] = v1
    for j in range(n1, a0.shape[0]):
        v0 = a0[j] + b
        if relu and v0 < 0:
            v0 = 0
        dst[2 * j] = v0


@njit(nogil=True, cache=True, inline="always")
def _store_phases(acc, sw, b, relu, dst):
    """dst[px + sw*j] = acc[px, j] + b (ReLU'd) for every phase px of an output row of length Wo."""
    Wo = dst.shape[0]
    if sw == 2 and Wo >= 2:
        _store_pair(acc[0, :(Wo + 1) // 2], acc[1, :Wo // 2], b, relu, dst)
    else:
        for px in range(min(sw, Wo)):
            _store_row(acc[px, :(Wo - px + sw - 1) // sw], b, relu, dst[px::sw])


@njit(nogil=True, cache=True, parallel=True)
def conv2d(x, w, bias, sh, sw, ph, pw, relu, out, rows):
    """``rows`` (S, Wo) of the output's dtype: one row buffer per slot."""
    N, C, H, W = x.shape
    O, _, kh, kw = w.shape
    Ho, Wo = out.shape[2], out.shape[3]
    S = rows.shape[0]
    for t in prange(S):
        acc = rows[t]
        for job in range(t, N * O, S):
            n = job // O
            o = job % O
            for oy in range(Ho):
                acc[:] = 0.0
                for c in range(C):
                    for ky in range(kh):
                        iy = oy * sh + ky - ph
                        if iy < 0 or iy >= H:
                            continue
                        for kx in range(kw):
                            # output columns whose input column j*sw + kx - pw lies in [0, W)
                            j0 = max(0, -((kx - pw) // sw))
                            j1 = min(Wo, (W - 1 + pw - kx) // sw + 1)
                            if j1 > j0:
                                c0 = j0 * sw + kx - pw
                                _axpy(w[o, c, ky, kx],
                                      x[n, c, iy, c0:c0 + (j1 - j0 - 1) * sw + 1:sw],
                                      acc[j0:j1])
                _store_row(acc, bias[o], relu, out[n, o, oy])
    return out


@njit(nogil=True, cache=True, parallel=True)
def conv_transpose2d(x, w, bias, sh, sw, ph, pw, relu, out, phases):
    """``phases`` (S, min(sw, Wo), ceil(Wo/sw)) of the output's dtype: a row buffer per slot."""
    N, C, H, W = x.shape
    _, O, kh, kw = w.shape
    Ho, Wo = out.shape[2], out.shape[3]
    S = phases.shape[0]
    for t in prange(S):
        acc = phases[t]
        for job in range(t, N * O, S):
            n = job // O
            o = job % O
            b = bias[o]
            for oy in range(Ho):
                ry = oy + ph
                for px in range(min(sw, Wo)):
                    nj = (Wo - px + sw - 1) // sw
                    a = acc[px]
                    a[:nj] = 0.0
                    for c in range(C):
                        for ky in range(ry % sh, kh, sh):
                            iy = (ry - ky) // sh
                            if iy < 0:
                                break
                            if iy >= H:
                                continue
                            for kx in range((px + pw) % sw, kw, sw):
                                d = (px + pw - kx) // sw  # input column = j + d
                                j0, j1 = max(0, -d), min(nj, W - d)
                                _axpy(w[c, o, ky, kx], x[n, c, iy, j0 + d:j1 + d], a[j0:j1])
                _store_phases(acc, sw, b, relu, out[n, o, oy])
    return out


@njit(nogil=True, cache=True)
def _col2im_image(cols, bias, sh, sw, ph, pw, relu, out, acc):
    """Scatter-add cols[o, ky, kx, iy, ix] into out[o, iy*sh+ky-ph, ix*sw+kx-pw], + bias (one
    image); ``acc`` a row buffer of ``min(sw, Wo)`` phases."""
    O, kh, kw, H, W = cols.shape
    Ho, Wo = out.shape[1], out.shape[2]
    for o in range(O):
        b = bias[o]
        for oy in range(Ho):
            ry = oy + ph
            for px in range(min(sw, Wo)):
                nj = (Wo - px + sw - 1) // sw
                a = acc[px]
                a[:nj] = 0.0
                for ky in range(ry % sh, kh, sh):
                    iy = (ry - ky) // sh
                    if iy < 0:
                        break
                    if iy >= H:
                        continue
                    for kx in range((px + pw) % sw, kw, sw):
                        d = (px + pw - kx) // sw
                        j0, j1 = max(0, -d), min(nj, W - d)
                        _add(cols[o, ky, kx, iy, j0 + d:j1 + d], a[j0:j1])
            _store_phases(acc, sw, b, relu, out[o, oy])


@njit(nogil=True, cache=True, parallel=True)
def conv_transpose2d_gemm(x, wmat, bias, kh, kw, sh, sw, ph, pw, relu, out, cols, phases):
    """Per image: one BLAS GEMM cols = wmat @ x[n] (no zero is multiplied), then col2im.

    ``wmat`` is weight (C_in, C_out, kh, kw) reshaped to (C_in, C_out*kh*kw) and transposed,
    C-contiguous.  Doing the scatter right after each image's GEMM keeps ``cols`` in cache: 2x
    faster than one batched GEMM followed by one col2im pass over all of ``cols``.  ``cols``
    (S, C_out*kh*kw, H*W) and ``phases`` (as ``conv_transpose2d``'s): a column matrix and a row
    buffer per slot.
    """
    N, C, H, W = x.shape
    O = out.shape[1]
    S = cols.shape[0]
    for t in prange(S):
        for n in range(t, N, S):
            np.dot(wmat, x[n].reshape(C, H * W), cols[t])
            _col2im_image(cols[t].reshape(O, kh, kw, H, W), bias, sh, sw, ph, pw, relu, out[n],
                          phases[t])
    return out


def n_threads():
    """Threads a parallel kernel of this backend runs on now (the most slots worth cutting a
    call into)."""
    return numba.get_num_threads()
