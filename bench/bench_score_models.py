"""Scoring under many models at once (issue 15): ``score_models`` against K separate
``score_sequences`` calls (numba) and K hmmlearn calls, K = 1, 8, 64 categorical models of
N = 8 states, M = 8 symbols, 2000 sequences x 500 symbols, one thread.

Work is counted per model-state-step (K x N x symbols), so the ratio of two implementations is
their throughput ratio and, at one K, their time ratio; the target (``bench/targets.py``) is
score_models at K = 64 costing at most 0.7x the separate calls.  Every result is checked before
timing: score_models against the separate calls (bit for bit), hmmlearn against both on the
first sequences.  hmmlearn runs at K = 1 and 8 only: at K = 64 one round takes minutes.
"""
from __future__ import annotations

import numpy as np
import pytest

from bench.conftest import batch
from fasthw6.hmm import score_models, score_sequences
from fasthw6.hmm._anchors import hmmlearn_model

N, M, S, T = 8, 8, batch(2000), 500
CHECK = 20  # sequences hmmlearn's results are compared on
HMMLEARN_MAX_K = 8

_CASES = {}


def _case(K):
    if K not in _CASES:
        rng = np.random.default_rng(15 + K)
        models = [(rng.dirichlet(np.ones(N)), rng.dirichlet(np.ones(N), N),
                   rng.dirichlet(np.ones(M), N)) for _ in range(K)]
        X = rng.integers(0, M, S * T).astype(np.int64)
        lengths = np.full(S, T, np.int64)
        ref = np.column_stack([score_sequences(X, lengths, *m, backend="numba") for m in models])
        _CASES[K] = dict(models=models, X=X, lengths=lengths, ref=ref, work=float(K * N * S * T))
    return _CASES[K]


def _separate(c):
    return np.column_stack([score_sequences(c["X"], c["lengths"], *m, backend="numba")
                            for m in c["models"]])


def _hmmlearn(c):
    hs = [hmmlearn_model(*m, "scaling") for m in c["models"]]
    X = c["X"].reshape(-1, 1)
    return np.column_stack([[h.score(X[s * T:(s + 1) * T]) for s in range(S)] for h in hs])


IMPLS = {
    "numba score_models": lambda c: score_models(c["models"], c["X"], c["lengths"],
                                                 backend="numba"),
    "numba separate": _separate,
    "cython score_models": lambda c: score_models(c["models"], c["X"], c["lengths"],
                                                  backend="cython"),
    "hmmlearn": _hmmlearn,
}


@pytest.mark.parametrize("K", [1, 8, 64])
@pytest.mark.parametrize("impl", list(IMPLS))
def test_score_models(measure, impl, K):
    if impl == "hmmlearn":
        pytest.importorskip("hmmlearn")
        if K > HMMLEARN_MAX_K:
            pytest.skip(f"hmmlearn takes minutes at K={K}")
    c = _case(K)
    ref = c["ref"]

    def check(r):
        if impl == "hmmlearn":
            np.testing.assert_allclose(r[:CHECK], ref[:CHECK], rtol=1e-9)
            np.testing.assert_allclose(r, ref, rtol=1e-9)
        else:
            np.testing.assert_array_equal(r, ref)

    fn = IMPLS[impl]
    slow = impl == "hmmlearn" or (impl.startswith("cython") and K == 64)
    measure(lambda: fn(c), group="score_models", case=f"K={K} N={N} M={M} {S}x{T}", impl=impl,
            work=c["work"], unit="model-state-steps/s", baseline="numba separate", check=check,
            rounds=1 if slow else (3 if K == 64 else None))
