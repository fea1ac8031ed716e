"""SEQS parsing throughput: the compiled tokeniser against the obvious Python reader.

Work is input bytes; the file is ``S`` lines of ``T`` integer tokens (M=8, one digit each, so
two bytes per symbol, the densest and hardest case per byte).  ``FASTHW6_BENCH_QUICK=1`` shrinks it.
"""
from __future__ import annotations

import functools
import os

import numpy as np
import pytest

from fasthw6.seqio import iter_chunks

QUICK = os.environ.get("FASTHW6_BENCH_QUICK") == "1"
CASES = {
    "2000x500 M=8": (2000, 500, 8),
    "20000x500 M=8": (20000, 500, 8),
    "200000x50 M=100": (200000, 50, 100),
}
if QUICK:
    CASES = {"2000x500 M=8": (2000, 500, 8)}


@functools.lru_cache(maxsize=None)
def data_file(case, tmpdir):
    S, T, M = CASES[case]
    rng = np.random.default_rng(7)
    X = rng.integers(0, M, size=(S, T))
    path = os.path.join(tmpdir, f"seqs-{S}x{T}-{M}.txt")
    with open(path, "w") as f:
        f.write("\n".join(" ".join(map(str, r)) for r in X.tolist()) + "\n")
    return path, X.ravel()


def parse_compiled(path, M):
    Xs, Ls = [], []
    for c in iter_chunks(path, n_symbols=M, chunk_bytes=4 << 20):
        Xs.append(c.X)
        Ls.append(c.lengths)
    return np.concatenate(Xs), np.concatenate(Ls)


def parse_python(path, M):
    """What one writes first: split every line, int() every token, check the range."""
    rows = []
    with open(path) as f:
        for line in f:
            r = [int(t) for t in line.split()]
            if r:
                if min(r) < 0 or max(r) >= M:
                    raise ValueError("symbol out of range")
                rows.append(r)
    return np.fromiter((v for r in rows for v in r), dtype=np.int32), np.array([len(r) for r in rows])


IMPLS = {"numba": parse_compiled, "python": parse_python}


@pytest.fixture(scope="module")
def tmpdir_str(tmp_path_factory):
    return str(tmp_path_factory.mktemp("seqs"))


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("case", list(CASES))
def test_parse_seqs(measure, tmpdir_str, case, impl):
    S, T, M = CASES[case]
    path, expected = data_file(case, tmpdir_str)

    def check(res):
        X, lengths = res
        np.testing.assert_array_equal(X, expected)
        assert lengths.shape == (S,) and (lengths == T).all()

    measure(lambda: IMPLS[impl](path, M), group="parse SEQS text", case=case, impl=impl,
            work=os.path.getsize(path), unit="B/s", baseline="python", check=check,
            rounds=3 if impl == "python" else None)
