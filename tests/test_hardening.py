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


# ---------------------------------------------------------------- 9: one line, exit 2, no traceback
import gzip  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

_CLI_DATA = os.path.join(os.path.dirname(__file__), "data", "cli")
_MODEL = os.path.join(_CLI_DATA, "model.json")
_SEQS = os.path.join(_CLI_DATA, "seqs.txt")
_EXE = os.path.join(os.path.dirname(sys.executable), "fasthw6")


def _cli(*args, **kw):
    return subprocess.run([_EXE, *map(str, args)], capture_output=True, text=True, timeout=120,
                          **kw)


def _one_line_error(r, *patterns):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    err = r.stderr.strip()
    assert "Traceback" not in r.stderr and len(err.splitlines()) == 1, r.stderr
    assert r.stdout == ""
    for p in patterns:
        assert re.search(p, err), (p, err)


def _model_text(**replace):
    with open(_MODEL) as f:
        text = f.read()
    for key, value in replace.items():
        text = re.sub(r'"%s": \[0\.6, 0\.4\]' % key, f'"{key}": {value}', text)
    return text


def test_model_json_huge_integer_is_one_line(tmp_path):
    from fasthw6.hmm import CategoricalHMM

    p = tmp_path / "big.json"
    p.write_text(_model_text(startprob="[" + "1" * 400 + ", 0]"))
    _one_line_error(_cli("score", "--backend", "cython", "-m", p, _SEQS),
                    r"big\.json:2: .*400 digits.*out of range")
    with pytest.raises(ValueError, match=r"big\.json:2: .*out of range"):  # not OverflowError
        CategoricalHMM.load(str(p))
    q = tmp_path / "huge.json"  # past int()'s 4300-digit limit
    q.write_text(_model_text(startprob="[" + "9" * 5000 + ", 0]"))
    _one_line_error(_cli("score", "--backend", "cython", "-m", q, _SEQS), r"huge\.json:2: ")
    with pytest.raises(ValueError, match=r"out of range"):  # the library's own check too
        from fasthw6.hmm import score_sequences
        score_sequences([0], None, [10 ** 400, 0], [[1, 0], [0, 1]], [[1.0], [1.0]])


def test_model_json_deep_nesting_is_one_line(tmp_path):
    from fasthw6.hmm import CategoricalHMM

    p = tmp_path / "deep.json"
    p.write_text('{"startprob":\n' + "[" * 100_000 + "]" * 100_000 + ',\n"transmat": [],\n'
                 '"emissionprob": []}')
    _one_line_error(_cli("score", "--backend", "cython", "-m", p, _SEQS),
                    r"deep\.json:2: .*nested too deeply")
    with pytest.raises(ValueError, match=r"deep\.json:2: .*nested too deeply"):
        CategoricalHMM.load(str(p))


def test_truncated_npz_is_one_line(tmp_path):
    full = tmp_path / "full.npz"
    np.savez(full, X=np.array([0, 1, 2, 0]), lengths=np.array([2, 2]))
    data = full.read_bytes()
    p = tmp_path / "cut.npz"
    p.write_bytes(data[: len(data) // 2])
    _one_line_error(_cli("score", "--backend", "cython", "-m", _MODEL, p),
                    r"cut\.npz: not a readable \.npz")
    fr = tmp_path / "frames.npz"  # the FRAMES reader of the continuous models as well
    np.savez(fr, X=np.zeros((4, 2)))
    (tmp_path / "fcut.npz").write_bytes(fr.read_bytes()[:40])
    from fasthw6.seqio import SeqsError
    from fasthw6.seqio.frames import read_frames
    with pytest.raises(SeqsError, match=r"fcut\.npz: not a readable \.npz"):
        read_frames(str(tmp_path / "fcut.npz"))


def test_long_token_on_numpy_backend_names_file_and_line(tmp_path):
    p = tmp_path / "long.txt"
    p.write_text("0 1\n1 " + "1" * 5000 + "\n")
    for backend in ("numpy", "cython"):
        _one_line_error(_cli("score", "--backend", backend, "-m", _MODEL, p),
                        r"long\.txt:2: token '1111")
    q = tmp_path / "zeros.txt"  # leading zeros: the value is 1, the token is fine
    q.write_text("0 " + "0" * 5000 + "1\n")
    r = _cli("score", "--backend", "numpy", "-m", _MODEL, q)
    assert r.returncode == 0, r.stderr


def test_fit_decompresses_gz(tmp_path):
    p = tmp_path / "seqs.txt.gz"
    with open(_SEQS, "rb") as f:
        p.write_bytes(gzip.compress(f.read()))
    out, plain = tmp_path / "m.json", tmp_path / "plain.json"
    for src, dst in ((p, out), (_SEQS, plain)):
        r = _cli("fit", "--backend", "cython", "-n", "2", "--n-iter", "3", "--seed", "0", src,
                 "-o", dst)
        assert r.returncode == 0, r.stderr
    assert json.loads(out.read_text()) == json.loads(plain.read_text())  # the text's tokens
    bad = tmp_path / "cut.gz"
    bad.write_bytes(p.read_bytes()[:20])
    _one_line_error(_cli("fit", "--backend", "cython", "-n", "2", bad, "-o", tmp_path / "x.json"),
                    r"cut\.gz: cannot read")
    assert not (tmp_path / "x.json").exists()


def test_svm_subnormal_X_is_a_clear_value_error():
    from fasthw6.svm import HardMarginSVC

    for X in ([[0.0], [5e-324]], [[1e-320, 1e308], [0.0, 0.0]]):
        with pytest.raises(ValueError, match=r"rescale X"):
            HardMarginSVC(backend="numpy").fit(X, [0, 1])


def test_output_to_dev_stdout_and_a_pipe(tmp_path):
    r = _cli("score", "--backend", "cython", "-m", _MODEL, _SEQS, "-o", "/dev/stdout")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("index,length,log_likelihood\n") and len(r.stdout.splitlines()) == 6
    r = _cli("fit", "--backend", "cython", "-n", "2", "--n-iter", "2", _SEQS, "-o", "/dev/stdout")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["type"] == "categorical"
    # bash's -o >(cmd): a /dev/fd path to a pipe
    rfd, wfd = os.pipe()
    try:
        r = subprocess.run([_EXE, "score", "--backend", "cython", "-m", _MODEL, _SEQS, "-o",
                            f"/dev/fd/{wfd}"], capture_output=True, text=True, timeout=120,
                           pass_fds=(wfd,))
        os.close(wfd)
        wfd = None
        with os.fdopen(rfd, encoding="utf-8") as f:
            rfd = None
            got = f.read()
    finally:
        for fd in (rfd, wfd):
            if fd is not None:
                os.close(fd)
    assert r.returncode == 0, r.stderr
    assert got.startswith("index,length,log_likelihood\n") and len(got.splitlines()) == 6


# ---------------------------------------------------------------- 10: smaller findings
def test_complex_probabilities_are_refused():
    from fasthw6.hmm import (CategoricalHMM, GaussianHMM, PoissonHMM, score_frames,
                             score_sequences)

    tm = np.full((2, 2), 0.5)
    with pytest.raises(ValueError, match=r"startprob must be real"):
        score_sequences([0, 1], None, np.array([0.5, 0.5 + 1j]), tm, tm)
    with pytest.raises(ValueError, match=r"transmat must be real"):
        score_frames(np.zeros((3, 2)), None, [0.5, 0.5], tm + 0j)
    m = CategoricalHMM(2, backend="numpy")
    m.startprob_, m.transmat_, m.emissionprob_ = np.array([0.5, 0.5]), tm, tm + 1e-3j
    with pytest.raises(ValueError, match=r"emissionprob_ must be real"):
        m.score([[0], [1]])
    g = GaussianHMM(2, backend="numpy")
    g.startprob_, g.transmat_ = np.array([0.5, 0.5]), tm
    g.means_, g.covars_ = np.zeros((2, 2)) + 1j, np.ones((2, 2))
    with pytest.raises(ValueError, match=r"means_ must be real"):
        g.score(np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"covars_ must be real"):
        g.covars_ = np.ones((2, 2)) + 1j
    p = PoissonHMM(2, backend="numpy")
    p.startprob_, p.transmat_, p.lambdas_ = np.array([0.5, 0.5]), tm, np.ones((2, 2)) + 1j
    with pytest.raises(ValueError, match=r"lambdas_ must be real"):
        p.score(np.ones((3, 2), int))


def test_degenerate_warning_once_per_fit(tmp_path, caplog):
    p = tmp_path / "tiny.txt"
    p.write_text("0 1\n")
    r = _cli("fit", "--backend", "cython", "-n", "3", "--n-iter", "5", p, "-o", tmp_path / "m.json")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("degenerate solution") == 1, r.stderr
    # the library: a continuation (init_params "") of the same fit is silent, a new fit warns
    from fasthw6.hmm import CategoricalHMM

    m = CategoricalHMM(3, n_iter=1, random_state=0, backend="numpy")
    X = np.array([[0], [1]])
    with caplog.at_level("WARNING", logger="fasthw6.hmm.estimator"):
        m.fit(X)
        m.init_params = ""
        m.fit(X)
        m.fit(X)
    assert sum("degenerate" in rec.getMessage() for rec in caplog.records) == 1
