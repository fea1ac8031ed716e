"""pytest plugin: run hmmlearn's own installed test modules against fasthw6's estimators.

Loaded with ``-p _hmmlearn_swap`` (``tests/`` on ``PYTHONPATH``) by ``test_hmmlearn_suite.py``,
in a pytest process of its own.  Its ``pytest_configure`` runs before any test module is
collected, so the swap is in place when hmmlearn's test modules run ``from hmmlearn import hmm``
(then ``hmm.GaussianHMM(...)``), ``from ..hmm import GMMHMM`` or
``from hmmlearn.base import BaseHMM, ConvergenceMonitor``:

- ``hmmlearn.hmm.<Name>HMM`` become fasthw6's classes;
- ``hmmlearn.base.ConvergenceMonitor`` becomes fasthw6's;
- ``hmmlearn.base.BaseHMM``, which test_base.py subclasses with a ``_compute_log_likelihood``
  stub, becomes :class:`StubBaseHMM`: fasthw6's ``BaseHMM`` engine (checks, forward-backward,
  Viterbi, sampling, stationary distribution) with hmmlearn's base-class constructor and
  subclass hook mapped onto fasthw6's (``_log_frames``), and nothing else.

So that a run can never test hmmlearn against itself, hmmlearn's own estimators are poisoned
(constructing one raises), and after collection every collected module is checked to see
only fasthw6's classes under hmmlearn's names.  When ``$FASTHW6_SWAP_REPORT`` names a file, the
swap, the checked modules, the deselected tests and every test's outcome are written there as
JSON for the calling test to verify.

Importing this module does nothing (``--doctest-modules`` imports it in the main test run,
where hmmlearn must stay hmmlearn): everything happens in the hooks.
"""
from __future__ import annotations

import json
import os

import numpy as np

from fasthw6.hmm import _base as _fbase
from fasthw6.hmm._checks import _offsets

ESTIMATORS = ("CategoricalHMM", "GaussianHMM", "GMMHMM", "MultinomialHMM", "PoissonHMM")


class StubBaseHMM(_fbase.BaseHMM):
    """fasthw6's ``BaseHMM`` with hmmlearn's base-class constructor and subclass hook
    (``_compute_log_likelihood(X)`` -> the (n_samples, n_components) log-likelihoods), the only
    emission hook test_base.py's ``StubHMM`` defines.  No emission parameters."""

    def __init__(self, n_components=1, startprob_prior=1.0, transmat_prior=1.0,
                 algorithm="viterbi", random_state=None, n_iter=10, tol=1e-2, verbose=False,
                 params="st", init_params="st", implementation="log", dtype=np.float64,
                 backend=None):
        self._common_init(n_components, startprob_prior, transmat_prior, algorithm,
                          random_state, n_iter, tol, verbose, params, init_params,
                          implementation, dtype, backend)

    def _check_emissions(self):
        pass

    def _data(self, X, lengths, fitting=False):
        X = np.asarray(X)
        return X, _offsets(lengths, X.shape[0])

    def _log_frames(self, data):
        # a fresh array: the engine may overwrite the one it is given (frames.scaled_frames),
        # and the stub returns an attribute the test reads again
        return np.array(self._compute_log_likelihood(data), dtype=np.float64, order="C")

    def _compute_log_likelihood(self, X):
        raise NotImplementedError

    def _sample_from_state(self, state, random_state):
        return ()  # hmmlearn's BaseHMM._generate_sample_from_state: no emissions


_state = {"original": {}, "swap": {}, "deselected": [], "outcomes": {}, "modules": {}}


def _name(obj):
    return f"{obj.__module__}.{obj.__qualname__}"


def _poison(cls):
    def __init__(self, *args, **kwargs):
        raise AssertionError(f"hmmlearn's own {_name(cls)} was constructed in a run meant to "
                             f"test fasthw6's classes")
    cls.__init__ = __init__


def pytest_configure(config):
    import hmmlearn.base
    import hmmlearn.hmm

    import fasthw6.hmm

    original, swap = _state["original"], _state["swap"]
    for name in ESTIMATORS:
        original[name] = getattr(hmmlearn.hmm, name)
        swap[name] = getattr(fasthw6.hmm, name)
    original["BaseHMM"], swap["BaseHMM"] = hmmlearn.base.BaseHMM, StubBaseHMM
    original["ConvergenceMonitor"] = hmmlearn.base.ConvergenceMonitor
    swap["ConvergenceMonitor"] = fasthw6.hmm.ConvergenceMonitor
    for name in ESTIMATORS + ("BaseHMM",):  # BaseHMM: its subclasses (the variational ones) too
        _poison(original[name])
    for name in ESTIMATORS:
        setattr(hmmlearn.hmm, name, swap[name])
    hmmlearn.base.BaseHMM = StubBaseHMM
    hmmlearn.base.ConvergenceMonitor = swap["ConvergenceMonitor"]


def _is_fasthw6(obj):
    return obj is StubBaseHMM or getattr(obj, "__module__", "").startswith("fasthw6.")


def pytest_deselected(items):
    _state["deselected"].extend(item.nodeid for item in items)


def pytest_collection_finish(session):
    """Every collected module sees fasthw6's classes under hmmlearn's names, no hmmlearn one."""
    originals = set(_state["original"].values())
    for mod in {item.module for item in session.items if getattr(item, "module", None)}:
        seen = {}
        for name in _state["swap"]:
            if hasattr(mod, name):
                seen[name] = getattr(mod, name)
        if hasattr(mod, "hmm"):
            for name in ESTIMATORS:
                seen[f"hmm.{name}"] = getattr(mod.hmm, name)
        for name, value in seen.items():
            if not _is_fasthw6(value):
                raise AssertionError(f"{mod.__name__}.{name} is {value!r}, not fasthw6's: the "
                                     f"swap did not take effect")
        for key, value in vars(mod).items():
            if isinstance(value, type) and value in originals:
                raise AssertionError(f"{mod.__name__}.{key} is hmmlearn's {value!r}")
        _state["modules"][mod.__name__] = {k: _name(v) for k, v in seen.items()}


def pytest_runtest_logreport(report):
    """Each test's outcome: passed, failed, skipped, xfailed, xpassed or error."""
    if report.when == "call" or report.outcome != "passed":
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "xpassed"
        elif report.when != "call" and report.failed:
            outcome = "error"
        else:
            outcome = report.outcome
        _state["outcomes"].setdefault(report.nodeid, outcome)
        if outcome in ("failed", "error"):
            _state["outcomes"][report.nodeid] = outcome


def pytest_sessionfinish(session, exitstatus):
    path = os.environ.get("FASTHW6_SWAP_REPORT")
    if not path:
        return
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"swapped": {k: _name(v) for k, v in _state["swap"].items()},
                   "modules": _state["modules"],
                   "deselected": _state["deselected"],
                   "outcomes": _state["outcomes"],
                   "backend": os.environ.get("FASTHW6_BACKEND"),
                   "seed": os.environ.get("HMMLEARN_SEED"),
                   "exitstatus": int(exitstatus)}, f, indent=1)


def pytest_report_header(config):
    return ["hmmlearn's classes swapped for fasthw6's: " + ", ".join(sorted(_state["swap"]))
            + f" (FASTHW6_BACKEND={os.environ.get('FASTHW6_BACKEND')})"]
