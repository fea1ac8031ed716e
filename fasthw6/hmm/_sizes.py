"""The HMM kernels' size switches, in one place for both backends.

The numba kernels import them (``_numba/_common.py``); ``setup.py`` writes them into
``_cy_sizes.pxi`` (``cdef enum``) for the Cython build, and ``_cython.SHARED_CONSTANTS``
exports the compiled values, which a test compares with these.  The two backends give the same
bits only if they cut the work the same way.  Plain Python, so that ``setup.py`` can read it
without importing the package.
"""
LANES = 64  # sequences advanced in lockstep by the scoring kernel (lanes innermost)
GEMM_LANES = 64  # lanes when the scoring step is a BLAS GEMM (the API cuts at multiples of both)
# ... when it scores frames (a table of log-likelihoods, or diagonal Gaussians computed in the
# kernel): each lane reads its own rows of an (n, N) table or (n, D) data in memory, and 64
# such streams outrun the hardware prefetchers.  numba, one thread, 2000 x 500 frames, 64 ->
# 32 lanes: table N=16 160 -> 91 ms, N=64 553 -> 360 (16 lanes: 83, 354); diag N=16 D=4 85 ->
# 80, D=16 158 -> 134, N=64 D=4 393 -> 380 (16 lanes: 84, 143, 394).  The categorical path
# keeps 64 (its table is in cache; N=64 142 ms at 64 lanes, 159 at 32).  Divides GEMM_LANES.
FRAMES_GEMM_LANES = 32
SMALL_MAX_N = 8  # up to this many states scoring is compiled for each N; above, a GEMM
# The scoring GEMM lanes rescale a lane's α by a power of two only every this many steps (and
# at the last), for symbols in float64: the same bits as every step, since a power of two
# scales every product and sum exactly, while α's sum stays far from the subnormal range; a
# lane whose sum does fall below the smallest normal double is zeroed at the rescaling, so its
# score comes out -inf and is redone in log space.  numba, one thread, 2000 x 500 symbols
# (AMD EPYC family 25 model 17), every step -> every 4: N=16 19.9-21.1 -> 17.5-18.0 ms,
# N=64 172-176 -> 166-168.  Float32 (a range of 2^-126) and frames (one step may take a lane
# down by e^-700) rescale every step.
GEMM_RESCALE_STEPS = 4
DIAG_SMALL_MAX_N = 4  # ... and diagonal-Gaussian scoring (the fused kernel), above a GEMM
ESTEP_LANES = 64  # most sequences one E-step block advances in lockstep
# Full blocks of 2 to this many states run sweeps compiled for their N (numba's
# ``_make_estep_small``): 1.9x at N=3 (E-step 14.1 -> 7.4 ms).  Every N compiled is JIT time
# again at every kernel signature reaching it (symbol dtype x float dtype x entry point): N =
# 1..8 made the first E-step call 36 s and each later signature 23 s, against 21 s and 16 s
# with one N.  (numba only: the Cython build has no such sweeps.)
ESTEP_SMALL_MAX_N = 4
# The E-step and posteriors over a table of frames (``frames``) put at most this many
# sequences in a lockstep block above ESTEP_SMALL_MAX_N states: each lane reads its rows of a
# table in memory (n x N, not the categorical path's small one in cache) and adds into its
# rows of γ, and 64 such streams outrun the hardware prefetchers.  numba, one thread, 2000 x
# 500 frames, E-step 64 -> 16 lanes: N=5 67 -> 56 ms, N=8 128 -> 99, N=16 207 -> 148, N=32
# 425 -> 398, N=64 1.59 -> 1.04-1.13 s (Cython N=8 140 -> 112, N=16 216 -> 152).  At N <= 4
# numba's compiled sweeps need full 64-lane blocks and match 32 generic lanes (34.7 / 32.6 ms).
ESTEP_FRAMES_LANES = 16
# Steps ahead that the lockstep E-step fetches each lane's emission row (forward and backward)
# and, going back, its γ row, when the emission table holds more than ESTEP_FAR_TABLE_BYTES: a
# framewise table has one row per frame, each lane reads its own stream of rows, and 16 to 64
# streams outrun the hardware prefetchers (a symbol table stays in cache: no hints).  One
# thread, 10^6 frames in one table (AMD EPYC family 25 model 17), E-step, no hint -> 1, 2, 4, 8
# steps ahead: numba N=16 (16 lanes) 141 -> 114, 112, 119, 120 ms; at 2, N=3 (64 lanes) 22.9 ->
# 19.0, Cython N=16 120-138 -> 110-115, N=3 29-31 -> 27-30.  No effect on any value.
ESTEP_PREFETCH_STEPS = 2
ESTEP_FAR_TABLE_BYTES = 1 << 20
ESTEP_GEMM_MIN_N = 12  # from this many states on, an E-step block's steps are BLAS GEMMs
ESTEP_XI_COLS = 256  # most (step, lane) columns gathered per Σξ GEMM
ESTEP_XS_STEPS = 16  # steps per tile when the symbols are transposed to (step, lane) (2.6x)
# OpenBLAS threads a GEMM of more multiply-adds than this (4 x 65536): more threads than the
# caller asked for, fighting over the cores of a parallel E-step.  Every GEMM here stays below.
ESTEP_GEMM_MAX_MADDS = 1 << 18
VIT_LANES = 64  # sequences advanced in lockstep by the Viterbi kernel (lanes innermost)
VIT_LANES_MAX_N = 48  # from this many states on, Viterbi advances VIT_WIDE_LANES sequences
# fewer lanes at large N keep a 500-step δ history within VIT_BLOCK_BYTES (N=64: 512 steps);
# N=64 2000x500 one thread: 32 lanes 391 ms, 64 lanes 597 ms (tails), one at a time 700 ms
VIT_WIDE_LANES = 32
VIT_WIDE_MAX_N = 127  # the lockstep path's backtrack stores states as int8; above, one at a time
VIT_BLOCK_BYTES = 1 << 23  # cap on one thread's lockstep δ history (T, N, lanes) float64

SHARED = ("LANES", "GEMM_LANES", "FRAMES_GEMM_LANES", "SMALL_MAX_N", "DIAG_SMALL_MAX_N",
          "GEMM_RESCALE_STEPS",
          "ESTEP_LANES", "ESTEP_PREFETCH_STEPS", "ESTEP_FAR_TABLE_BYTES", "ESTEP_GEMM_MIN_N",
          "ESTEP_XI_COLS", "ESTEP_XS_STEPS", "ESTEP_GEMM_MAX_MADDS",
          "VIT_LANES", "VIT_LANES_MAX_N", "VIT_WIDE_LANES", "VIT_WIDE_MAX_N", "VIT_BLOCK_BYTES")
