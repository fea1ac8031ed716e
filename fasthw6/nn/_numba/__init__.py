"""Numba batch-norm kernels (backend ``"numba"``).

Inputs were validated and made C-contiguous by ``fasthw6.nn.api``; nothing here checks bounds.

Two layouts:

- ``*_4d`` take x viewed as (N, C, L) (L = H*W) and reduce over N and L for each channel.  One
  channel's N planes (N*L values, a few hundred KiB) stay in L2 while the later passes re-read
  them, so memory sees x once and y once forward, dy and x once and dx once backward.  The
  reductions are float64 sums over a contiguous plane in explicit lanes (j mod 8), which LLVM
  vectorises without fastmath and which fix the order of every addition, so the Cython kernels
  give the same bits (``fasthw6._backend.STANDIN``).
- ``*_2d`` take x of shape (N, D) and reduce over rows, whole rows in order (the prefetcher's
  best case): eight sweeps (x twice forward; dy and x twice backward), each near one core's
  read + write rate, one float64 accumulator per feature so the inner loops vectorise across
  features without reassociation.  The forward statistics take ``rows`` rows at a time in one
  pass, each chunk's sums about one of its own rows, merged by Chan, Golub and LeVeque's
  pairwise update, the running mean kept about the slice's first row.  Why not column strips,
  packed copies or two passes: ``docs/design/batchnorm.md``.

Outputs can be written with non-temporal (streaming) stores (``stream``; the API decides when:
the 4-D backward's dx when a channel's dy, x and dx outgrow L2, and any large output; the
measurements are in ``docs/design/batchnorm.md``).

Never E[x^2] - E[x]^2.  Backward is fused: one pass accumulates sum(dy) and sum(dy * (x - mean)),
one pass writes dx.  ``prange`` runs over channels / column slices, independent work writing
disjoint slices; a column's arithmetic does not depend on how the columns are sliced.
"""
from __future__ import annotations

import numba

from ..._jit import install_cache_locator

install_cache_locator()  # before the first @njit: kernels are cached under fasthw6._jit.cache_dir()

from .batchnorm import (  # noqa: E402
    batchnorm_backward_2d, batchnorm_backward_4d, batchnorm_forward_2d, batchnorm_forward_4d)

__all__ = ["batchnorm_backward_2d", "batchnorm_backward_4d", "batchnorm_forward_2d",
           "batchnorm_forward_4d", "n_threads"]


def n_threads():
    """Threads a parallel kernel of this backend runs on now."""
    return numba.get_num_threads()
