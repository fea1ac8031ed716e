"""Regression tests of the adversarial review's findings (issue 19): each fails on the code
before its fix."""
from __future__ import annotations

import numpy as np
import pytest

from fasthw6.hmm import (em_statistics, frames_statistics, posteriors, posteriors_frames,
                         score_frames, score_sequences, viterbi, viterbi_frames)

BACKENDS = ["numba", "cython", "numpy"]


# ---------------------------------------------------------------- 3: a possible sequence at -inf
@pytest.mark.parametrize("backend", BACKENDS)
def test_score_never_below_the_viterbi_path(backend):
    """One step's factors 1e-200 x 1e-200 underflow inside the scaled product; the kernels'
    -inf is taken again in log space: score = Viterbi = log(1e-400) (the only path)."""
    sp = [1.0, 0.0]
    tm = [[1e-200, 1 - 1e-200], [0.0, 1.0]]
    expect = np.log(1 - 1e-200) + 2 * np.log(1e-200)  # start 0, emit 1, stay in 0, emit 0
    lp, _ = viterbi([1, 0], None, sp, tm, tm, backend=backend)
    assert lp[0] == pytest.approx(-921.0340372, rel=1e-9)
    ll = score_sequences([1, 0], None, sp, tm, tm, backend=backend)
    assert ll[0] == pytest.approx(expect, rel=1e-12) and ll[0] >= lp[0] - 1e-9
    out, gamma = posteriors([1, 0], None, sp, tm, tm, backend=backend)
    assert out[0] == pytest.approx(expect, rel=1e-12)
    np.testing.assert_allclose(gamma, [[1.0, 0.0], [1.0, 0.0]])
    st = em_statistics([1, 0], None, sp, tm, tm, backend=backend)
    np.testing.assert_allclose(st["trans"], [[1.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(st["start"], [1.0, 0.0])
    np.testing.assert_allclose(st["obs"], [[1.0, 1.0], [0.0, 0.0]])
    # float32, 1e-25 x 1e-25 below its range: the log-space score is float64's
    t32 = np.array([[1e-25, 1 - 1e-25], [0.0, 1.0]], np.float32)
    s32 = score_sequences([1, 0], None, np.array(sp, np.float32), t32, t32, backend=backend)
    assert s32[0] == pytest.approx(2 * np.log(np.float64(np.float32(1e-25))), rel=1e-6)
    # a truly impossible sequence stays -inf, with its neighbours untouched
    ll = score_sequences([0, 0, 1, 1], [2, 2], sp, tm, [[0.0, 1.0], [1.0, 0.0]], backend=backend)
    assert ll[0] == -np.inf  # state 0 (the start) cannot emit 0
    assert ll[1] == pytest.approx(np.log(1e-200), rel=1e-12)  # stays in 0: one 1e-200 factor


@pytest.mark.parametrize("backend", BACKENDS)
def test_frames_score_never_below_the_viterbi_path(backend):
    sp = [1.0, 0.0]
    tm = [[1e-200, 1 - 1e-200], [0.0, 1.0]]
    with np.errstate(divide="ignore"):
        flp = np.log([[1e-200, 0.0], [1e-200, 1.0]])  # frame 1: state 0 at 1e-200
    lp, _ = viterbi_frames(flp, None, sp, tm, backend=backend)
    ll = score_frames(flp, None, sp, tm, backend=backend)
    assert np.isfinite(lp[0]) and ll[0] >= lp[0] - 1e-9
    out, g = posteriors_frames(flp, None, sp, tm, backend=backend)
    assert np.isfinite(out[0]) and np.allclose(g.sum(axis=1), 1.0)
    st = frames_statistics(flp, None, sp, tm, backend=backend)
    assert np.isfinite(st["loglik"]).all() and st["trans"].sum() == pytest.approx(1.0)


# ---------------------------------------------------------------- 4: a UTF-8 byte-order mark
def test_byte_order_mark_is_not_a_symbol(tmp_path):
    from fasthw6.seqio import read_sequences
    from fasthw6.seqio.api import iter_text_chunks
    from fasthw6.seqio.frames import read_frames

    p = tmp_path / "bom.txt"
    p.write_bytes(b"\xef\xbb\xbf0 1 1\n1 0\n")
    X, lengths = read_sequences(str(p))
    assert X.tolist() == [0, 1, 1, 1, 0] and lengths.tolist() == [3, 2]
    chunks = list(iter_text_chunks(str(p), chunk_bytes=1))  # the mark split across reads
    assert np.concatenate([c.X for c in chunks]).tolist() == [0, 1, 1, 1, 0]
    q = tmp_path / "bom.csv"
    q.write_bytes(b"\xef\xbb\xbf0.5,1.5\n2.5,3.5\n")
    F = read_frames(str(q))[0]
    np.testing.assert_array_equal(F, [[0.5, 1.5], [2.5, 3.5]])


# ---------------------------------------------------------------- 8: long lines read in linear time
def test_long_line_in_small_reads_is_read_whole():
    """A line far longer than the read size: its pieces are kept and joined once (the old
    reader re-joined and re-scanned the pending bytes per read, quadratic: 137 s for 32 MB at
    4K reads).  Correctness at several read sizes; the time lives in bench_cli."""
    import io

    from fasthw6.seqio.api import iter_text_chunks

    line = (" ".join(["1", "0"] * 50_000) + "\n").encode()
    data = b"2 2\n" + line + b"0 2"
    for chunk in (1, 7, 4096, 1 << 20):
        got = list(iter_text_chunks(io.BytesIO(data), n_symbols=3, chunk_bytes=chunk))
        X = np.concatenate([c.X for c in got])
        L = np.concatenate([c.lengths for c in got])
        assert L.tolist() == [2, 100_000, 2] and X[:3].tolist() == [2, 2, 1]
        assert X[-3:].tolist() == [0, 0, 2]
