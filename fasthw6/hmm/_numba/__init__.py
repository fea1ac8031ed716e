"""Numba HMM kernels (backend ``"numba"``), one module per job: ``score`` (log-likelihoods),
``estep`` and ``estep_small`` (posteriors, E-step sums), ``viterbi``, ``sample``,
``emissions`` (the framewise engine's fused emission kernels), ``multi`` (scores under many
models at once); ``_common``
holds the constants and helpers they share.  This package exports the entry points.

Everything reaching these functions was validated by ``fasthw6.hmm._checks``: symbols lie in
``[0, M)``, ``offsets`` is non-decreasing from 0 to ``len(X)``, probabilities are finite and
non-negative.  Nothing here checks bounds -- with one exception, made for speed and kept narrow:
the scoring kernel ``forward_loglik`` receives symbols whose range the API has *not* checked,
checks each block's symbols itself before it reads an emission with them, and reports the
position of a bad one, which the API turns into its usual ``ValueError``.  A separate range
pass cost 0.36 ms of 2.9 per 10^6 int64 symbols, the fused check 0.16.

Conventions shared with ``_cython.pyx`` and ``reference.py`` (same names, same signatures):

- ``X`` holds the symbols of every sequence end to end (uint8 or int64: ``_checks._CANON``),
  sequence ``s`` is ``X[offsets[s]:offsets[s+1]]`` (``offsets`` need not start at 0: a batch
  runs as pieces, ``fasthw6._parallel``, each a slice of ``offsets`` over the whole ``X``);
- ``emit_t`` is the emission matrix transposed, ``(M, N)``: the column of symbol ``x`` is the
  contiguous row ``emit_t[x]``;
- the forward pass of the posterior and E-step kernels normalises α every step (α̂ sums to 1).
  The log-likelihood is the sum of the logs of the normalisers, but taking a log per step costs
  more than the whole step at small N, so the normalisers are multiplied into a float64 mantissa
  ``p`` kept in [2^-512, 1] by exact power-of-two rescaling (``_ll_push``); one log per sequence
  remains.  A normaliser below 2^-400 (not representable in that budget) is logged directly; a
  zero one means the sequence is impossible: its log-likelihood is -inf and it contributes
  nothing to the E-step statistics.
- the scoring kernel (``forward_loglik``) does not divide at all: each step scales α by the
  exact power of two that brings its sum into [1, 2), read from the sum's exponent bits
  (``_pow2_scale``), and counts the factors; log P = log(Σ α_T) + k ln 2.  That keeps the range
  normalising keeps, with no division and no log per step; an impossible sequence's α stays 0
  and its log gives -inf.
- backward messages are normalised to sum 1 each step (they never overflow) and γ, ξ are
  normalised by ``Z_t = α̂_t · (A u)``, so their scale cancels exactly.
- Σ_t ξ_t(i, j) = A_ij Σ_t α̂_t(i) u_{t+1}(j) / Z_t: the kernels accumulate the outer products
  only and the caller multiplies by A once.  No T×N×N array ever exists.
"""
from __future__ import annotations

import numba

from ..._jit import install_cache_locator

install_cache_locator()  # before the first @njit: kernels are cached under fasthw6._jit.cache_dir()

from ._common import (  # noqa: E402  (constants: tests compare them with _cython's)
    DIAG_SMALL_MAX_N, ESTEP_FAR_TABLE_BYTES, ESTEP_GEMM_MAX_MADDS, ESTEP_GEMM_MIN_N, ESTEP_LANES,
    ESTEP_PREFETCH_STEPS, ESTEP_SMALL_MAX_N, ESTEP_XI_COLS, ESTEP_XS_STEPS, FRAMES_GEMM_LANES,
    GEMM_LANES, GEMM_RESCALE_STEPS, LANES, SMALL_MAX_N, TILE, TILE_BYTES, VIT_BLOCK_BYTES,
    VIT_LANES, VIT_LANES_MAX_N, VIT_WIDE_LANES, VIT_WIDE_MAX_N, symbol_range)
from .emissions import (  # noqa: E402
    count_terms, diag_frames, diag_moments, frame_pairs, full_frames, full_moments, mixture_frames)
from .estep import lockstep_plan, lockstep_run  # noqa: E402
from .multi import forward_loglik_models  # noqa: E402
from .sample import sample_chain  # noqa: E402
from .score import (  # noqa: E402
    forward_loglik, forward_loglik_diag, forward_loglik_diag_lanes, forward_loglik_frames)
from .viterbi import viterbi, viterbi_diag  # noqa: E402

__all__ = ["DIAG_SMALL_MAX_N", "ESTEP_FAR_TABLE_BYTES", "ESTEP_GEMM_MAX_MADDS", "ESTEP_GEMM_MIN_N",
           "ESTEP_LANES", "ESTEP_PREFETCH_STEPS", "ESTEP_SMALL_MAX_N", "ESTEP_XI_COLS",
           "ESTEP_XS_STEPS", "FRAMES_GEMM_LANES", "GEMM_LANES", "GEMM_RESCALE_STEPS", "LANES",
           "SMALL_MAX_N", "TILE", "TILE_BYTES", "VIT_BLOCK_BYTES", "VIT_LANES", "VIT_LANES_MAX_N",
           "VIT_WIDE_LANES", "VIT_WIDE_MAX_N", "count_terms", "diag_frames", "diag_moments",
           "forward_loglik", "forward_loglik_diag", "forward_loglik_diag_lanes",
           "forward_loglik_frames", "forward_loglik_models", "frame_pairs", "full_frames",
           "full_moments", "lockstep_plan", "mixture_frames", "lockstep_run", "n_threads",
           "sample_chain", "symbol_range", "viterbi", "viterbi_diag"]


def n_threads():
    """Threads a batch's pieces run on now (``fasthw6._parallel``): numba's thread count, so
    ``numba.set_num_threads`` and ``fasthw6.single_threaded`` set it."""
    return numba.get_num_threads()
