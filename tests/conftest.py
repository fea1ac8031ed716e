"""Shared test fixtures.

``FASTHW6_REQUIRE_BACKENDS=numba,cython`` (set by CI) turns a missing backend into a failure
instead of a skip, so a broken Cython build cannot hide behind skipped tests.
"""
from __future__ import annotations

import importlib.util
import os
import pathlib

import numpy as np
import pytest

# The suite compiles what it tests in the foreground; no background compiler processes (which the
# CLI tests' subprocesses inherit this from).  tests/test_jit.py turns it on where it is tested.
os.environ.setdefault("FASTHW6_BACKGROUND_COMPILE", "0")

import fasthw6  # noqa: E402
from fasthw6._backend import BACKENDS  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]

REQUIRED = [b for b in os.environ.get("FASTHW6_REQUIRE_BACKENDS", "").split(",") if b]
TOL = {np.dtype(np.float32): dict(rtol=2e-4, atol=2e-5), np.dtype(np.float64): dict(rtol=1e-10, atol=1e-12)}


MAX_WORKERS = 4


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """The suite runs one process per core (at most ``MAX_WORKERS``) when pytest-xdist is
    installed and ``-n`` was not given: numba compiles on one thread, and most of a first run is
    compilation.  (Set here, not in ``addopts``, so that the benchmarks, which need one process,
    and runs without xdist are unaffected; ``-n 0`` runs in one process.)"""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if (getattr(config.option, "numprocesses", 0) is None and config.pluginmanager.hasplugin("xdist")
            and not hasattr(config, "workerinput") and not config.option.collectonly
            and (cpus or 1) >= 2):
        config.option.numprocesses = min(MAX_WORKERS, cpus)
        if config.option.dist == "no":
            config.option.dist = "worksteal"


def pytest_sessionstart(session):
    missing = [b for b in REQUIRED if b not in fasthw6.available_backends()]
    if missing:
        raise pytest.UsageError(f"required backends not available: {missing}")


def pytest_collection_finish(session):
    if len(session.items) >= PRECOMPILE_MIN_TESTS and not session.config.option.collectonly:
        _precompile(session)


PRECOMPILE_MIN_TESTS = 300  # a run of a few files compiles only what it uses, as it goes


def _precompile(session):
    """Compile the numba kernels most tests share into the cache first, on every CPU at once
    (``fasthw6 compile``'s machinery): numba compiles on one thread, so a suite that compiles as
    it goes leaves the other cores idle for most of its first run.  A warm cache makes this a few
    seconds of loading.  ``FASTHW6_TEST_PRECOMPILE=0`` skips it."""
    if os.environ.get("FASTHW6_TEST_PRECOMPILE", "1") == "0" \
            or "numba" not in fasthw6.available_backends():
        return
    import time

    from fasthw6 import _jit

    import fcntl

    t0 = time.perf_counter()
    os.makedirs(_jit.cache_dir(), exist_ok=True)
    # under pytest-xdist every worker gets here: the first compiles (on every CPU), the others
    # wait for it and then load what it stored
    with open(os.path.join(_jit.cache_dir(), "precompile.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # float32 with uint8 symbols: no test runs it on numba
        done = _jit.compile_all(floats=("float64", "float32"), symbols=_jit.SYMBOLS,
                                exclude=("hmm float32 uint8 symbols",))
    rep = session.config.pluginmanager.get_plugin("terminalreporter")
    if rep is not None:
        rep.write_line(f"precompiled {len(done)} kernel sets into {_jit.cache_dir()} in "
                       f"{time.perf_counter() - t0:.1f} s")


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Each backend in turn; skipped (never silently passed) when not available here."""
    if request.param not in fasthw6.available_backends():
        pytest.skip(f"backend {request.param} not available")
    return request.param


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture
def tol(dtype):
    """assert_allclose tolerances for results of ``dtype`` compared with a float64 reference."""
    return TOL[dtype]


@pytest.fixture
def one_thread():
    """One thread for tests that make thousands of tiny kernel calls (see
    ``fasthw6._backend.single_threaded``): thread wake-ups there say nothing about correctness."""
    from fasthw6._backend import single_threaded

    with single_threaded():
        yield


def numgrad(f, arr, h=1e-6):
    """Central differences of the scalar f() with respect to arr, perturbed in place."""
    g = np.zeros(arr.shape)
    for i in np.ndindex(arr.shape):
        old = arr[i]
        arr[i] = old + h
        fp = f()
        arr[i] = old - h
        fm = f()
        arr[i] = old
        g[i] = (fp - fm) / (2 * h)
    return g


def random_hmm(n, m, seed, zeros=False):
    """A random discrete HMM (startprob, transmat, emissionprob) drawn from Dirichlet(1) rows;
    with ``zeros`` (n > 1), state 0 never leaves itself and the last state never emits symbol
    0 (rows still sum to 1)."""
    rng = np.random.default_rng(seed)
    sp = rng.dirichlet(np.ones(n))
    tm = rng.dirichlet(np.ones(n), size=n)
    em = rng.dirichlet(np.ones(m), size=n)
    if zeros and n > 1:
        tm[0, 1:] = 0
        tm[0, 0] = 1
        em[-1, 0] = 0
        em[-1] /= em[-1].sum()
    return sp, tm, em


def ragged(rng, m, lengths, dtype=np.int64):
    """A ragged batch in hmmlearn's convention: uniform symbols in [0, m) for sequences of
    ``lengths``, as (X of ``dtype``, lengths)."""
    return rng.integers(0, m, size=int(np.sum(lengths))).astype(dtype), np.asarray(lengths)


def run_example(name, tmp_path, **kwargs):
    """Load ``examples/<name>.py`` as a module and return ``main(tmp_path, **kwargs)``."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main(tmp_path, **kwargs)


def assert_png(path, tmp_path):
    """``path`` is a non-trivial PNG file written into ``tmp_path``."""
    png = pathlib.Path(path)
    assert png.parent == tmp_path and png.stat().st_size > 1000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
