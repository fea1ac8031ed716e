"""The ``fasthw6`` command with the continuous models: FRAMES inputs (.npy, .npz, CSV text),
``fit --model gaussian``, and score/decode/sample choosing the class from the model file.

Round trips run the installed entry point in a subprocess, as ``tests/test_cli.py`` does; the
many bad-input cases call ``fasthw6.cli.main`` in this process (the same code, no start-up).
Kernels: ``--backend cython`` (no numba compilation).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from fasthw6 import cli
from fasthw6.hmm import MODEL_TYPES, GaussianHMM

DATA = os.path.join(os.path.dirname(__file__), "data", "cli")
CATEGORICAL = os.path.join(DATA, "model.json")
SEQS = os.path.join(DATA, "seqs.txt")
EXE = os.path.join(os.path.dirname(sys.executable), "fasthw6")
BACKEND = ("--backend", "cython")

# two well separated 2-D states; 6 sequences of 40 frames
MEANS = np.array([[0.0, 0.0], [6.0, 6.0]])
TRANS = np.array([[0.9, 0.1], [0.2, 0.8]])


def fasthw6(*args, input=None, cwd=None):
    if not os.path.exists(EXE):
        pytest.fail(f"{EXE} not found: install the package first (pip install -e . --no-build-isolation)")
    return subprocess.run([EXE, *map(str, args)], input=input, capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def assert_error(r, *patterns):
    """Exit status 2, one line on stderr, no traceback, nothing on stdout."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    err = r.stderr.strip()
    assert "Traceback" not in r.stderr and len(err.splitlines()) == 1, r.stderr
    assert r.stdout == ""
    for p in patterns:
        assert re.search(p, err), (p, err)


@pytest.fixture
def run_main(capsys):
    """``fasthw6.cli.main`` in this process: (status, stdout, stderr); the process-wide backend
    that ``--backend`` sets is restored afterwards."""
    from fasthw6 import _backend

    saved = _backend._global_choice

    def run(*args):
        status = cli.main([*map(str, args), *BACKEND])
        out, err = capsys.readouterr()
        return status, out, err

    yield run
    _backend._global_choice = saved


def assert_main_error(result, *patterns):
    status, out, err = result
    assert status == 2 and out == "", (status, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for p in patterns:
        assert re.search(p, lines[0]), (p, lines[0])


def make_data(seed=0, n_seqs=6, length=40):
    """(X, lengths) drawn from a 2-state chain with MEANS and unit variances."""
    rng = np.random.default_rng(seed)
    xs = []
    for _ in range(n_seqs):
        s = [int(rng.integers(2))]
        for _ in range(length - 1):
            s.append(int(rng.random() < TRANS[s[-1], 1]))
        xs.append(MEANS[s] + rng.normal(size=(length, 2)))
    return np.concatenate(xs), np.full(n_seqs, length, np.int64)


def write_frames(path, X, lengths, fmt):
    """Write (X, lengths) as FRAMES in ``fmt``: npy (+ companion lengths), npz or csv."""
    path = str(path)
    if fmt == "npy":
        np.save(path, X)
        np.save(path[:-4] + ".lengths.npy", lengths)
    elif fmt == "npz":
        np.savez(path, X=X, lengths=lengths)
    else:
        seqs = np.split(X, np.cumsum(lengths)[:-1])
        with open(path, "w") as f:
            f.write("\n\n".join("\n".join(",".join(map(repr, r)) for r in s.tolist())
                                for s in seqs) + "\n")
    return path


def read_table(text):
    lines = text.splitlines()
    return lines[0], [ln.split(",") for ln in lines[1:]]


# --------------------------------------------------------------------------- round trips
@pytest.mark.parametrize("cov, fmt, sample_fmt", [
    ("diag", "npy", "npy"), ("full", "npz", "npz"), ("full", "csv", "csv"), ("diag", "csv", "npz"),
])
def test_fit_score_decode_sample_round_trip(tmp_path, cov, fmt, sample_fmt):
    X, lengths = make_data()
    data = write_frames(tmp_path / f"data.{fmt}", X, lengths, fmt)
    model_path = tmp_path / "m.json"
    r = fasthw6("fit", "--model", "gaussian", "--covariance-type", cov, "-n", 2, data,
                "-o", model_path, "--n-iter", 30, "--seed", 1, "-v", *BACKEND)
    assert r.returncode == 0, r.stderr
    assert "6 sequences, 240 frames of 2 features" in r.stderr
    lls = [float(v) for v in re.findall(r"iteration \d+: log-likelihood (\S+)", r.stderr)]
    assert len(lls) >= 2 and all(b >= a - 1e-6 for a, b in zip(lls, lls[1:]))
    obj = json.loads(model_path.read_text())
    assert obj["type"] == "gaussian" and obj["covariance_type"] == cov
    model = GaussianHMM.load(model_path)
    order = np.argsort(model.means_[:, 0])
    np.testing.assert_allclose(model.means_[order], MEANS, atol=0.5)  # it learned the states

    # score: the saved model's score_sequences, sequence by sequence
    r = fasthw6("score", "-m", model_path, data, *BACKEND)
    assert r.returncode == 0, r.stderr
    head, rows = read_table(r.stdout)
    assert head == "index,length,log_likelihood"
    assert [(int(a), int(b)) for a, b, _ in rows] == list(enumerate(lengths.tolist()))
    np.testing.assert_allclose([float(c) for *_, c in rows], model.score_sequences(X, lengths),
                               rtol=1e-10)

    # decode: each sequence's Viterbi path and log-probability
    out = tmp_path / "d.csv"
    r = fasthw6("decode", "-m", model_path, data, "-o", out, *BACKEND)
    assert r.returncode == 0 and r.stdout == "", r.stderr
    head, rows = read_table(out.read_text())
    assert head == "index,length,log_probability,states" and len(rows) == len(lengths)
    for row, x in zip(rows, np.split(X, np.cumsum(lengths)[:-1])):
        lp, states = model.decode(x)
        assert row[3].split() == [str(s) for s in states]
        np.testing.assert_allclose(float(row[2]), lp, rtol=1e-10)

    # sample: the model's own draws, one seed per sequence from --seed, in the output's format
    sampled = tmp_path / f"s.{sample_fmt}"
    r = fasthw6("sample", "-m", model_path, "-n", 3, "-l", 5, "--seed", 7, "-o", sampled)
    assert r.returncode == 0 and r.stdout == "", r.stderr
    rng = np.random.default_rng(7)
    want = np.concatenate([model.sample(5, random_state=int(rng.integers(2**31)))[0]
                           for _ in range(3)])
    if sample_fmt == "npy":
        got, got_len = np.load(sampled), np.load(tmp_path / "s.lengths.npy")
    elif sample_fmt == "npz":
        with np.load(sampled) as z:
            got, got_len = z["X"], z["lengths"]
    else:
        text = sampled.read_text()
        assert text.count("\n\n") == 2 and len(text.strip().splitlines()) == 3 * 5 + 2
        got = np.array([[float(v) for v in ln.split(",")] for ln in text.splitlines() if ln])
        got_len = np.array([5, 5, 5])
    np.testing.assert_array_equal(got, want)  # CSV floats are written to read back exactly
    assert got_len.tolist() == [5, 5, 5]
    # ... and the sample reads back as FRAMES (npy: through its companion lengths array)
    r = fasthw6("score", "-m", model_path, sampled, *BACKEND)
    assert r.returncode == 0, r.stderr
    np.testing.assert_allclose([float(row[2]) for row in read_table(r.stdout)[1]],
                               model.score_sequences(want, [5, 5, 5]), rtol=1e-10)


def test_same_scores_from_every_format_and_stdin(tmp_path):
    X, lengths = make_data(seed=3, n_seqs=3, length=10)
    model = GaussianHMM(2, "full", init_params="")
    model.startprob_, model.transmat_, model.means_ = np.array([0.5, 0.5]), TRANS, MEANS
    model.covars_ = np.array([[[1.0, 0.3], [0.3, 1.0]], [[2.0, 0.0], [0.0, 0.5]]])
    model.save(tmp_path / "m.json")
    want = model.score_sequences(X, lengths)
    csv = write_frames(tmp_path / "d.csv", X, lengths, "csv")
    ws = tmp_path / "d.txt"  # whitespace-separated fields, CRLF line ends, extra blank lines
    ws.write_text(open(csv).read().replace(",", "  ").replace("\n\n", "\r\n\n\n"))
    np.save(tmp_path / "flat.npy", X)
    (tmp_path / "lens.txt").write_text("10\n10, 10\n")
    for args, stdin in [([write_frames(tmp_path / "d.npy", X, lengths, "npy")], None),
                        ([write_frames(tmp_path / "d.npz", X, lengths, "npz")], None),
                        ([csv], None), ([ws], None), (["-"], open(csv).read()),
                        ([tmp_path / "flat.npy", "--lengths", tmp_path / "lens.txt"], None)]:
        r = fasthw6("score", "-m", tmp_path / "m.json", *args, "--chunk-size", 64, *BACKEND,
                    input=stdin)
        assert r.returncode == 0, (args, r.stderr)
        np.testing.assert_allclose([float(row[2]) for row in read_table(r.stdout)[1]], want,
                                   rtol=1e-10, err_msg=str(args))
    # a .npy without lengths is one sequence
    r = fasthw6("score", "-m", tmp_path / "m.json", tmp_path / "flat.npy", *BACKEND)
    (row,) = read_table(r.stdout)[1]
    assert row[:2] == ["0", "30"]
    np.testing.assert_allclose(float(row[2]), model.score(X), rtol=1e-10)


def test_categorical_is_still_the_default_and_samples_npz(tmp_path):
    out = tmp_path / "s.npz"
    r = fasthw6("sample", "-m", CATEGORICAL, "-n", 4, "-l", 6, "-o", out)
    assert r.returncode == 0, r.stderr
    with np.load(out) as z:
        assert z["X"].shape == (24,) and z["lengths"].tolist() == [6] * 4
    r = fasthw6("fit", "-n", 2, out, "-o", tmp_path / "m.json", "--n-iter", 3, *BACKEND)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "m.json").read_text())["type"] == "categorical"


# --------------------------------------------------------------------------- bad FRAMES
@pytest.mark.parametrize("text, pattern", [
    ("1,2\n3,x\n", r"d.csv:2: field 2 'x' is not a number"),
    ("1,2\n3,4\n\n5\n", r"d.csv:4: 1 field, but line 1 has 2 \(every frame needs the same number"),
    ("1 2\n3 4 5\n", r"d.csv:2: 3 fields, but line 1 has 2"),
    ("1,2\nnan,3\n", r"d.csv:2: field 1 is 'nan': features must be finite"),
    ("1,2\n3,-inf\n", r"d.csv:2: field 2 is '-inf': features must be finite"),
    ("1,,2\n", r"d.csv:1: field 2 is empty"),
    ("1,2\n1_0,2\n", r"d.csv:2: field 1 '1_0' is not a number"),
])
def test_bad_text_frames(tmp_path, run_main, text, pattern):
    model = tmp_path / "m.json"
    GaussianHMM(2, "diag", n_iter=2, random_state=0).fit(make_data(n_seqs=1)[0]).save(model)
    data = tmp_path / "d.csv"
    data.write_text(text)
    out = tmp_path / "out.csv"
    for cmd in (["score", "-m", model], ["decode", "-m", model]):
        assert_main_error(run_main(*cmd, data, "-o", out), rf"^fasthw6 {cmd[0]}: error: .*{pattern}")
    assert_main_error(run_main("fit", "--model", "gaussian", "-n", 2, data, "-o", out), pattern)
    assert sorted(os.listdir(tmp_path)) == ["d.csv", "m.json"]  # no output, no temporary


def test_bad_binary_frames(tmp_path, run_main):
    model = tmp_path / "m.json"
    GaussianHMM(2, "diag", n_iter=2, random_state=0).fit(make_data(n_seqs=1)[0]).save(model)
    X = np.ones((6, 2))
    cases = []
    bad = X.copy()
    bad[4, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    cases.append(("nan.npy", [], r"nan.npy: X\[4, 1\] is nan: features must be finite"))
    np.save(tmp_path / "cube.npy", np.ones((2, 3, 2)))
    cases.append(("cube.npy", [], r"cube.npy: X must be 2-D \(one row per frame"))
    np.save(tmp_path / "text.npy", np.array(["a", "b"]))
    cases.append(("text.npy", [], r"text.npy: X must hold real numbers"))
    np.savez(tmp_path / "noX.npz", Y=X)
    cases.append(("noX.npz", [], r"noX.npz: missing array X; .* \(found Y\)"))
    np.savez(tmp_path / "short.npz", X=X, lengths=[2, 3])
    cases.append(("short.npz", [], r"short.npz: lengths sum to 5 but X holds 6 frames"))
    np.savez(tmp_path / "both.npz", X=X, lengths=[6])
    np.save(tmp_path / "l.npy", [6])
    cases.append(("both.npz", ["--lengths", tmp_path / "l.npy"], r"both.npz: holds its own lengths"))
    np.save(tmp_path / "x.npy", X)
    (tmp_path / "l.txt").write_text("3\n2\n")
    cases.append(("x.npy", ["--lengths", tmp_path / "l.txt"],
                  r"l.txt: lengths sum to 5 but X holds 6 frames of .*x.npy"))
    (tmp_path / "l2.txt").write_text("3\nthree\n")
    cases.append(("x.npy", ["--lengths", tmp_path / "l2.txt"],
                  r"l2.txt:2: 'three' is not a sequence length"))
    (tmp_path / "t.csv").write_text("1,2\n")
    cases.append(("t.csv", ["--lengths", tmp_path / "l.txt"],
                  r"t.csv: --lengths applies to .npy and .npz inputs; in text, a blank line"))
    np.save(tmp_path / "wide.npy", np.ones((4, 3)))
    cases.append(("wide.npy", [], r"wide.npy: frames have 3 features but the gaussian model "
                                  r"has n_features=2"))
    cases.append(("none.npy", [], r"none.npy: no such file"))
    for name, extra, pattern in cases:
        assert_main_error(run_main("score", "-m", model, tmp_path / name, *extra), pattern)


# --------------------------------------------------------------------------- model types
def test_model_file_of_the_wrong_type_for_the_input(tmp_path, run_main):
    gauss = tmp_path / "g.json"
    GaussianHMM(2, "diag", n_iter=2, random_state=0).fit(make_data(n_seqs=1)[0]).save(gauss)
    X, lengths = make_data(n_seqs=2, length=5)
    npy = write_frames(tmp_path / "d.npy", X, lengths, "npy")
    csv = write_frames(tmp_path / "d.csv", X, lengths, "csv")
    # a categorical model given FRAMES
    assert_main_error(run_main("score", "-m", CATEGORICAL, npy),
                      r"d.npy: a .npy input holds FRAMES, for continuous and count models; a "
                      r"categorical model reads SEQS text or .npz")
    assert_main_error(run_main("decode", "-m", CATEGORICAL, csv), r"d.csv:1: token '.*' is not a symbol")
    assert_main_error(run_main("score", "-m", CATEGORICAL, SEQS, "--lengths", tmp_path / "d.lengths.npy"),
                      r"--lengths applies to the FRAMES inputs of continuous and count models")
    # a Gaussian model given symbol sequences (letters, ragged lines)
    assert_main_error(run_main("score", "-m", gauss, SEQS), r"seqs.txt:\d: .*field")
    # sample options of the other kind
    assert_main_error(run_main("sample", "-m", gauss, "-n", 2, "-l", 3, "--integers"),
                      r"--integers applies to categorical models .*not a gaussian model")
    assert_main_error(run_main("sample", "-m", CATEGORICAL, "-n", 2, "-l", 3, "-o", tmp_path / "c.npy"),
                      r"c.npy: a categorical model writes SEQS text or .npz")
    # a type this fasthw6 does not know, a file without the type's keys, a bad parameter
    obj = json.loads(gauss.read_text())
    for change, pattern in [
        (dict(type="hsmm"), rf"x.json:3: unknown model type 'hsmm'; this fasthw6 reads "
                            rf"{', '.join(sorted(MODEL_TYPES))}"),
        (dict(type=["gaussian"]), r"x.json:3: unknown model type \['gaussian'\]"),
        (dict(means=None), r"x.json:1: invalid model: missing key\(s\) means$"),
        (dict(covars=[[1.0, 1.0], [1.0, -2.0]]), r"x.json:(\d+): invalid model: covars_ of state 1 "
                                                 r"must be positive"),
    ]:
        broken = {k: v for k, v in {**obj, **change}.items() if v is not None}
        (tmp_path / "x.json").write_text(json.dumps(broken, indent=1))
        assert_main_error(run_main("score", "-m", tmp_path / "x.json", npy), pattern)
    # the bad covariance row is the line the message names
    status, _, err = run_main("decode", "-m", tmp_path / "x.json", npy)
    line = int(re.search(r"x.json:(\d+):", err).group(1))
    assert (tmp_path / "x.json").read_text().splitlines()[line - 1].strip() == "["
    assert "-2.0" in "".join((tmp_path / "x.json").read_text().splitlines()[line:line + 3])
    # an old categorical file without "type" still works
    old = {k: v for k, v in json.loads(open(CATEGORICAL).read()).items() if k != "type"}
    (tmp_path / "old.json").write_text(json.dumps(old))
    status, out, err = run_main("score", "-m", tmp_path / "old.json", SEQS)
    assert status == 0 and out.startswith("index,length,log_likelihood\n0,3,"), err


@pytest.mark.parametrize("args, pattern", [
    (["--model", "gaussian", "--n-mix", "2"], r"--n-mix does not apply to --model gaussian "
                                               r"\(GaussianHMM takes no n_mix\)"),
    (["--covariance-type", "full"], r"--covariance-type does not apply to --model categorical "
                                    r"\(CategoricalHMM takes no covariance_type\); it applies to "
                                    r".*--model gaussian"),
    (["--model", "gaussian", "--n-features", "3"], r"--n-features does not apply to --model gaussian"),
    (["--model", "gaussian", "--symbols", "a,b"], r"--symbols applies to categorical models"),
    (["--model", "gaussian", "--param", "bogus=1"], r"--param bogus: GaussianHMM takes no "
                                                    r"parameter 'bogus'; it takes .*min_covar"),
    (["--model", "gaussian", "--param", "n_iter=3"], r"--param n_iter: set it with --n-iter"),
    (["--model", "gaussian", "--param", "min_covar"], r"--param: expected NAME=VALUE, got 'min_covar'"),
    ([], r"d.npy: a .npy input holds FRAMES, for continuous and count models \(--model gaussian"),
    (["--model", "gaussian", "-n", "50"], r"d.npy: X has 10 samples, fewer than n_components=50"),
])
def test_fit_options_per_model_type(tmp_path, run_main, args, pattern):
    X, lengths = make_data(n_seqs=2, length=5)
    npy = write_frames(tmp_path / "d.npy", X, lengths, "npy")
    out = tmp_path / "m.json"
    n = [] if "-n" in args else ["-n", 2]
    assert_main_error(run_main("fit", *n, npy, "-o", out, *args), pattern)
    assert not out.exists()


def test_fit_param_and_a_type_registered_later(tmp_path, run_main, monkeypatch):
    X, lengths = make_data(n_seqs=3, length=20)
    npy = write_frames(tmp_path / "d.npy", X, lengths, "npy")
    status, _, err = run_main("fit", "--model", "gaussian", "-n", 2, npy, "-o", tmp_path / "a.json",
                              "--param", "min_covar=0.25", "--param", "params=stm", "--n-iter", 3)
    assert status == 0, err
    m = GaussianHMM.load(tmp_path / "a.json")
    assert m.min_covar == 0.25 and np.all(m._covars_ >= 0.25)

    class Wide(GaussianHMM):  # a model class registered after the CLI was written
        _TYPE = "wide"

    monkeypatch.setitem(MODEL_TYPES, "wide", Wide)
    status, _, err = run_main("fit", "--model", "wide", "--covariance-type", "spherical", "-n", 2,
                              npy, "-o", tmp_path / "w.json", "--n-iter", 3)
    assert status == 0, err
    assert json.loads((tmp_path / "w.json").read_text())["type"] == "wide"
    status, out, err = run_main("score", "-m", tmp_path / "w.json", npy)
    assert status == 0, err
    np.testing.assert_allclose([float(r[2]) for r in read_table(out)[1]],
                               Wide.load(tmp_path / "w.json").score_sequences(X, lengths), rtol=1e-10)
