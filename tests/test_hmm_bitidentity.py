"""The numba and Cython HMM kernels give the same bits for the same input.

The ``auto`` backend may run the precompiled Cython kernel while the numba one is compiling and
numba afterwards, so the two must agree bit for bit, not within a tolerance: every entry point
(``score_sequences``, ``posteriors``, ``em_statistics``, ``viterbi``, ``CategoricalHMM.fit``),
float32 and float64, at state counts on both sides of every size switch of the kernels
(compiled small-N sweeps up to 4 / 8, the E-step's BLAS GEMMs from 12, Viterbi's lanes below 48).

One batch per case holds every path: empty and length-1 sequences, a full 64-lane block of
nearly equal lengths plus a remainder, ragged blocks whose longer lanes finish alone, long
sequences that make blocks of one, and impossible sequences (a symbol no state emits) at the
first step, mid-block, in a tail and in a block of one.  The thread count, which sets the
pieces a batch is cut into, is pinned to the same value for both (1 and 3): the E-step sums are
merged per piece, so different counts round differently (see ``fasthw6.hmm.api._pieces``).

Each float dtype is paired with one of the kernels' two symbol dtypes (float32 with int64,
float64 with uint8; Viterbi, always float64, runs with both) so that only the kernel signatures
the rest of the suite compiles anyway are compiled here.
"""
from __future__ import annotations

import numpy as np
import pytest
from conftest import random_hmm

import fasthw6
from fasthw6.hmm import CategoricalHMM, api

pytestmark = pytest.mark.skipif(
    not {"numba", "cython"} <= set(fasthw6.available_backends()),
    reason="needs both compiled backends (FASTHW6_REQUIRE_BACKENDS makes a missing one fail)")

M = 5  # symbols; the last one is emitted by no state: a sequence holding it is impossible
NS = (1, 2, 3, 4, 5, 8, 9, 12, 16, 47, 48, 64)
SYMBOLS = {np.float32: np.int64, np.float64: np.uint8}
CHUNKS = (1, 3)


def batch(seed, sym_dtype):
    """(X, lengths, impossible): a shuffled ragged batch of 155 sequences covering every
    lockstep path, and the indexes of the sequences made impossible."""
    rng = np.random.default_rng(seed)
    lengths = np.concatenate([
        [0, 0], [1] * 5,                 # empty, length 1
        rng.integers(20, 23, 70),        # a full 64-lane block (T0 = 20, limit 24), remainder
        rng.integers(2, 61, 75),         # ragged blocks: lanes longer than T0 run tails alone
        [150, 260, 400],                 # blocks of one; 400 > Viterbi's δ history at N = 47
    ])
    rng.shuffle(lengths)
    off = np.concatenate([[0], np.cumsum(lengths)])
    X = rng.integers(0, M - 1, int(off[-1]))
    impossible = []

    def kill(pick, step):
        s = int(np.flatnonzero(pick)[0])
        X[off[s] + step(lengths[s])] = M - 1
        impossible.append(s)

    kill(lengths == 1, lambda n: 0)
    kill(lengths == 20, lambda n: n // 2)           # inside the lockstep part of a block
    kill(lengths == 22, lambda n: n - 1)            # the last step, in a tail
    kill((lengths > 2) & (lengths < 19), lambda n: 0)
    kill(lengths == 260, lambda n: n // 2)          # a block of one
    return X.astype(sym_dtype), lengths, sorted(impossible)


def model(n, seed):
    sp, tm, em = random_hmm(n, M, seed, zeros=True)
    em[:, -1] = 0.0
    em /= em.sum(axis=1, keepdims=True)
    return sp, tm, em


def assert_same_bits(a, b, what):
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape, what
    if not np.array_equal(a, b):
        d = np.abs(a.astype(np.float64) - b.astype(np.float64))
        i = np.unravel_index(int(np.nanargmax(d)), d.shape)
        raise AssertionError(f"{what}: numba and cython differ in {np.count_nonzero(a != b)} of "
                             f"{a.size} entries, most at {i}: {a[i]!r} vs {b[i]!r}")


@pytest.fixture
def chunks(monkeypatch):
    """Pins the thread count the API sizes its chunks by (both backends alike) to ``n``."""

    def pin(n):
        monkeypatch.setattr(api, "_n_threads", lambda backend: n)

    return pin


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("n", NS)
def test_batch_functions_agree_bit_for_bit(n, dtype, chunks):
    sym = SYMBOLS[dtype]
    X, lengths, impossible = batch(100 + n, sym)
    sp, tm, em = model(n, n)
    for c in CHUNKS:
        chunks(c)
        got = {}
        for b in ("numba", "cython"):
            ll, gamma = api.posteriors(X, lengths, sp, tm, em, dtype=dtype, backend=b)
            st = api.em_statistics(X, lengths, sp, tm, em, dtype=dtype, backend=b)
            got[b] = dict(score=api.score_sequences(X, lengths, sp, tm, em, dtype=dtype,
                                                    backend=b),
                          post_loglik=ll, gamma=gamma,
                          **{f"estep_{k}": v for k, v in st.items()})
            got[b]["viterbi_logprob"], got[b]["viterbi_states"] = api.viterbi(
                X, lengths, sp, tm, em, backend=b)
        for k in got["numba"]:
            assert_same_bits(got["numba"][k], got["cython"][k], f"{k} (N={n}, {c} chunks)")
    # the batch is what it claims: impossible sequences score -inf, the others do not
    score = got["numba"]["score"]
    assert np.isneginf(score[impossible]).all()
    assert np.isfinite(np.delete(score, impossible)).all()
    assert got["numba"]["gamma"].dtype == dtype


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("n", NS)
def test_small_blocks_estep_agrees_bit_for_bit(n, dtype):
    """Batches that are one small block each: from ESTEP_GEMM_MIN_N states on, few lanes make
    long Σξ GEMMs (K·L columns up to ~120) whose last group is short; the backends must make
    the same BLAS call for it (a zero-padded product rounded differently at odd N).  In a big
    batch one block's 1-ulp difference is easily absorbed by the sum over blocks."""
    rng = np.random.default_rng(n)
    sp, tm, em = model(n, n)
    for lengths in ([7, 7], [7, 8], [7, 8, 8], [12, 13, 13, 14], [30, 31]):
        for _ in range(3):
            X = rng.integers(0, M - 1, sum(lengths)).astype(SYMBOLS[dtype])
            st = [api.em_statistics(X, lengths, sp, tm, em, dtype=dtype, backend=b)
                  for b in ("numba", "cython")]
            for k in st[0]:
                assert_same_bits(st[0][k], st[1][k], f"estep_{k} (N={n}, lengths {lengths})")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("n", NS)
def test_fit_agrees_bit_for_bit(n, dtype, chunks):
    """A few EM iterations: every parameter and every logged log-likelihood the same on both
    backends (a differing bit would grow with each iteration).  The start is set, not drawn:
    hmmlearn's Dirichlet(1/N) draws hold probabilities that float32 rounds to 0, which the API
    refuses from about N = 12 on."""
    X, lengths, impossible = batch(200 + n, SYMBOLS[dtype])
    keep = np.ones(len(lengths), bool)
    keep[impossible] = False  # fit on possible sequences: their symbols are < M - 1
    off = np.concatenate([[0], np.cumsum(lengths)])
    X = np.concatenate([X[off[s]:off[s + 1]] for s in np.flatnonzero(keep)])
    lengths = lengths[keep]
    chunks(3)
    fitted = {}
    for b in ("numba", "cython"):
        m = CategoricalHMM(n, n_features=M, n_iter=4, tol=-np.inf, init_params="", dtype=dtype)
        m.startprob_, m.transmat_, m.emissionprob_ = random_hmm(n, M, seed=n, zeros=True)
        m.backend = b
        fitted[b] = m.fit(X, lengths)
    a, c = fitted["numba"], fitted["cython"]
    for name in ("startprob_", "transmat_", "emissionprob_"):
        assert_same_bits(getattr(a, name), getattr(c, name), f"{name} (N={n})")
    assert_same_bits(list(a.monitor_.history), list(c.monitor_.history), f"history (N={n})")
    assert a.monitor_.iter == 4


def test_backends_share_their_size_switches():
    """Every size switch the Cython module copies from the numba one has the same value (a
    different lane count or GEMM threshold would cut the work, and round, differently)."""
    from fasthw6.hmm import _cython, _numba

    assert _cython.SHARED_CONSTANTS, "no constants exported"
    for name, value in _cython.SHARED_CONSTANTS.items():
        assert getattr(_numba, name) == value, name
    from fasthw6.hmm import _sizes

    assert set(_cython.SHARED_CONSTANTS) == set(_sizes.SHARED)
    # the API cuts a batch's scoring order into pieces at multiples of the kernels' lanes
    assert _numba.LANES == _numba.GEMM_LANES == api.SCORE_LANES
    assert api.SCORE_LANES % _numba.FRAMES_GEMM_LANES == 0  # pieces cut whole frame blocks
