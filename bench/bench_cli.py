"""SEQS parsing throughput: the compiled tokenisers against the obvious Python reader.

The implementations are the comparisons registry's (``fasthw6._backend.comparisons``): every
backend of ``read_sequences``, then the plain Python reader (``fasthw6/seqio/_anchors.py``).

Work is input bytes; the file is ``S`` lines of ``T`` integer tokens (M=8, one digit each, so
two bytes per symbol, the densest and hardest case per byte).  ``FASTHW6_BENCH_QUICK=1`` shrinks it.
"""
from __future__ import annotations

import functools
import os

import numpy as np
import pytest

from bench.conftest import QUICK
from fasthw6._backend import comparisons
from fasthw6.seqio import read_sequences

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


IMPLS = comparisons("read_sequences", read_sequences)


@pytest.fixture(scope="module")
def tmpdir_str(tmp_path_factory):
    return str(tmp_path_factory.mktemp("seqs"))


@pytest.mark.parametrize("impl", list(IMPLS))
@pytest.mark.parametrize("case", list(CASES))
def test_parse_seqs(measure, tmpdir_str, case, impl):
    fn = IMPLS[impl]
    if fn is None:
        pytest.skip(f"{impl} not available")
    S, T, M = CASES[case]
    path, expected = data_file(case, tmpdir_str)

    def check(res):
        X, lengths = res
        np.testing.assert_array_equal(X, expected)
        assert lengths.shape == (S,) and (lengths == T).all()

    measure(lambda: fn(path, M), group="parse SEQS text", case=case, impl=impl,
            work=os.path.getsize(path), unit="B/s", baseline="python", check=check,
            rounds=3 if impl in ("python", "numpy") else None)


# named symbols (issue 18): the same sequences written with words for symbols, against the same
# sequences as integers, per symbol; the compiled tokeniser looks each token up in a hash table
WORDS = ["the", "and", "of", "to", "a", "in", "is", "it"]
NAMED_CASE = "2000x500 M=8" if QUICK else "20000x500 M=8"


@functools.lru_cache(maxsize=None)
def named_file(tmpdir):
    S, T, M = CASES[NAMED_CASE]
    _, X = data_file(NAMED_CASE, tmpdir)
    path = os.path.join(tmpdir, f"named-{S}x{T}.txt")
    words = np.array(WORDS)
    with open(path, "w") as f:
        f.write("\n".join(" ".join(r) for r in words[X.reshape(S, T)].tolist()) + "\n")
    return path


NAMED_IMPLS = ["numba names", "numba integers", "cython names", "cython integers"]


@pytest.mark.parametrize("impl", NAMED_IMPLS)
def test_parse_named_symbols(measure, tmpdir_str, impl):
    backend, kind = impl.split()
    S, T, M = CASES[NAMED_CASE]
    ints, expected = data_file(NAMED_CASE, tmpdir_str)
    path = named_file(tmpdir_str) if kind == "names" else ints
    symbols = WORDS if kind == "names" else None

    def check(res):
        X, lengths = res
        np.testing.assert_array_equal(X, expected)
        assert lengths.shape == (S,) and (lengths == T).all()

    measure(lambda: read_sequences(path, M, symbols=symbols, backend=backend),
            group="parse named symbols", case=f"{NAMED_CASE} ({', '.join(WORDS[:3])}, ...)",
            impl=impl, work=S * T, unit="symbols/s", baseline="numba integers", check=check)
