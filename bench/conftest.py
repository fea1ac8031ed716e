"""Shared benchmark plumbing.

Every benchmark: (1) calls its implementation once outside the timer (JIT warm-up, caches),
(2) checks that result against the reference, then (3) times it.  ``extra_info`` carries what
``bench/report.py`` needs to turn times into throughput and ratios for the README table.

Threads are pinned for numba and torch alike: ``FASTHW6_BENCH_THREADS`` (default 1).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

THREADS = int(os.environ.get("FASTHW6_BENCH_THREADS", "1"))
# ``fasthw6 bench --quick``: the cases on smaller batches (the suites size theirs with ``batch``)
# and without the slowest anchors, in about a minute; its figures show the shape,
# not the published numbers
QUICK = os.environ.get("FASTHW6_BENCH_QUICK") == "1"


def batch(n_sequences: int) -> int:
    """The number of sequences (rows) a suite's batch holds: ``n_sequences``, or 1/50 of it
    (at least 40) with --quick."""
    return max(40, n_sequences // 50) if QUICK else n_sequences


_blas_limits = None


def pin_threads(n: int = THREADS) -> None:
    """Same thread count for numba, torch, BLAS and OpenMP (the Cython kernels).

    threadpoolctl limits only the pools loaded when it runs, so every library whose pool a
    benchmark uses is imported first: scipy's OpenBLAS (numba's ``np.dot`` and the Cython GEMM
    call it) would otherwise load later and run multi-threaded against one-thread anchors.
    """
    global _blas_limits
    import numba
    import scipy.linalg.cython_blas  # noqa: F401

    try:
        import fasthw6.conv._cython  # noqa: F401  (OpenMP runtime of the Cython kernels)
    except ImportError:
        pass

    try:
        from threadpoolctl import threadpool_limits

        _blas_limits = threadpool_limits(limits=n)
    except ImportError:
        pass

    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass
    if not QUICK:  # JAX serves dynamax only, which --quick leaves out
        _pin_jax(n)


_jax_pinned = False


def _pin_jax(n: int) -> None:
    """JAX's CPU client sizes its compute pool from the CPUs the process may run on when the
    client starts (``XLA_FLAGS`` thread options do not hold: a 1500^2 matmul still ran 1.96
    CPU-seconds per second with them).  So the client is started under an affinity of ``n``
    CPUs, which its threads keep, and the affinity is then given back to this thread (numba's
    and OpenMP's pools, started later, are pinned by their own settings).
    ``test_peer_thread_pools_pinned`` (bench_hmm.py) checks that it holds."""
    global _jax_pinned
    if _jax_pinned or not hasattr(os, "sched_setaffinity"):
        return
    try:
        import importlib.util

        if importlib.util.find_spec("jax") is None:
            return
    except ValueError:
        return
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, set(sorted(cpus)[:n]))
    try:
        import jax
        import jax.numpy as jnp

        jax.config.update("jax_enable_x64", True)
        jax.jit(lambda x: x + 1)(jnp.zeros(2)).block_until_ready()  # starts the client
    finally:
        os.sched_setaffinity(0, cpus)
    _jax_pinned = True


pin_threads()

# libraries whose versions each results file records (those installed)
LIBRARIES = ("fasthw6", "numpy", "numba", "llvmlite", "Cython", "scipy", "torch", "hmmlearn",
             "hmmkay", "dynamax", "jax", "pomegranate", "scikit-learn", "threadpoolctl")


def vector_extensions(flags) -> str:
    """The widest x86 vector extension among the CPU's flags (what a kernel can use)."""
    flags = set(flags)
    for flag, name in (("avx512f", "AVX-512"), ("avx2", "AVX2"), ("avx", "AVX")):
        if flag in flags:
            return name
    return "SSE2"


def pytest_benchmark_update_machine_info(config, machine_info):
    """Every results file names its CPU's vector extensions and the library versions, so a
    figure can be tied to the machine and the code it came from."""
    from importlib import metadata

    machine_info["vector_extensions"] = vector_extensions(machine_info.get("cpu", {}).get("flags", ()))
    isa = os.environ.get("FASTHW6_BENCH_ISA")  # set by ``python -m bench.isa``
    if isa:
        machine_info["isa_emulated"] = isa
        machine_info["numba_cpu_name"] = os.environ.get("NUMBA_CPU_NAME")
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    machine_info["libraries"] = versions


_NOT_RUN = []


def pytest_runtest_logreport(report):
    """Cases a suite skips (an anchor not installed, minutes per call, one core) are kept with
    their reason, for the report to list as not run."""
    if report.skipped and isinstance(report.longrepr, tuple):
        reason = str(report.longrepr[2]).removeprefix("Skipped: ")
        _NOT_RUN.append(dict(test=report.nodeid.split("::")[-1], reason=reason))


def pytest_benchmark_update_json(config, benchmarks, output_json):
    output_json["not_run"] = list(_NOT_RUN)


@pytest.fixture(autouse=True)
def _pools_pinned():
    """Every thread pool loaded by now (BLAS, OpenMP) runs the benchmark's thread count: pools
    that benchmark modules loaded after conftest (scikit-learn's OpenMP, ...) are pinned here."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return
    pin_threads()
    loose = [(p["internal_api"], p["filepath"], p["num_threads"]) for p in threadpool_info()
             if p["num_threads"] != THREADS]
    assert not loose, f"thread pools not pinned to {THREADS}: {loose}"


@pytest.fixture
def measure(benchmark):
    """measure(fn, *, group, case, impl, work, unit, baseline, check, rounds=None) -> result.

    ``work`` is the count of useful operations of one call (multiply-adds, state-steps, bytes),
    ``unit`` its name; ``baseline`` names the implementation the ratio is taken against;
    ``check(result)`` must raise if the result is wrong; ``threads`` is recorded as the row's
    thread count (a benchmark about threads sets its own).
    """

    def run(fn, *, group, case, impl, work, unit, baseline, check, rounds=None, threads=THREADS):
        result = fn()  # warm-up: JIT compilation and first-touch excluded from the timing
        check(result)
        benchmark.group = f"{group} | {case}"
        benchmark.extra_info.update(
            group=group, case=case, impl=impl, work=float(work), unit=unit,
            baseline=baseline, threads=threads,
        )
        if rounds is None:
            out = benchmark(fn)
        else:
            out = benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=0)
        check(out)
        return out

    return run


def assert_close(expected, rtol, atol=0.0):
    """A ``check`` callable comparing a result with ``expected``."""

    def check(result):
        np.testing.assert_allclose(np.asarray(result), np.asarray(expected), rtol=rtol, atol=atol)

    return check
