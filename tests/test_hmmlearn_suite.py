"""hmmlearn's own test modules, as installed with hmmlearn, run against fasthw6's estimators.

A pytest process of its own runs ``--pyargs hmmlearn.tests.<module>`` with the plugin
``tests/_hmmlearn_swap.py``, which puts fasthw6's ``CategoricalHMM``, ``GaussianHMM``, ``GMMHMM``,
``MultinomialHMM``, ``PoissonHMM`` and ``ConvergenceMonitor`` (and fasthw6's ``BaseHMM`` engine,
for test_base.py's stub subclass) in the place of hmmlearn's before the test modules import
them, poisons hmmlearn's own estimators, and reports what the modules saw and how each test
ended.  Nothing of hmmlearn's test code is copied here: only the tests left out, each with its
reason (``EXCLUDED``).

The seed is fixed (``HMMLEARN_SEED``, read by hmmlearn's tests/conftest.py; 42 unless set) and
the kernels are the Cython ones (``FASTHW6_HMMLEARN_BACKEND``, default ``cython``), so nothing
is compiled.
"""
from __future__ import annotations

import collections
import json
import os
import pathlib
import subprocess
import sys

import pytest

pytest.importorskip("hmmlearn")
hmmlearn_tests = pytest.importorskip("hmmlearn.tests")  # hmmlearn installs its test modules

import fasthw6  # noqa: E402

TESTS = pathlib.Path(__file__).resolve().parent
ROOT = TESTS.parent
SITE = pathlib.Path(hmmlearn_tests.__file__).resolve().parents[2]  # the folder holding hmmlearn/

MODULES = ("test_gaussian_hmm", "test_gmm_hmm_new", "test_poisson_hmm", "test_multinomial_hmm",
           "test_base", "test_categorical_hmm")

_G = "hmmlearn/tests/test_gaussian_hmm.py::TestGaussianHMMWith{}Covars::"
_B = "hmmlearn/tests/test_base.py::"
_C = "hmmlearn/tests/test_categorical_hmm.py::TestCategoricalHMM::"
_HMMC = ("calls hmmlearn's private compiled module _hmmc ({}) directly, with no estimator: it "
         "tests hmmlearn's kernels, not fasthw6 (fasthw6's engine runs the same Wikipedia "
         "example in TestBaseAgainstWikipedia::test_score_samples, which runs)")

# test id (relative to the folder holding hmmlearn/) -> why it is left out
EXCLUDED = {
    _B + "TestBaseAgainstWikipedia::test_do_forward_scaling_pass": _HMMC.format("forward_scaling"),
    _B + "TestBaseAgainstWikipedia::test_do_forward_pass": _HMMC.format("forward_log"),
    _B + "TestBaseAgainstWikipedia::test_do_backward_scaling_pass":
        _HMMC.format("forward_scaling, backward_scaling"),
    _B + "TestBaseAgainstWikipedia::test_do_backward_log_pass": _HMMC.format("backward_log"),
    _B + "TestBaseAgainstWikipedia::test_do_viterbi_pass": _HMMC.format("viterbi"),
    _G.format("Spherical") + "test_underflow_from_scaling[scaling]":
        "expects fit to raise ValueError when hmmlearn's implementation='scaling' underflows on "
        "an outlier (a frame of probability 0 in every state); fasthw6 has one implementation "
        "that rescales every frame by its maximum log-likelihood, so the same data fits (the "
        "[log] variant, which runs, checks that it does)",
}

EXPECTED_SWAP = {
    "CategoricalHMM": "fasthw6.hmm.estimator.CategoricalHMM",
    "GaussianHMM": "fasthw6.hmm.gaussian.GaussianHMM",
    "GMMHMM": "fasthw6.hmm.gmm.GMMHMM",
    "MultinomialHMM": "fasthw6.hmm.counts.MultinomialHMM",
    "PoissonHMM": "fasthw6.hmm.counts.PoissonHMM",
    "ConvergenceMonitor": "fasthw6.hmm.monitor.ConvergenceMonitor",
    "BaseHMM": "_hmmlearn_swap.StubBaseHMM",
}


def _module_of(nodeid):
    return nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")


@pytest.mark.slow
def test_hmmlearn_own_tests_pass_on_fasthw6(tmp_path):
    backend = os.environ.get("FASTHW6_HMMLEARN_BACKEND", "cython")
    if backend not in fasthw6.available_backends():
        required = os.environ.get("FASTHW6_REQUIRE_BACKENDS", "").split(",")
        if backend in required:
            pytest.fail(f"backend {backend} required but not available")
        pytest.skip(f"backend {backend} not available")
    report = tmp_path / "report.json"
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # none of this project's settings
    env = dict(os.environ)
    env.pop("PYTEST_ADDOPTS", None)
    env.update(PYTHONPATH=os.pathsep.join([str(TESTS), str(ROOT)]
                                          + [p for p in [env.get("PYTHONPATH")] if p]),
               FASTHW6_BACKEND=backend, FASTHW6_BACKGROUND_COMPILE="0",
               FASTHW6_SWAP_REPORT=str(report))
    env.setdefault("HMMLEARN_SEED", "42")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")  # hundreds of small fits: threads only contend
    cmd = [sys.executable, "-m", "pytest", "-c", str(tmp_path / "pytest.ini"),
           "--rootdir", str(SITE), "-p", "_hmmlearn_swap", "-p", "no:cacheprovider",
           "-p", "no:xdist", "-q", "-rfE", "--tb=short",
           "--pyargs", *(f"hmmlearn.tests.{m}" for m in MODULES),
           *(f"--deselect={nodeid}" for nodeid in EXCLUDED)]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    out = proc.stdout[-6000:] + proc.stderr[-3000:]
    assert report.exists(), f"the run wrote no report (exit {proc.returncode}):\n{out}"
    rep = json.loads(report.read_text())

    # the swap took effect, in every module
    assert rep["swapped"] == EXPECTED_SWAP
    assert rep["backend"] == backend and rep["seed"] == env["HMMLEARN_SEED"]
    assert sorted(rep["modules"]) == sorted(f"hmmlearn.tests.{m}" for m in MODULES), out
    for mod, seen in rep["modules"].items():
        assert seen, f"{mod} uses none of the swapped classes"
        for name, cls in seen.items():
            assert cls == EXPECTED_SWAP[name.removeprefix("hmm.")], (mod, name, cls)

    # exactly the listed tests were left out (a stale or mistyped id would deselect nothing, a
    # short one more than it names)
    assert sorted(rep["deselected"]) == sorted(EXCLUDED)

    outcomes = rep["outcomes"]
    bad = {k: v for k, v in outcomes.items() if v not in ("passed", "xfailed", "xpassed")}
    assert not bad and proc.returncode == 0, f"{bad}\n{out}"

    counts = collections.defaultdict(collections.Counter)
    for nodeid, outcome in outcomes.items():
        counts[_module_of(nodeid)][outcome] += 1
    for nodeid in EXCLUDED:
        counts[_module_of(nodeid)]["deselected"] += 1
    for m in MODULES:
        assert counts[m]["passed"] >= 10, (m, dict(counts[m]))
        print(m, dict(counts[m]))
