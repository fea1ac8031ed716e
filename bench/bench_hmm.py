"""HMM benchmarks: one thread, float64, random model, M=8, 2000 sequences x 500 symbols.

Work is counted in state-steps, S*T*N^2 (the multiply-adds of the forward recursion), so every
implementation of one operation shares one unit.  Every result is checked against hmmlearn on
the first sequences before it is timed.  The implementations are the comparisons registry's
(``fasthw6._backend.comparisons``): every backend, then every installed anchor library.

    python -m pytest bench/bench_hmm.py --benchmark-json=/tmp/hmm.json
    python -m bench.report /tmp/hmm.json
"""
from __future__ import annotations

import numpy as np
import pytest

from bench.conftest import QUICK, THREADS, batch
from fasthw6._backend import comparisons
from fasthw6.hmm import CategoricalHMM, score_sequences, viterbi
from fasthw6.hmm._anchors import _path_logprob, hmmlearn_model

M, S, T = 8, batch(2000), 500
NS = [3, 16, 64]
CHECK = 40  # sequences re-scored by hmmlearn to verify every result


@pytest.fixture(scope="module", params=NS, ids=lambda n: f"N={n}")
def case(request):
    n = request.param
    rng = np.random.default_rng(n)
    sp = rng.dirichlet(np.ones(n))
    tm = rng.dirichlet(np.ones(n), size=n)
    em = rng.dirichlet(np.ones(M), size=n)
    X = rng.integers(0, M, S * T).reshape(-1, 1)
    lengths = np.full(S, T)
    return dict(n=n, sp=sp, tm=tm, em=em, X=X, lengths=lengths, work=float(S * T * n * n),
                name=f"N={n}, {S}x{T}")


SCORE = comparisons("score_sequences", score_sequences)
DECODE = comparisons("viterbi", viterbi)
ESTIMATOR = comparisons("CategoricalHMM", CategoricalHMM)
# minutes per call at this size, so left out where shown (the ratios are taken against the
# hmmlearn scaling implementation, which stays at every N)
TOO_SLOW = {
    "numpy": 3,  # the naive reference (the document's method, fixed): ~20 s per call at N=3
    "hmmlearn-log": 16,  # score 2 s at N=16 but fit 8 s, 160 s at N=64
}
PEERS = ("hmmkay", "dynamax", "pomegranate")  # one round from N=16 on, as hmmlearn


# quick: the peers that compile per shape (seconds of JIT per case) are left to the full run
QUICK_SKIP = ("hmmkay", "dynamax")


def _skip_unless_runnable(impl, fn, n):
    if fn is None:
        pytest.skip(f"{impl} not installed")
    if QUICK and impl in QUICK_SKIP:
        pytest.skip(f"--quick: {impl} compiles for seconds per case; run without --quick")
    if n > TOO_SLOW.get(impl, n):
        pytest.skip(f"{impl} takes minutes at N={n}")


def _hmmlearn_scores(c):
    h = hmmlearn_model(c["sp"], c["tm"], c["em"], "scaling")
    return np.array([h.score(c["X"][s * T:(s + 1) * T]) for s in range(CHECK)])


def _rounds(impl, n):
    slow = impl.startswith("hmmlearn") or impl in PEERS
    return 1 if slow and n >= 16 or impl == "numpy" else None


@pytest.mark.parametrize("impl", list(SCORE))
def test_score_sequences(measure, case, impl):
    c = case
    fn = SCORE[impl]
    _skip_unless_runnable(impl, fn, c["n"])
    expect = _hmmlearn_scores(c)
    rtol = getattr(fn, "rtol", 1e-9)  # an anchor computing in float32 says so

    def check(r):
        np.testing.assert_allclose(r[:CHECK], expect, rtol=rtol)

    measure(lambda: fn(c["X"], c["lengths"], c["sp"], c["tm"], c["em"]), group="score_sequences",
            case=c["name"], impl=impl, work=c["work"], unit="state-steps/s",
            baseline="hmmlearn-scaling", check=check, rounds=_rounds(impl, c["n"]))


@pytest.mark.parametrize("impl", list(DECODE))
def test_decode(measure, case, impl):
    c = case
    fn = DECODE[impl]
    _skip_unless_runnable(impl, fn, c["n"])
    h = hmmlearn_model(c["sp"], c["tm"], c["em"], "log")
    ref_lp, ref_path = h.decode(c["X"][:CHECK * T], c["lengths"][:CHECK])

    rtol = getattr(fn, "rtol", None)

    def check(r):
        if rtol is None:
            np.testing.assert_array_equal(r[1][:CHECK * T], ref_path)
            np.testing.assert_allclose(r[0][:CHECK].sum(), ref_lp, rtol=1e-10)
            return
        # computed in float32: a near-tie may go the other way, so the path is held to being
        # optimal to that precision, its log-probability taken here in float64
        lp = sum(_path_logprob(c["X"][s * T:(s + 1) * T].ravel(), r[1][s * T:(s + 1) * T],
                               c["sp"], c["tm"], c["em"]) for s in range(CHECK))
        np.testing.assert_allclose(lp, ref_lp, rtol=rtol)
        np.testing.assert_allclose(r[0][:CHECK].sum(), ref_lp, rtol=rtol)

    measure(lambda: fn(c["X"], c["lengths"], c["sp"], c["tm"], c["em"]), group="decode (Viterbi)",
            case=c["name"], impl=impl, work=c["work"], unit="state-steps/s", baseline="hmmlearn",
            check=check, rounds=_rounds(impl, c["n"]))


_FIT_REFERENCE = {}


def _fit_one_iteration(c, cls):
    m = cls(c["n"], n_features=M, init_params="", n_iter=1, tol=-np.inf)
    m.startprob_, m.transmat_, m.emissionprob_ = c["sp"], c["tm"], c["em"]
    return m.fit(c["X"], c["lengths"])


def _fit_reference(c):
    """hmmlearn's parameters after one iteration on the whole batch, computed once per case
    by a separate fit (so no timed result is compared with itself)."""
    if c["n"] not in _FIT_REFERENCE:
        m = _fit_one_iteration(c, ESTIMATOR["hmmlearn-scaling"])
        _FIT_REFERENCE[c["n"]] = dict(sp=m.startprob_.copy(), tm=m.transmat_.copy(),
                                      em=m.emissionprob_.copy(), ll=m.monitor_.history[-1])
    return _FIT_REFERENCE[c["n"]]


@pytest.mark.parametrize("impl", list(ESTIMATOR))
def test_fit_iteration(measure, case, impl):
    c = case
    cls = ESTIMATOR[impl]
    _skip_unless_runnable(impl, cls, c["n"])
    ref = _fit_reference(c)

    def check(m):
        assert len(m.monitor_.history) == 1
        np.testing.assert_allclose(m.monitor_.history[-1], ref["ll"], rtol=1e-10)
        np.testing.assert_allclose(m.startprob_, ref["sp"], rtol=1e-9, atol=1e-13)
        np.testing.assert_allclose(m.transmat_, ref["tm"], rtol=1e-9, atol=1e-13)
        np.testing.assert_allclose(m.emissionprob_, ref["em"], rtol=1e-9, atol=1e-13)
        # the update moved the parameters: a fit that returned its start would fail here
        assert np.abs(m.transmat_ - c["tm"]).max() > 1e-6

    measure(lambda: _fit_one_iteration(c, cls), group="fit (one EM iteration)", case=c["name"],
            impl=impl, work=c["work"], unit="state-steps/s", baseline="hmmlearn-scaling",
            check=check, rounds=_rounds(impl, c["n"]))


def _threads_run(threads, call):
    """``call()`` with numba on ``threads`` threads, restored after."""
    import numba

    old = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        return call()
    finally:
        numba.set_num_threads(old)


@pytest.mark.parametrize("op", ["score_sequences", "decode (Viterbi)", "fit (one EM iteration)"])
@pytest.mark.parametrize("threads", [1, 2])
def test_threads(measure, case, threads, op):
    import numba

    c = case
    if threads > numba.config.NUMBA_NUM_THREADS:
        pytest.skip("one core only")
    args = (c["X"], c["lengths"], c["sp"], c["tm"], c["em"])
    if op == "score_sequences":
        expect = _hmmlearn_scores(c)
        call = lambda: score_sequences(*args, backend="numba")  # noqa: E731

        def check(r):
            np.testing.assert_allclose(r[:CHECK], expect, rtol=1e-9)
    elif op == "decode (Viterbi)":
        expect = viterbi(*args, backend="cython")  # tests hold it bit for bit to the reference
        call = lambda: viterbi(*args, backend="numba")  # noqa: E731

        def check(r):
            np.testing.assert_array_equal(r[1], expect[1])
            np.testing.assert_array_equal(r[0], expect[0])
    else:
        ref = _fit_reference(c)
        call = lambda: _fit_one_iteration(c, ESTIMATOR["numba"])  # noqa: E731

        def check(m):
            np.testing.assert_allclose(m.monitor_.history[-1], ref["ll"], rtol=1e-10)
            np.testing.assert_allclose(m.transmat_, ref["tm"], rtol=1e-9, atol=1e-13)

    measure(lambda: _threads_run(threads, call), group=f"{op} threads (numba)", case=c["name"],
            impl=f"numba {threads} thread(s)", work=c["work"], unit="state-steps/s",
            baseline=f"numba {THREADS} thread(s)", check=check, threads=threads)


@pytest.mark.parametrize("impl", ["numba score_sequences", "numpy matmul"])
def test_n64_vs_matmul(measure, impl):
    """At N=64 the forward recursion is 2000*500*64^2 = 1600^3 multiply-adds: the same count as
    one 1600x1600 float64 matmul, so the time ratio is the rate ratio (quick: a matmul of the
    cube root of the batch's count)."""
    n = 64
    k = round((S * T * n * n) ** (1 / 3))
    rng = np.random.default_rng(n)
    sp, tm, em = rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(n), n), rng.dirichlet(np.ones(M), n)
    X, lengths = rng.integers(0, M, S * T), np.full(S, T)
    work = float(S * T * n * n)
    if impl == "numpy matmul":
        a = rng.random((k, k))
        b = rng.random((k, k))
        work = float(k**3)
        expect = a[:3] @ b
        fn = lambda: a @ b  # noqa: E731

        def check(r):
            np.testing.assert_allclose(r[:3], expect, rtol=1e-12)
    else:
        h = hmmlearn_model(sp, tm, em, "scaling")
        expect = [h.score(X[s * T:(s + 1) * T].reshape(-1, 1)) for s in range(5)]
        fn = lambda: score_sequences(X, lengths, sp, tm, em, backend="numba")  # noqa: E731

        def check(r):
            np.testing.assert_allclose(r[:5], expect, rtol=1e-9)
    measure(fn, group="N=64 vs machine rate", case="multiply-adds", impl=impl, work=work,
            unit="madd/s", baseline="numpy matmul", check=check)


def test_peer_thread_pools_pinned():
    """The peers run on THREADS threads like everything else: CPU time over wall time of a
    compute-bound call of each peer's runtime (JAX for dynamax, PyTorch for pomegranate) stays
    near THREADS (numba's, for hmmkay, is pinned with fasthw6's own)."""
    import time

    checked = 0
    for name in ("torch",) if QUICK else ("jax", "torch"):  # quick runs no JAX peer
        try:
            __import__(name)
        except ImportError:
            continue
        a = np.random.default_rng(0).random((1200, 1200))
        if name == "jax":
            import jax
            import jax.numpy as jnp

            x = jnp.asarray(a)
            f = jax.jit(lambda v: (v @ v).sum())
            run = lambda: f(x).block_until_ready()  # noqa: E731
        else:
            import torch

            x = torch.from_numpy(a)
            run = lambda: (x @ x).sum()  # noqa: E731
        run()
        c0, w0 = time.process_time(), time.perf_counter()
        while time.perf_counter() - w0 < 1.0:
            run()
        ratio = (time.process_time() - c0) / (time.perf_counter() - w0)
        assert ratio < THREADS + 0.35, f"{name} ran {ratio:.2f} CPU-seconds per second"
        checked += 1
    if not checked:
        pytest.skip("neither JAX nor PyTorch installed")
