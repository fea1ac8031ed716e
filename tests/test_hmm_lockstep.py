"""The compiled E-step and posteriors (numba, and the Cython mirror) advance blocks of sequences in lockstep: sequences sorted by
length, the shortest length of a block run together, longer lanes finishing alone, BLAS GEMM
steps from ESTEP_GEMM_MIN_N states.  Every path against the NumPy reference."""
from __future__ import annotations

import numpy as np
import pytest
from conftest import random_hmm

import fasthw6
from fasthw6.hmm import api, em_statistics, posteriors

nb = pytest.importorskip("fasthw6.hmm._numba")

pytestmark = pytest.mark.skipif("numba" not in fasthw6.available_backends(),
                                reason="numba backend not available")

GEMM_N = nb.ESTEP_GEMM_MIN_N  # the Cython mirror uses the same constants


@pytest.fixture(params=["numba", "cython"])
def be(request):
    """A compiled backend and its kernel module; skipped where it is not built."""
    if request.param not in fasthw6.available_backends():
        pytest.skip(f"backend {request.param} not available")
    if request.param == "numba":
        return "numba", nb
    import fasthw6.hmm._cython as cy
    return "cython", cy


def check_against_reference(X, lengths, sp, tm, em, dtype=np.float64, backend="numba"):
    ref = em_statistics(X, lengths, sp, tm, em, backend="numpy")
    got = em_statistics(X, lengths, sp, tm, em, dtype=dtype, backend=backend)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(got["loglik"], ref["loglik"], rtol=tol["rtol"])
    for k in ("start", "trans", "obs"):
        assert got[k].dtype == np.float64 and not np.isnan(got[k]).any()
        np.testing.assert_allclose(got[k], ref[k], **tol, err_msg=k)
    ll_ref, g_ref = posteriors(X, lengths, sp, tm, em, backend="numpy")
    ll, g = posteriors(X, lengths, sp, tm, em, dtype=dtype, backend=backend)
    assert g.dtype == dtype and not np.isnan(g).any()
    np.testing.assert_allclose(ll, ll_ref, rtol=tol["rtol"])
    np.testing.assert_allclose(g, g_ref, **tol)
    return ref


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", [1, 2, 3, 5, GEMM_N, 16])
def test_ragged_blocks_with_tails(n, dtype, be):
    """Many lengths, so blocks hold lanes longer than their shortest (tails run alone), lengths
    1 and 0, a block cut short by a much longer sequence, and GEMM flushes of a partial tile."""
    rng = np.random.default_rng(n)
    sp, tm, em = random_hmm(n, 5, seed=n, zeros=True)
    lengths = np.concatenate([rng.integers(0, 50, 150), [1] * 9, [2, 3], [37] * 70, [41],
                              [300, 301, 350]])
    rng.shuffle(lengths)
    X = rng.integers(0, 5, lengths.sum())
    check_against_reference(X, lengths, sp, tm, em, dtype, be[0])


@pytest.mark.parametrize("n", [1, 3, GEMM_N])
def test_all_length_one(n, be):
    sp, tm, em = random_hmm(n, 4, seed=2)
    X = np.random.default_rng(0).integers(0, 4, 100)
    ref = check_against_reference(X, np.ones(100, int), sp, tm, em, backend=be[0])
    np.testing.assert_allclose(ref["trans"], 0.0)


@pytest.mark.parametrize("n", [3, GEMM_N])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_impossible_sequences_inside_a_block(n, dtype, be):
    """No state emits symbol 0, so a 0 makes a sequence impossible: at chosen steps, in the
    lockstep part (first, middle, last step) and in tails, next to possible sequences of the
    same block."""
    rng = np.random.default_rng(n)
    sp, tm, em = random_hmm(n, 3, seed=n)
    sp = np.zeros(n)
    sp[0] = 1.0
    em[0] = [0.0, 0.5, 0.5]
    em[1:, 0] = 0.0
    em[1:] /= em[1:].sum(axis=1, keepdims=True)
    lengths = np.full(70, 40)  # one full block of ESTEP_LANES lanes, then a short one
    lengths[-5:] = [44, 44, 45, 45, 45]  # tails
    X = rng.integers(1, 3, lengths.sum())
    off = np.concatenate([[0], np.cumsum(lengths)])
    dead = {3: 0, 10: 17, 20: 39, 67: 40, 69: 44}  # sequence -> step of its 0
    for s, t in dead.items():
        X[off[s] + t] = 0
    ref = check_against_reference(X, lengths, sp, tm, em, dtype, be[0])
    assert np.isneginf(ref["loglik"][list(dead)]).all()
    assert np.isfinite(np.delete(ref["loglik"], list(dead))).all()
    _, g = posteriors(X, lengths, sp, tm, em, dtype=dtype, backend=be[0])
    for s in dead:
        np.testing.assert_array_equal(g[off[s]:off[s + 1]], 0.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n", range(1, nb.ESTEP_SMALL_MAX_N + 2))
def test_full_blocks_compiled_per_n(n, dtype, be):
    """Full blocks of ESTEP_LANES lanes take the sweeps compiled for each N from 2 to
    ESTEP_SMALL_MAX_N;
    zeros in the model, an emission so unlikely (1e-30) that a step's α sum falls below the
    one-rescaling range (the exact normalisation path), impossible lanes, longer tails, and
    a second, partial block on the generic steps."""
    rng = np.random.default_rng(100 + n)
    sp, tm, em = random_hmm(n, 4, seed=n, zeros=True)
    em[:, 3] = 1e-30
    em /= em.sum(axis=1, keepdims=True)
    S = 2 * nb.ESTEP_LANES + 9
    lengths = np.full(S, 30)
    lengths[nb.ESTEP_LANES - 3:nb.ESTEP_LANES] = [33, 34, 34]
    X = rng.integers(0, 3, lengths.sum())
    off = np.concatenate([[0], np.cumsum(lengths)])
    X[off[5] + 10] = 3
    X[off[6] + 0] = 3
    X[off[7] + 29] = 3
    if n > 1:  # impossible: the last state never emits 0, state 0 never leaves itself
        sp[:] = 0.0
        sp[-1] = 1.0
        X[off[9]] = 0
    check_against_reference(X, lengths, sp, tm, em, dtype, be[0])


def test_every_sequence_impossible(be):
    sp, tm, em = np.array([1.0, 0.0]), np.eye(2), np.eye(2)
    X = np.ones(50, int)
    st = em_statistics(X, [10] * 5, sp, tm, em, backend=be[0])
    assert np.isneginf(st["loglik"]).all()
    for k in ("start", "trans", "obs"):
        np.testing.assert_array_equal(st[k], 0.0)


@pytest.mark.parametrize("n", [2, GEMM_N])
def test_long_sequence_runs_alone(n, be, monkeypatch):
    """A sequence too long for the block budget is a block of its own (forward and backward one
    sequence at a time), beside short ones in lockstep.  (With a budget of 2**14 α̂ values: the
    real one, 2**20, would need a sequence of 2**19 steps, which the NumPy reference takes
    minutes to check.)"""
    budget = 1 << 14
    monkeypatch.setattr(api, "ESTEP_BLOCK_ELEMS", budget)
    sp, tm, em = random_hmm(n, 4, seed=5)
    T = budget // n + 7
    rng = np.random.default_rng(1)
    lengths = np.array([20] * 10 + [T])
    X = rng.integers(0, 4, lengths.sum())
    _, bstart, _, sizes = be[1].lockstep_plan(np.concatenate([[0], np.cumsum(lengths)]), n, 1,
                                               budget, nb.ESTEP_LANES)
    assert np.diff(bstart).tolist()[-1] == 1 and sizes[0, 2] >= T
    check_against_reference(X, lengths, sp, tm, em, backend=be[0])


@pytest.mark.parametrize("n", [3, GEMM_N])
def test_chunks_sum_to_the_one_chunk_result(n, be, monkeypatch):
    """Per-chunk accumulators (one chunk per thread, run as pieces on that many threads) merged
    serially equal one chunk's sums."""
    sp, tm, em = random_hmm(n, 6, seed=8)
    rng = np.random.default_rng(3)
    lengths = rng.integers(0, 80, 400)
    X = rng.integers(0, 6, lengths.sum())
    res = []
    for threads in (1, 3, 7):
        monkeypatch.setattr(api, "_n_threads", lambda backend, t=threads: t)
        res.append(api.em_statistics(X, lengths, sp, tm, em, backend=be[0]))
    for r in res[1:]:
        for k in ("start", "trans", "obs", "loglik"):
            np.testing.assert_allclose(r[k], res[0][k], rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(r["loglik"], res[0]["loglik"])  # blocks: one plan


@pytest.mark.parametrize("n", [1, 4, 64])
def test_plan_covers_every_nonempty_sequence_once(n, be):
    rng = np.random.default_rng(n)
    lengths = np.concatenate([rng.integers(0, 300, 500), [0, 0, 5000, 1, 1]])
    off = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    for chunks, most in ((1, nb.ESTEP_LANES), (2, nb.ESTEP_LANES), (5, nb.ESTEP_LANES),
                         (2, 16), (1, 5)):
        order, bstart, cbound, sizes = be[1].lockstep_plan(off, n, chunks,
                                                              api.ESTEP_BLOCK_ELEMS, most)
        assert sorted(order.tolist()) == np.flatnonzero(lengths).tolist()
        assert bstart[0] == 0 and bstart[-1] == len(order) and (np.diff(bstart) > 0).all()
        assert cbound[0] == 0 and cbound[-1] == len(bstart) - 1 and (np.diff(cbound) >= 0).all()
        assert len(cbound) - 1 <= chunks
        if most < nb.ESTEP_LANES:
            assert np.diff(bstart).max() == most  # the cap binds
        for k in range(len(bstart) - 1):
            lens = lengths[order[bstart[k]:bstart[k + 1]]]
            assert (np.diff(lens) >= 0).all()  # shortest first
            assert len(lens) <= most
            if len(lens) > 1:
                assert lens[0] * n * len(lens) <= api.ESTEP_BLOCK_ELEMS
                assert lens[-1] <= lens[0] + lens[0] // 8 + 2
            c = np.searchsorted(cbound, k, side="right") - 1
            if len(lens) > 1:
                assert sizes[c, 0] >= lens[0] * n * len(lens)
                assert sizes[c, 2] >= lens[-1] - lens[0] + 1
            else:
                assert sizes[c, 2] >= lens[0]


@pytest.mark.parametrize("n", [3, GEMM_N])
def test_block_ignores_garbage_in_scratch(n):
    """Scratch comes from np.empty: a block whose buffers start as NaN (including the unused
    columns of a partial Σξ GEMM tile) gives the reference sums."""
    sp, tm, em = random_hmm(n, 4, seed=11)
    rng = np.random.default_rng(4)
    lengths = np.array([23] * 5 + [25, 26])
    X = rng.integers(0, 4, lengths.sum())
    off = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    ref = em_statistics(X, lengths, sp, tm, em, backend="numpy")
    from fasthw6.hmm._numba import estep

    fbuf, dbuf = estep._lockstep_scratch(n, nb.ESTEP_LANES, tm)
    fbuf[:], dbuf[:] = np.nan, np.nan
    abuf = np.full(23 * n * 7, np.nan)
    xbuf = np.zeros(23 * 7, np.int64)
    tail = np.full((4, n), np.nan)
    st, tr, ob, out = np.zeros(n), np.zeros((n, n)), np.zeros((4, n)), np.full(7, np.nan)
    estep._lockstep_block(X, off, np.arange(7), sp, tm, np.ascontiguousarray(tm.T),
                          np.ascontiguousarray(em.T), abuf, xbuf, tail, fbuf, dbuf, st, tr, ob,
                          np.zeros((1, n)), out, True, False)
    np.testing.assert_allclose(out, ref["loglik"], rtol=1e-12)
    np.testing.assert_allclose(st, ref["start"], rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(tr * tm, ref["trans"], rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(ob.T, ref["obs"], rtol=1e-11, atol=1e-12)
