# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Cython HMM kernels (backend ``"cython"``): the algorithms of the ``_numba`` package, same
names and signatures (see its docstring for the conventions: concatenated symbols + offsets,
transposed emissions, α̂ normalised every step with the log-likelihood kept as a float64
mantissa and a count of 2^512 factors, backward messages normalised to sum 1, Σξ accumulated as
outer products and multiplied by A once).  One extension, its source split by job into the
``_cy_*.pxi`` files included below (matching the ``_numba`` modules).  Loops run without the
GIL; each call is one piece of a batch, and the pieces run on Python threads
(``fasthw6._parallel``).  Nothing is checked here (``fasthw6.hmm._checks`` validated it all)
except the symbols' range in ``forward_loglik``, which checks each block before scoring it.
"""
import numpy as np

cimport cython
from libc.math cimport INFINITY, NAN, floor, ldexp, log
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcpy
from scipy.linalg.cython_blas cimport dgemm, sgemm

cimport openmp

ctypedef fused sym_t:  # the two symbol types of fasthw6.hmm._checks._CANON
    uint8_t
    int64_t

ctypedef fused real:
    float
    double

ctypedef fused bp_t:
    int8_t
    int16_t
    int32_t

cdef double TWO_M512 = 2.0 ** -512
cdef double TWO_P512 = 2.0 ** 512
cdef double SMALL = 2.0 ** -400
cdef double LN2_512 = 512.0 * 0.6931471805599453
cdef double LN2 = 0.6931471805599453
include "_cy_sizes.pxi"  # the size switches, written by setup.py from _sizes.py


def n_threads():
    """Threads a parallel kernel of this backend runs on now."""
    return openmp.omp_get_max_threads()


include "_cy_common.pxi"
include "_cy_score.pxi"
include "_cy_multi.pxi"
include "_cy_estep.pxi"
include "_cy_viterbi.pxi"
include "_cy_emissions.pxi"


# The size switches as compiled (from _sizes.py, through _cy_sizes.pxi): the two backends give
# the same bits only if they cut work the same way, so tests/test_hmm_bitidentity.py checks these
# against the numba package's.
SHARED_CONSTANTS = dict(
    LANES=LANES, GEMM_LANES=GEMM_LANES, FRAMES_GEMM_LANES=FRAMES_GEMM_LANES,
    SMALL_MAX_N=SMALL_MAX_N, DIAG_SMALL_MAX_N=DIAG_SMALL_MAX_N,
    GEMM_RESCALE_STEPS=GEMM_RESCALE_STEPS,
    ESTEP_LANES=ESTEP_LANES, ESTEP_PREFETCH_STEPS=ESTEP_PREFETCH_STEPS,
    ESTEP_FAR_TABLE_BYTES=ESTEP_FAR_TABLE_BYTES, ESTEP_GEMM_MIN_N=ESTEP_GEMM_MIN_N,
    ESTEP_XI_COLS=ESTEP_XI_COLS,
    ESTEP_XS_STEPS=ESTEP_XS_STEPS, ESTEP_GEMM_MAX_MADDS=ESTEP_GEMM_MAX_MADDS,
    VIT_LANES=VIT_LANES, VIT_LANES_MAX_N=VIT_LANES_MAX_N, VIT_WIDE_LANES=VIT_WIDE_LANES,
    VIT_WIDE_MAX_N=VIT_WIDE_MAX_N, VIT_BLOCK_BYTES=VIT_BLOCK_BYTES,
)
