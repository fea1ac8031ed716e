"""Viterbi kernels: the lockstep blocks (ragged lengths, partial blocks, lanes finishing alone
past the δ-history budget), ties, zero probabilities, N = 1 and the backpointer dtype boundary,
every backend against the NumPy reference (same floats, so paths and log-probs are equal, not
just close) and against hmmlearn where installed."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import ragged, random_hmm
from hypothesis import given, settings
from hypothesis import strategies as st

import fasthw6
from fasthw6.hmm import _numba as knb
from fasthw6.hmm import viterbi


def zero_model(n, m, seed):
    """Zeros in all three: only state 0 emits symbol m-1, but it cannot start and is entered
    from state 1 only, so a sequence opening with m-1 is impossible and others may be; more
    transitions and emissions forbidden at random."""
    sp, tm, em = random_hmm(n, m, seed)
    rng = np.random.default_rng(seed + 1)
    tm[rng.random((n, n)) < 0.3] = 0.0
    em[rng.random((n, m)) < 0.3] = 0.0
    tm[:, 0] = 0.0
    tm[np.arange(n), np.arange(n) % (n - 1) + 1] += 0.1  # every row keeps a way out
    em[:, 0] += 0.1
    sp[0] = 0.0
    sp[1:] += 0.1
    em[1:, m - 1] = 0.0
    em[0, m - 1] += 0.1
    tm[1, 0] = 0.2
    return sp / sp.sum(), tm / tm.sum(1, keepdims=True), em / em.sum(1, keepdims=True)


def check_against_reference(X, lengths, sp, tm, em, backends=None):
    lp0, path0 = viterbi(X, lengths, sp, tm, em, backend="numpy")
    assert not np.isnan(lp0).any()
    for b in backends or fasthw6.available_backends():
        lp, path = viterbi(X, lengths, sp, tm, em, backend=b)
        assert lp.dtype == np.float64 and path.dtype == np.int64
        np.testing.assert_array_equal(path, path0, err_msg=b)
        np.testing.assert_array_equal(lp, lp0, err_msg=b)
    return lp0, path0


def hmmlearn_decode(X, lengths, sp, tm, em):
    from fasthw6.hmm._anchors import hmmlearn_model

    h = hmmlearn_model(sp, tm, em, "log")
    cs = np.concatenate([[0], np.cumsum(lengths)])
    parts = [h.decode(np.asarray(X[a:b]).reshape(-1, 1)) for a, b in zip(cs[:-1], cs[1:]) if b > a]
    return np.array([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


@pytest.mark.parametrize("n", [1, 2, 3, 5, 16, 47, 48, 49, 64, 127, 128])
def test_lockstep_blocks_ragged_lengths(n):
    """Several blocks, the last one partial, lengths 0 and 1 among them, in shuffled order (the
    kernel sorts them), so lockstep runs over each block's shortest length and lanes finish
    alone; n = 48 is the first size with VIT_WIDE_LANES lanes (49: odd, a state left over by
    the two-at-a-time max), 128 the first one-sequence-at-a-time size."""
    assert knb.VIT_LANES_MAX_N == 48 and knb.VIT_WIDE_MAX_N == 127
    rng = np.random.default_rng(n)
    sp, tm, em = random_hmm(n, 6, seed=n)
    lengths = np.concatenate([rng.integers(0, 40, 130), [0, 1, 1, 2, 1, 0, 57]])
    rng.shuffle(lengths)
    X, lengths = ragged(rng, 6, lengths)
    check_against_reference(X, lengths, sp, tm, em)


@pytest.mark.parametrize("S", [1, 3, 9, 64, 65])
def test_lockstep_partial_blocks(S):
    """Fewer sequences than lanes, exactly one block, one more than a block."""
    rng = np.random.default_rng(S)
    sp, tm, em = random_hmm(4, 5, seed=S)
    X, lengths = ragged(rng, 5, rng.integers(1, 30, S))
    check_against_reference(X, lengths, sp, tm, em)


@pytest.mark.parametrize("n", [40, 97])
def test_lanes_finish_alone_past_the_history_budget(n):
    """The δ history holds Tb steps per block: sequences around Tb long (some longer, finishing
    alone with backpointers, some shorter) against hmmlearn; n = 97 has the wide lanes."""
    pytest.importorskip("hmmlearn")
    lanes = knb.VIT_LANES if n < knb.VIT_LANES_MAX_N else knb.VIT_WIDE_LANES
    Tb = knb.VIT_BLOCK_BYTES // (n * lanes * 8)
    assert n <= knb.VIT_WIDE_MAX_N and 50 < Tb < 2000
    rng = np.random.default_rng(3)
    sp, tm, em = random_hmm(n, 8, seed=3)
    lengths = np.concatenate([rng.integers(Tb - 40, Tb + 120, 70), [Tb, Tb + 1, 1, 3 * Tb]])
    X, lengths = ragged(rng, 8, lengths)
    lp_h, path_h = hmmlearn_decode(X, lengths, sp, tm, em)
    for b in fasthw6.available_backends():
        if b == "numpy":
            continue
        lp, path = viterbi(X, lengths, sp, tm, em, backend=b)
        np.testing.assert_array_equal(path, path_h, err_msg=b)
        np.testing.assert_allclose(lp, lp_h, rtol=1e-10, err_msg=b)


@pytest.mark.parametrize("n", [2, 3, 8, 49])
def test_ties_everywhere(n):
    """A uniform model ties every candidate at every step: the backpointer is the largest
    state, the final state the smallest; a dyadic model ties exactly some of the time."""
    rng = np.random.default_rng(n)
    X, lengths = ragged(rng, 3, np.concatenate([rng.integers(1, 25, 100), [1, 1, 2]]))
    sp, tm, em = np.full(n, 1 / n), np.full((n, n), 1 / n), np.full((n, 3), 1 / 3)
    lp, path = check_against_reference(X, lengths, sp, tm, em)
    cs = np.concatenate([[0], np.cumsum(lengths)])
    expect = np.full(X.shape[0], n - 1)
    expect[cs[1:] - 1] = 0
    np.testing.assert_array_equal(path, expect)
    w = np.array([0.5, 0.25, 0.25, 0.125, 0.125, 0.0625, 0.0625, 0.0625, 0.0625])
    w = w[:n] if n <= w.size else 0.5 ** (1 + np.arange(n) // 2)
    sp = w / w.sum()
    tm = np.array([np.roll(sp, k) for k in range(n)])
    em = np.resize([[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.25, 0.25, 0.5]], (n, 3))
    check_against_reference(X, lengths, sp, tm, em)


@pytest.mark.parametrize("n", [2, 3, 8])
def test_ties_as_hmmlearn(n):
    pytest.importorskip("hmmlearn")
    rng = np.random.default_rng(n)
    X, lengths = ragged(rng, 3, np.concatenate([rng.integers(1, 25, 100), [1, 1, 2]]))
    w = np.array([0.5, 0.25, 0.25, 0.125, 0.125, 0.0625, 0.0625, 0.0625, 0.0625][:n])
    for sp, tm, em in [(np.full(n, 1 / n), np.full((n, n), 1 / n), np.full((n, 3), 1 / 3)),
                       (w / w.sum(), np.array([np.roll(w / w.sum(), k) for k in range(n)]),
                        np.array([[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.25, 0.25, 0.5]] * 3)[:n])]:
        lp_h, path_h = hmmlearn_decode(X, lengths, sp, tm, em)
        for b in fasthw6.available_backends():
            lp, path = viterbi(X, lengths, sp, tm, em, backend=b)
            np.testing.assert_array_equal(path, path_h, err_msg=b)
            np.testing.assert_allclose(lp, lp_h, rtol=1e-10, err_msg=b)


@pytest.mark.parametrize("n", [2, 3, 7, 20])
def test_zero_probabilities_minus_inf_never_nan(n):
    rng = np.random.default_rng(n)
    sp, tm, em = zero_model(n, 4, seed=n)
    X, lengths = ragged(rng, 4, np.concatenate([rng.integers(1, 30, 140), [1, 1]]))
    lp, path = check_against_reference(X, lengths, sp, tm, em)
    assert np.isneginf(lp).any() and np.isfinite(lp).any()  # both kinds are exercised


def test_impossible_everywhere():
    """Every δ is -inf from the first step on: -inf + -inf stays -inf, never NaN."""
    sp, tm = np.array([0.0, 1.0, 0.0]), np.full((3, 3), 1 / 3)
    em = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    X, lengths = np.ones(200, int), [1, 2, 50, 147]
    lp, path = check_against_reference(X, lengths, sp, tm, em)
    np.testing.assert_array_equal(lp, -np.inf)


def test_single_state():
    rng = np.random.default_rng(0)
    em = rng.dirichlet(np.ones(5))[None]
    X, lengths = ragged(rng, 5, rng.integers(0, 20, 80))
    lp, path = check_against_reference(X, lengths, [1.0], [[1.0]], em)
    np.testing.assert_array_equal(path, 0)
    cs = np.concatenate([[0], np.cumsum(lengths)])
    np.testing.assert_allclose(lp, [np.log(em[0, X[a:b]]).sum() for a, b in zip(cs[:-1], cs[1:])],
                               rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("n", [127, 128])
def test_backpointer_dtype_boundary(n):
    """int8 backpointers up to 127 states, int16 from 128 on: the last state must survive."""
    rng = np.random.default_rng(n)
    sp, tm, em = random_hmm(n, 3, seed=n)
    tm[:, -1] += 5.0  # make the largest state the usual argmax
    tm /= tm.sum(1, keepdims=True)
    X, lengths = ragged(rng, 3, [1, 4, 6, 2])
    lp, path = check_against_reference(X, lengths, sp, tm, em)
    assert (path == n - 1).any()


@pytest.mark.parametrize("n", [128, 130])
def test_one_at_a_time_zeros_and_ties(n):
    """Above VIT_WIDE_MAX_N each sequence runs alone (``_viterbi_step_one``; in Cython the
    running argmax is a double updated arithmetically, so the loop vectorises): forbidden
    transitions and emissions (-inf columns point to the last state), exact ties between
    predecessors (the largest maximising state wins), every backend equal to the reference."""
    rng = np.random.default_rng(n)
    sp, tm, em = zero_model(n, 4, n)
    tm[:, 5] = 0.0  # a state no one can enter: its column of log A is all -inf
    tm[:, 7] = tm[:, 9] = tm[:, 11] = 0.25  # entering 7, 9, 11: equal terms from many states
    tm /= tm.sum(1, keepdims=True)
    X, lengths = ragged(rng, 4, [0, 1, 3, 17, 40, 9])
    check_against_reference(X, lengths, sp, tm, em)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 6), seed=st.integers(0, 2**32 - 1),
       lengths=st.lists(st.integers(0, 12), min_size=1, max_size=90))
def test_random_batches_property(n, seed, lengths):
    rng = np.random.default_rng(seed)
    sp, tm, em = zero_model(n, 3, seed) if seed % 2 and n > 1 else random_hmm(n, 3, seed)
    X, lengths = ragged(rng, 3, lengths)
    check_against_reference(X, lengths, sp, tm, em)
