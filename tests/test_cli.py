"""The ``fasthw6`` command, run as users run it: the installed entry point, in a subprocess.

Golden outputs (tests/data/cli/*.golden.csv) were computed by enumerating every state path of
the tiny model, and ``test_golden_files_are_brute_force`` recomputes them that way here.
"""
from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from fasthw6.demo import CONV_A, CONV_K

DATA = os.path.join(os.path.dirname(__file__), "data", "cli")
MODEL = os.path.join(DATA, "model.json")
SEQS = os.path.join(DATA, "seqs.txt")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXE = os.path.join(os.path.dirname(sys.executable), "fasthw6")

# the document's printed 11x11 result of question 5
DOC_TABLE = [
    [18, 0, 0, 0, 0, 0, 8, 0, 3, 0, 0],
    [0, 6, 0, 0, 12, 0, 8, 0, 0, 1, 0],
    [24, 0, 22, 0, 0, 4, 0, 0, 1, 0, 1],
    [0, 4, 0, 4, 0, 0, 0, 2, 0, 1, 0],
    [17, 0, 0, 0, 29, 0, 14, 0, 6, 0, 0],
    [0, 3, 15, 0, 11, 1, 0, 4, 0, 2, 0],
    [0, 0, 5, 7, 0, 0, 0, 0, 30, 0, 2],
    [6, 0, 0, 2, 0, 1, 10, 0, 2, 2, 0],
    [11, 2, 0, 0, 12, 0, 3, 4, 0, 0, 8],
    [0, 5, 0, 1, 0, 2, 0, 4, 0, 0, 2],
    [10, 0, 17, 0, 7, 0, 14, 0, 10, 1, 0],
]


def fasthw6(*args, input=None, cwd=None, env=None):
    if not os.path.exists(EXE):
        pytest.fail(f"{EXE} not found: install the package first (pip install -e . --no-build-isolation)")
    return subprocess.run([EXE, *map(str, args)], input=input, capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120)


def assert_error(r, *patterns):
    """Exit status 2, one line on stderr, no traceback, nothing on stdout."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    err = r.stderr.strip()
    assert "Traceback" not in r.stderr and len(err.splitlines()) == 1, r.stderr
    assert r.stdout == ""
    for p in patterns:
        assert re.search(p, err), (p, err)


def read_csv(text):
    lines = text.splitlines()
    return lines[0], [ln.split(",") for ln in lines[1:]]


def assert_same_table(text, golden_path, float_col=2):
    head, rows = read_csv(text)
    with open(golden_path) as f:
        ghead, grows = read_csv(f.read())
    assert head == ghead and len(rows) == len(grows)
    for r, g in zip(rows, grows):
        assert r[:float_col] == g[:float_col] and r[float_col + 1:] == g[float_col + 1:]
        np.testing.assert_allclose(float(r[float_col]), float(g[float_col]), rtol=1e-12)


# --------------------------------------------------------------------------- golden
def test_golden_files_are_brute_force():
    with open(MODEL) as f:
        m = json.load(f)
    pi, A, B = (np.array(m[k]) for k in ("startprob", "transmat", "emissionprob"))
    seqs = [[0, 1, 2], [0, 0, 2, 1], [2], [2] * 6, [1, 0]]  # seqs.txt, symbols a=0 b=1 c=2
    with open(os.path.join(DATA, "score.golden.csv")) as f:
        score = read_csv(f.read())[1]
    with open(os.path.join(DATA, "decode.golden.csv")) as f:
        decode = read_csv(f.read())[1]
    for o, s, d in zip(seqs, score, decode, strict=True):
        probs = {}
        for p in itertools.product(range(2), repeat=len(o)):
            probs[p] = pi[p[0]] * B[p[0], o[0]] * np.prod(
                [A[p[t - 1], p[t]] * B[p[t], o[t]] for t in range(1, len(o))])
        best = max(probs, key=probs.get)
        assert np.isclose(float(s[2]), np.log(sum(probs.values())), rtol=1e-13)
        assert np.isclose(float(d[2]), np.log(probs[best]), rtol=1e-13)
        assert d[3] == " ".join(map(str, best))


def test_score_golden(tmp_path):
    out = tmp_path / "out.csv"
    r = fasthw6("score", "-m", MODEL, SEQS, "-o", out)
    assert r.returncode == 0 and r.stdout == "", r.stderr
    assert_same_table(out.read_text(), os.path.join(DATA, "score.golden.csv"))


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_score_stdin_to_stdout_small_chunks(backend):
    with open(SEQS) as f:
        text = f.read()
    r = fasthw6("score", "-m", MODEL, "-", "--chunk-size", "7", "--backend", backend, input=text)
    assert r.returncode == 0, r.stderr
    assert_same_table(r.stdout, os.path.join(DATA, "score.golden.csv"))


def test_score_npz_and_verbose_reports_throughput(tmp_path):
    X = np.array([0, 1, 2, 0, 0, 2, 1, 2, 2, 2, 2, 2, 2, 2, 1, 0], np.uint8)
    np.savez(tmp_path / "s.npz", X=X, lengths=[3, 4, 1, 6, 2])
    r = fasthw6("score", "-m", MODEL, tmp_path / "s.npz", "--verbose")
    assert r.returncode == 0, r.stderr
    assert_same_table(r.stdout, os.path.join(DATA, "score.golden.csv"))
    assert re.search(r"5 sequences, 16 symbols; parse [\d.]+ MB/s .*score [\d.]+ M symbols/s", r.stderr), r.stderr


def test_decode_golden(tmp_path):
    out = tmp_path / "d.csv"
    r = fasthw6("decode", "-m", MODEL, SEQS, "-o", out)
    assert r.returncode == 0, r.stderr
    assert_same_table(out.read_text(), os.path.join(DATA, "decode.golden.csv"))


def test_impossible_sequence_scores_minus_inf(tmp_path):
    model = tmp_path / "m.json"
    model.write_text(json.dumps(dict(startprob=[1.0, 0.0], transmat=[[1.0, 0.0], [0.0, 1.0]],
                                     emissionprob=[[1.0, 0.0], [0.0, 1.0]])))
    r = fasthw6("score", "-m", model, "-", input="0 0\n0 1\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1:] == ["0,2,0.0", "1,2,-inf"]


def test_sample_fit_score_round_trip(tmp_path):
    seqs = tmp_path / "sampled.txt"
    r = fasthw6("sample", "-m", MODEL, "-n", 300, "-l", 40, "--seed", 3, "-o", seqs)
    assert r.returncode == 0, r.stderr
    lines = seqs.read_text().splitlines()
    assert len(lines) == 300 and all(len(ln.split()) == 40 for ln in lines)
    assert set(" ".join(lines).split()) <= {"a", "b", "c"}
    again = fasthw6("sample", "-m", MODEL, "-n", 300, "-l", 40, "--seed", 3)
    assert again.stdout == seqs.read_text()  # seeded: reproducible

    fitted = tmp_path / "fitted.json"
    r = fasthw6("fit", "-n", 2, seqs, "-o", fitted, "--n-iter", 30, "--seed", 1, "--verbose")
    assert r.returncode == 0, r.stderr
    m = json.loads(fitted.read_text())
    assert m["symbols"] == ["a", "b", "c"]
    assert np.allclose(np.sum(m["transmat"], axis=1), 1) and np.allclose(np.sum(m["emissionprob"], axis=1), 1)
    lls = [float(v) for v in re.findall(r"iteration \d+: log-likelihood (\S+)", r.stderr)]
    assert 2 <= len(lls) <= 30 and all(b >= a - 1e-6 for a, b in zip(lls, lls[1:]))

    # the trained model explains its training data better than a uniform one does
    uniform = tmp_path / "u.json"
    uniform.write_text(json.dumps(dict(startprob=[0.5, 0.5], transmat=[[0.5, 0.5]] * 2,
                                       emissionprob=[[1 / 3] * 3] * 2, symbols=["a", "b", "c"])))
    s1 = fasthw6("score", "-m", fitted, seqs)
    s0 = fasthw6("score", "-m", uniform, seqs)
    total = lambda out: sum(float(r[2]) for r in read_csv(out)[1])  # noqa: E731
    assert total(s1.stdout) > total(s0.stdout)


def test_fit_integer_tokens_stdin(tmp_path):
    out = tmp_path / "m.json"
    rng = np.random.default_rng(0)
    text = "\n".join(" ".join(map(str, rng.integers(0, 4, 25))) for _ in range(40)) + "\n"
    r = fasthw6("fit", "-n", 3, "-", "-o", out, "--n-iter", 5, input=text)
    assert r.returncode == 0, r.stderr
    m = json.loads(out.read_text())
    assert np.asarray(m["emissionprob"]).shape == (3, 4) and "symbols" not in m or m.get("symbols") is None


def test_python_dash_m_is_the_same_command():
    r = subprocess.run([sys.executable, "-m", "fasthw6", "score", "-m", MODEL, SEQS],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert_same_table(r.stdout, os.path.join(DATA, "score.golden.csv"))


# --------------------------------------------------------------------------- demo
def test_demo_runs_every_question_and_prints_the_document_table():
    r = fasthw6("demo")
    assert r.returncode == 0, r.stdout + r.stderr
    out = r.stdout
    for q in ("Q1", "Q2", "Q3", "Q4", "Q5"):
        assert re.search(rf"^{q}\b", out, re.M), q
    assert "MISMATCH" not in out and "all checks hold" in out
    q5 = out[out.index("Q5"):].splitlines()[1:12]
    table = [[int(v) for v in ln.split()] for ln in q5]
    assert table == DOC_TABLE
    # Q4: 100 iterations of log-likelihoods, the document's NaN at iteration 97, none here
    assert re.search(r"NaN first occurs at iteration 97", out)
    assert re.search(r"fasthw6 over the same 100 iterations: no NaN", out)
    assert re.search(r"W = \[1(\.0*)?, 0(\.0*)?\]", out) and "lambda = [0.5, 0.5]" in out


def test_demo_q5_alone_matches_the_document_method():
    from fasthw6.conv.reference import doc_subpixel_convolution

    r = fasthw6("demo", "5")
    assert r.returncode == 0, r.stderr
    rows = [[int(v) for v in ln.split()] for ln in r.stdout.splitlines()[1:12]]
    assert rows == DOC_TABLE
    doc = doc_subpixel_convolution(np.array(CONV_A, np.float32), np.array(CONV_K, np.float32))
    assert rows == doc.astype(int).tolist()


# --------------------------------------------------------------------------- bench
def test_bench_report_from_json_and_plot(tmp_path):
    png = tmp_path / "t.png"
    r = fasthw6("bench", "--json", os.path.join(REPO, "bench", "results", "conv.json"),
                "--plot", png, "--bench-dir", os.path.join(REPO, "bench"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("| benchmark | case | implementation |")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_bench_quick_runs_a_suite(tmp_path):
    r = fasthw6("bench", "cli", "--quick", cwd=tmp_path)  # bench/ found from the source tree
    assert r.returncode == 0, r.stderr
    assert re.search(r"\| parse SEQS text \| 2000x500 M=8 \| numba \| .* [\d.]+ [kMG]?B/s \| [\d.]+x python \|", r.stdout)


def test_bench_dir_not_found(tmp_path):
    assert_error(fasthw6("bench", "--bench-dir", tmp_path / "nowhere"),
                 r"benchmark suites not found .*--bench-dir")
    assert_error(fasthw6("bench", "nosuch", "--bench-dir", os.path.join(REPO, "bench")),
                 r"no benchmark suite 'nosuch' .*available: .*cli")


# --------------------------------------------------------------------------- bad input
def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


GOOD = dict(startprob=[0.6, 0.4], transmat=[[0.7, 0.3], [0.2, 0.8]],
            emissionprob=[[0.5, 0.4, 0.1], [0.1, 0.3, 0.6]])


@pytest.mark.parametrize("model_text, patterns", [
    ('{"startprob": [0.5, 0.5],\n "transmat": [[1, 0] [0, 1]]}', [r"m.json:2: malformed JSON"]),
    ("[1, 2]", [r"m.json:1: expected a JSON object"]),
    ('{"startprob": [1.0]}', [r"m.json:1: missing key\(s\) transmat, emissionprob"]),
    (json.dumps(dict(GOOD, transmat=[[0.7, 0.3], [0.2, 0.7]]), indent=1),
     [r"m.json:\d+: invalid model: .*transmat.*row 1"]),
    (json.dumps(dict(GOOD, startprob=[1.2, -0.2]), indent=1), [r"m.json:2: invalid model: .*startprob"]),
    (json.dumps(dict(GOOD, emissionprob=[[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]])),
     [r"m.json:1: invalid model: .*emissionprob"]),
])
def test_bad_model_file(tmp_path, model_text, patterns):
    model = _write(tmp_path, "m.json", model_text)
    out = tmp_path / "out.csv"
    assert_error(fasthw6("score", "-m", model, SEQS, "-o", out), *patterns)
    assert not out.exists()
    assert os.listdir(tmp_path) == ["m.json"]  # no temporary left behind either


def test_invalid_probability_row_line_number(tmp_path):
    model = _write(tmp_path, "m.json", json.dumps(dict(GOOD, transmat=[[0.7, 0.3], [0.2, 0.7]]), indent=1))
    r = fasthw6("score", "-m", model, SEQS)
    # json indent=1 puts row 1 of transmat, "[0.2, 0.7]", on lines 11-14: the message points at its start
    assert open(model).read().splitlines()[10:12] == ["  [", "   0.2,"]
    assert_error(r, r"^fasthw6 score: error: .*m.json:11: invalid model: .*transmat.*row 1")


def test_missing_files(tmp_path):
    assert_error(fasthw6("score", "-m", tmp_path / "none.json", SEQS), r"none.json: no such model file")
    assert_error(fasthw6("score", "-m", MODEL, tmp_path / "none.txt"), r"none.txt: no such file")
    assert_error(fasthw6("decode", "-m", MODEL, tmp_path / "none.txt"), r"none.txt: no such file")
    assert_error(fasthw6("fit", "-n", 2, tmp_path / "none.txt", "-o", tmp_path / "m.json"),
                 r"none.txt: no such file")
    assert_error(fasthw6("sample", "-m", tmp_path / "none.json", "-n", 2, "-l", 3), r"no such model file")
    assert_error(fasthw6("score", "-m", MODEL, SEQS, "-o", tmp_path / "nodir" / "o.csv"),
                 r"directory .*nodir does not exist")


def test_token_outside_alphabet_leaves_no_partial_output(tmp_path):
    # the bad line comes after more than one chunk has been scored
    good = "0 1 2\n" * 50
    seqs = _write(tmp_path, "s.txt", good + "0 1\n1 3 0\n" + good)
    out = tmp_path / "out.csv"
    for cmd in ("score", "decode"):
        r = fasthw6(cmd, "-m", MODEL, seqs, "-o", out, "--chunk-size", "64")
        assert_error(r, r"s.txt:52: token '3' is not a symbol of the model \(a, b, c\) or an integer in \[0, 3\)")
        assert not out.exists()
    assert sorted(os.listdir(tmp_path)) == ["s.txt"]
    assert_error(fasthw6("score", "-m", MODEL, "-", input="a b\nb z\n"), r"<stdin>:2: token 'z'")


def test_existing_output_is_kept_on_failure(tmp_path):
    out = tmp_path / "out.csv"
    out.write_text("previous\n")
    seqs = _write(tmp_path, "s.txt", "0 1\nx\n")
    assert_error(fasthw6("score", "-m", MODEL, seqs, "-o", out), r"s.txt:2: token 'x'")
    assert out.read_text() == "previous\n"


@pytest.mark.parametrize("args, pattern", [
    (["score", "-m", MODEL, SEQS, "--chunk-size", "lots"], r"--chunk-size: expected a size"),
    (["fit", "-n", "0", SEQS, "-o", "x.json"], r"expected a positive integer, got 0"),
    (["sample", "-m", MODEL, "-n", "3", "-l", "-1"], r"expected a positive integer"),
    (["frobnicate"], r"invalid choice: 'frobnicate'"),
])
def test_bad_arguments(tmp_path, args, pattern):
    r = fasthw6(*args, cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert re.search(pattern, r.stderr), r.stderr


def test_fit_empty_input(tmp_path):
    seqs = _write(tmp_path, "empty.txt", "\n\n")
    assert_error(fasthw6("fit", "-n", 2, seqs, "-o", tmp_path / "m.json"), r"empty.txt: no sequences")
    assert not (tmp_path / "m.json").exists()


# --------------------------------------------------------------------------- review 9
def test_npz_lengths_whose_int64_sum_wraps(tmp_path):
    # each length fits int64, the int64 sum wraps to len(X): used to segfault score (exit 139)
    p = tmp_path / "wrap.npz"
    np.savez(p, X=np.array([0, 1, 2]), lengths=np.array([2**62, 2**62, 2**62, 2**62 + 3]))
    msg = r"wrap.npz: lengths sum to 18446744073709551619 but X holds 3 symbols"
    assert_error(fasthw6("score", "-m", MODEL, p), msg)
    assert_error(fasthw6("decode", "-m", MODEL, p), msg)
    assert_error(fasthw6("fit", "-n", 2, p, "-o", tmp_path / "m.json"), msg)
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("symbols, pattern", [
    (["", "c"], r"m.json:\d+: invalid model: symbols\[0\] is empty"),
    (["a b", "c"], r"m.json:\d+: invalid model: symbols\[0\] = 'a b' contains whitespace"),
    (["a", "a"], r"m.json:\d+: invalid model: symbols must be distinct"),
])
def test_model_symbols_that_would_not_round_trip(tmp_path, symbols, pattern):
    one = dict(startprob=[1.0], transmat=[[1.0]], emissionprob=[[0.5, 0.5]], symbols=symbols)
    model = _write(tmp_path, "m.json", json.dumps(one, indent=1))
    assert_error(fasthw6("sample", "-m", model, "-n", 2, "-l", 3, "-o", tmp_path / "s.txt"), pattern)
    assert not (tmp_path / "s.txt").exists()


@pytest.mark.parametrize("symbols, pattern", [
    ("a b,c,d", r"--symbols\[0\] = 'a b' contains whitespace"),
    ("x,,y", r"--symbols\[1\] is empty"),
    ("a,b,a", r"--symbols must be distinct"),
])
def test_fit_symbols_option_validated(tmp_path, symbols, pattern):
    out = tmp_path / "m.json"
    assert_error(fasthw6("fit", "-n", 2, SEQS, "-o", out, "--symbols", symbols), pattern)
    assert not out.exists()


def test_outputs_get_open_modes_and_write_through_symlinks(tmp_path):
    import stat

    def mode(p):
        return stat.S_IMODE(os.stat(p).st_mode)

    old = os.umask(0o027)  # the command inherits it
    try:
        new = {"score": tmp_path / "new.csv", "fit": tmp_path / "new.json", "sample": tmp_path / "new.txt"}
        assert fasthw6("score", "-m", MODEL, SEQS, "-o", new["score"]).returncode == 0
        assert fasthw6("fit", "-n", 2, SEQS, "-o", new["fit"], "--n-iter", 2).returncode == 0
        assert fasthw6("sample", "-m", MODEL, "-n", 2, "-l", 3, "-o", new["sample"]).returncode == 0
        for p in new.values():
            assert mode(p) == 0o640, (p, oct(mode(p)))  # 0o666 & ~umask, as open() gives
        kept = tmp_path / "kept.csv"
        kept.write_text("old\n")
        os.chmod(kept, 0o664)
        assert fasthw6("score", "-m", MODEL, SEQS, "-o", kept).returncode == 0
        assert mode(kept) == 0o664 and kept.read_text().startswith("index,")
        target, link = tmp_path / "target.json", tmp_path / "link.json"
        target.write_text("old\n")
        os.chmod(target, 0o644)
        link.symlink_to(target.name)
        assert fasthw6("fit", "-n", 2, SEQS, "-o", link, "--n-iter", 2).returncode == 0
        assert link.is_symlink() and os.readlink(link) == target.name
        assert "emissionprob" in json.loads(target.read_text()) and mode(target) == 0o644
        link2 = tmp_path / "link.csv"
        link2.symlink_to(kept)
        assert fasthw6("score", "-m", MODEL, SEQS, "-o", link2).returncode == 0
        assert link2.is_symlink() and mode(kept) == 0o664
    finally:
        os.umask(old)
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".part")]


@pytest.mark.parametrize("args, pattern", [
    (["score", "-m", MODEL, SEQS, "--chunk-size", "100G"], r"argument --chunk-size: expected at most 1G, got '100G'"),
    (["score", "-m", MODEL, SEQS, "--chunk-size", "99999999999999999999999"], r"--chunk-size: expected at most 1G"),
    (["sample", "-m", MODEL, "-n", "100000000000", "-l", "100000000000"],
     r"argument -l/--length: expected at most 2147483647 symbols per sequence"),
    (["sample", "-m", MODEL, "-n", "2", "-l", "99999999999999999999"], r"-l/--length: expected at most"),
    (["sample", "-m", MODEL, "-n", "2", "-l", "3", "--seed", "-1"],
     r"argument --seed: expected an integer in \[0, 2\*\*32 - 1\], got -1"),
    (["fit", "-n", "2", SEQS, "-o", "m.json", "--seed", "-1"], r"argument --seed: expected an integer"),
    (["fit", "-n", "2", SEQS, "-o", "m.json", "--seed", str(2**32)], r"argument --seed: expected an integer"),
])
def test_argument_bounds(tmp_path, args, pattern):
    r = fasthw6(*args, cwd=tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert re.search(pattern, r.stderr.splitlines()[-1]), r.stderr
    assert os.listdir(tmp_path) == []


def test_chunk_size_up_to_1g_reads_a_small_file(tmp_path):
    r = fasthw6("score", "-m", MODEL, SEQS, "--chunk-size", "1G")
    assert r.returncode == 0 and r.stdout.startswith("index,length,log_likelihood\n0,3,")


def test_fit_empty_sequences_npz(tmp_path):
    p = tmp_path / "zeros.npz"
    np.savez(p, X=np.array([], int), lengths=np.array([0, 0]))
    assert_error(fasthw6("fit", "-n", 2, p, "-o", tmp_path / "m.json"),
                 r"zeros.npz: no symbols to train on \(all 2 sequences are empty\)")


def test_fit_n_features_names_the_bad_token(tmp_path):
    seqs = _write(tmp_path, "negfit.txt", "0 1 2\n-1 0\n")
    assert_error(fasthw6("fit", "-n", 2, seqs, "-o", tmp_path / "m.json", "--n-features", 3),
                 r"negfit.txt:2: token '-1' is not an integer in \[0, 3\)")
    # names whose sorted alphabet has n_features entries still train
    names = _write(tmp_path, "names.txt", "a b c\nc a\n")
    r = fasthw6("fit", "-n", 2, names, "-o", tmp_path / "m.json", "--n-features", 3, "--n-iter", 2)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "m.json").read_text())["symbols"] == ["a", "b", "c"]


@pytest.mark.parametrize("text, pattern", [
    ("[1, 2]", r"b.json: not pytest-benchmark JSON: expected an object whose 'benchmarks' is a list"),
    ('{"benchmarks": [1]}', r"b.json: not pytest-benchmark JSON"),
    ('{"benchmarks": 3}', r"b.json: not pytest-benchmark JSON"),
    ('{"benchmarks": [{"extra_info": {"impl": "x"}}]}', r"not pytest-benchmark JSON with fasthw6's extra_info"),
])
def test_bench_json_structurally_wrong(tmp_path, text, pattern):
    p = _write(tmp_path, "b.json", text)
    assert_error(fasthw6("bench", "--json", p, "--bench-dir", os.path.join(REPO, "bench")), pattern)


# --------------------------------------------------------------------------- issue 17
def _sha256(path):
    import hashlib

    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# (command, output option, input the output names): every writing subcommand, every input kind
SAME_FILE_CASES = [
    ("score", "-o", "seqs"), ("score", "-o", "model"),
    ("decode", "-o", "seqs"), ("decode", "-o", "model"),
    ("fit", "-o", "seqs"),
    ("sample", "-o", "model"),
    ("bench", "--plot", "json"), ("bench", "--save-json", "json"),
]
ARG_NAMES = {"-o": "-o/--output", "seqs": "SEQS", "model": "-m/--model", "json": "--json",
             "--plot": "--plot", "--save-json": "--save-json"}


def _command(cmd, seqs, model, bench_json):
    """Arguments of ``cmd`` reading the given inputs (relative or absolute paths), no output."""
    return {"score": ["score", "-m", model, seqs],
            "decode": ["decode", "-m", model, seqs],
            "fit": ["fit", "-n", 2, seqs, "--n-iter", 2],
            "sample": ["sample", "-m", model, "-n", 2, "-l", 3],
            "bench": ["bench", "--json", bench_json, "--bench-dir", os.path.join(REPO, "bench")]}[cmd]


@pytest.mark.parametrize("how", ["same path", "./path", "symlink", "hard link"])
@pytest.mark.parametrize("cmd, opt, victim", SAME_FILE_CASES)
def test_output_that_is_an_input_is_refused(tmp_path, cmd, opt, victim, how):
    import shutil

    files = {"seqs": "seqs.txt", "model": "model.json", "json": "bench.json"}
    shutil.copy(SEQS, tmp_path / files["seqs"])
    shutil.copy(MODEL, tmp_path / files["model"])
    shutil.copy(os.path.join(REPO, "bench", "results", "conv.json"), tmp_path / files["json"])
    before = {name: _sha256(tmp_path / name) for name in files.values()}
    target = files[victim]
    if how == "same path":
        out = str(tmp_path / target)
    elif how == "./path":  # inputs named relative to the working directory, output as ./name
        out = "./" + target
    elif how == "symlink":
        out = str(tmp_path / "link")
        os.symlink(target, out)
    else:
        out = str(tmp_path / "link")
        os.link(tmp_path / target, out)
    names = {k: (v if how == "./path" else str(tmp_path / v)) for k, v in files.items()}
    listing = sorted(os.listdir(tmp_path))

    r = fasthw6(*_command(cmd, names["seqs"], names["model"], names["json"]), opt, out, cwd=tmp_path)
    assert_error(r, rf"^fasthw6 {cmd}: error: output '{re.escape(out)}' \({re.escape(ARG_NAMES[opt])}\) "
                    rf"is the same file as input '{re.escape(names[victim])}' "
                    rf"\({re.escape(ARG_NAMES[victim])}\); choose another output path$")
    assert {name: _sha256(tmp_path / name) for name in files.values()} == before
    assert sorted(os.listdir(tmp_path)) == listing  # no temporary left behind
    if how == "symlink":
        assert os.path.islink(out) and os.readlink(out) == target


def test_output_that_is_the_input_directory_is_refused(tmp_path):
    d = tmp_path / "d"
    d.mkdir()
    assert_error(fasthw6("score", "-m", MODEL, d, "-o", f"{d}/"),
                 rf"output '{re.escape(str(d))}/' \(-o/--output\) is the same directory as input "
                 rf"'{re.escape(str(d))}' \(SEQS\)")
    assert os.listdir(d) == []


@pytest.mark.parametrize("args, stdin, out", [
    (["score", "-m", MODEL, "-", "-o", "-"], True, None),
    (["decode", "-m", MODEL, "-", "-o", "fresh.csv"], True, "fresh.csv"),
    (["fit", "-n", 2, "-", "-o", "fresh.json", "--n-iter", 2], True, "fresh.json"),
    (["sample", "-m", MODEL, "-n", 2, "-l", 3, "-o", "-"], False, None),
    (["score", "-m", MODEL, SEQS, "-o", "fresh.csv"], False, "fresh.csv"),
    (["score", "-m", MODEL, "/dev/null", "-o", "/dev/null"], False, None),  # a device: written through
])
def test_stdio_and_fresh_outputs_still_work(tmp_path, args, stdin, out):
    with open(SEQS) as f:
        text = f.read()
    before = (_sha256(SEQS), _sha256(MODEL))
    r = fasthw6(*args, input=text if stdin else None, cwd=tmp_path)
    assert r.returncode == 0 and "error" not in r.stderr, r.stderr
    if out is not None:
        assert (tmp_path / out).stat().st_size > 0 and r.stdout == ""
    elif "/dev/null" not in args:
        assert r.stdout
    assert (_sha256(SEQS), _sha256(MODEL)) == before


@pytest.mark.parametrize("cmd", ["score", "decode"])
def test_output_that_is_the_redirected_stdin_is_refused(tmp_path, cmd):
    """``fasthw6 score -m m.json - -o seqs.txt < seqs.txt``: standard input is the output file."""
    import hashlib

    seqs = tmp_path / "seqs.txt"
    shutil.copy(SEQS, seqs)
    before = hashlib.sha256(seqs.read_bytes()).hexdigest()
    with open(seqs, "rb") as stdin:
        r = subprocess.run([EXE, cmd, "-m", MODEL, "-", "-o", str(seqs)], stdin=stdin,
                           capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == (f"fasthw6 {cmd}: error: output {str(seqs)!r} (-o/--output) is the "
                                f"same file as input '<standard input>' (SEQS); choose another "
                                f"output path")
    assert hashlib.sha256(seqs.read_bytes()).hexdigest() == before
    # the same redirection to another output works
    with open(seqs, "rb") as stdin:
        ok = subprocess.run([EXE, cmd, "-m", MODEL, "-", "-o", str(tmp_path / "out.csv")],
                            stdin=stdin, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
