"""score_sequences' lockstep kernels: every lane path (one kernel per N up to 8, the GEMM one
above) against the NumPy reference on batches of mixed lengths (0 and 1 included, blocks of
mates with unequal lengths), models with zeros (impossible sequences), normalisers far below
the float64 mantissa budget, and a score that never depends on which sequences share a block."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import random_hmm

import fasthw6
from fasthw6.hmm import score_sequences

COMPILED = [b for b in ("numba", "cython") if b in fasthw6.available_backends()]


def model(n, m, seed, zeros=False):
    """``random_hmm`` with its own zeros (a different pattern from ``random_hmm(zeros=True)``)."""
    sp, tm, em = random_hmm(n, m, seed)
    if zeros and n > 1:
        # only state 0 emits the last symbol, and state 0 absorbs and never emits symbol 0: a
        # sequence with the last symbol anywhere before a 0 is impossible.  Never starts in 1.
        tm[0] = 0.0
        tm[0, 0] = 1.0
        em[1:, -1] = 0.0
        em[0, 0] = 0.0
        em /= em.sum(1, keepdims=True)
        sp[1] = 0.0
        sp /= sp.sum()
    return sp, tm, em


def batch(seed, m, n_seq=150, tmax=80):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, tmax, n_seq)
    lengths[:6] = [0, 1, 1, 2, 0, 3]
    rng.shuffle(lengths)
    return rng.integers(0, m, lengths.sum()), lengths


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 24])
@pytest.mark.parametrize("zeros", [False, True])
def test_mixed_lengths_match_the_reference(backend, n, zeros):
    m = 5
    sp, tm, em = model(n, m, seed=n, zeros=zeros)
    X, lengths = batch(100 + n, m)
    ref = score_sequences(X, lengths, sp, tm, em, backend="numpy")
    ll = score_sequences(X, lengths, sp, tm, em, backend=backend)
    assert ll.dtype == np.float64 and not np.isnan(ll).any()
    np.testing.assert_array_equal(np.isneginf(ll), np.isneginf(ref))
    np.testing.assert_array_equal(ll[lengths == 0], 0.0)
    fin = np.isfinite(ref)
    np.testing.assert_allclose(ll[fin], ref[fin], rtol=1e-12)
    if zeros and n > 1:
        assert np.isneginf(ref).any() and fin.any()  # both kinds present
    l32 = score_sequences(X, lengths, sp.astype(np.float32), tm.astype(np.float32),
                          em.astype(np.float32), backend=backend)
    np.testing.assert_array_equal(np.isneginf(l32), np.isneginf(ref))
    np.testing.assert_allclose(l32[fin], ref[fin], rtol=1e-4)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("n", [2, 3, 8, 12])
def test_tiny_normalisers_and_impossible_lanes_in_one_block(backend, n):
    """Emissions of 1e-300 make single-step normalisers near the bottom of float64 (subnormal
    sums); impossible sequences sit in the same block as possible ones."""
    m = 3
    sp, tm, em = model(n, m, seed=7)
    em[:, 2] = 1e-300
    em[0, 2] = 0.0
    em /= em.sum(1, keepdims=True)
    rng = np.random.default_rng(8)
    lengths = rng.integers(1, 40, 130)
    X = rng.integers(0, m, lengths.sum())
    X[rng.random(X.shape[0]) < 0.2] = 2
    ref = score_sequences(X, lengths, sp, tm, em, backend="numpy")
    ll = score_sequences(X, lengths, sp, tm, em, backend=backend)
    assert not np.isnan(ll).any()
    np.testing.assert_array_equal(np.isneginf(ll), np.isneginf(ref))
    fin = np.isfinite(ref)
    assert (ref[fin] < -600).any()
    np.testing.assert_allclose(ll[fin], ref[fin], rtol=1e-12)


@pytest.mark.parametrize("n", [1, 3, 6, 8])
def test_small_n_score_does_not_depend_on_block_mates(n):
    """Up to SMALL_MAX_N the lanes and the one-sequence finish share every operation, so a
    sequence scores the same bits alone, in its batch, or in a shuffled batch."""
    if "numba" not in fasthw6.available_backends():
        pytest.skip("numba not available")
    m = 4
    sp, tm, em = model(n, m, seed=n, zeros=True)
    X, lengths = batch(200 + n, m, n_seq=140, tmax=60)
    ends = np.cumsum(lengths)
    seqs = [X[e - k:e] for e, k in zip(ends, lengths)]
    whole = score_sequences(X, lengths, sp, tm, em, backend="numba")
    alone = np.array([score_sequences(s, [len(s)], sp, tm, em, backend="numba")[0] for s in seqs])
    np.testing.assert_array_equal(whole, alone)
    perm = np.random.default_rng(n).permutation(len(seqs))
    shuffled = score_sequences(np.concatenate([seqs[i] for i in perm]), lengths[perm], sp, tm, em,
                               backend="numba")
    np.testing.assert_array_equal(shuffled, whole[perm])


def test_gemm_lanes_rescale_window(monkeypatch):
    """The GEMM lanes rescale float64 symbols' α every GEMM_RESCALE_STEPS steps (``_sizes``):
    a run of symbols of about 2^-300 takes a lane's sum below the smallest normal double
    between two rescalings, and that lane is zeroed there and rescored in log space, exactly;
    the other lanes, and batches of every length against the period, agree with the reference;
    both backends give the same bits."""
    from fasthw6.hmm import _sizes, api

    if not {"numba", "cython"} <= set(fasthw6.available_backends()):
        pytest.skip("needs both compiled backends")
    assert _sizes.GEMM_RESCALE_STEPS > 1  # otherwise no window to fall through
    n, m = 12, 4
    sp, tm, em = model(n, m, seed=5)
    rng = np.random.default_rng(5)
    em[:, 3] = 10.0 ** -rng.uniform(85, 95, n)
    em /= em.sum(1, keepdims=True)
    lengths = np.full(8, 60)  # one block, every step in lockstep
    X = rng.integers(0, 3, lengths.sum())
    X[5:30] = 3
    X[190:240] = 3
    ref = score_sequences(X, lengths, sp, tm, em, backend="numpy")
    rescored = []  # the sequences each compiled backend left to the log-space pass
    rescore = api._logspace.rescore
    monkeypatch.setattr(api._logspace, "rescore", lambda out, off, *a: rescored.append(
        np.flatnonzero(out == -np.inf).tolist()) or rescore(out, off, *a))
    ll = {b: score_sequences(X, lengths, sp, tm, em, backend=b) for b in ("numba", "cython")}
    monkeypatch.undo()
    assert rescored == [[0, 3], [0, 3]]  # the two runs' lanes, zeroed inside the window
    np.testing.assert_array_equal(ll["numba"], ll["cython"])
    assert (ref[[0, 3]] < -4000).all()
    np.testing.assert_allclose(ll["numba"], ref, rtol=1e-13)
    # no underflow: every lockstep length against the period (the last step always rescales)
    for T in range(57, 65):
        lens = np.full(8, T)
        X2 = rng.integers(0, m, lens.sum())
        ref = score_sequences(X2, lens, sp, tm, em, backend="numpy")
        got = {b: score_sequences(X2, lens, sp, tm, em, backend=b) for b in ("numba", "cython")}
        np.testing.assert_array_equal(got["numba"], got["cython"])
        np.testing.assert_allclose(got["numba"], ref, rtol=1e-13)
