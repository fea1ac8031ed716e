"""The dispatch point: selection, precedence, and errors that list what is available."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import fasthw6
from fasthw6 import _backend


def test_numpy_always_available_and_auto_is_the_default():
    avail = fasthw6.available_backends()
    assert avail[-1] == "numpy"
    assert fasthw6.get_backend() == "auto"


def test_set_backend_and_context_precedence():
    try:
        fasthw6.set_backend("numpy")
        assert fasthw6.get_backend() == "numpy"
        with fasthw6.use_backend("auto") as b:
            assert b == "auto" == fasthw6.get_backend()
            with fasthw6.use_backend("numpy"):
                assert fasthw6.get_backend() == "numpy"
            # an explicit backend= beats the context
            assert _backend.resolve_backend("numpy") == "numpy"
        assert fasthw6.get_backend() == "numpy"
    finally:
        fasthw6.set_backend("auto")


def test_dispatch_really_switches_implementation(monkeypatch):
    calls = []
    real = _backend.get_kernel

    def spy(system, name, backend=None):
        fn = real(system, name, backend)
        calls.append(fn.__module__)
        return fn

    monkeypatch.setattr("fasthw6.conv.api.get_kernel", spy)
    with fasthw6.use_backend("numpy"):
        fasthw6.conv2d(np.ones((3, 3)), np.ones((2, 2)))
    assert calls == ["fasthw6.conv.reference"]


@pytest.mark.parametrize("bad", ["cuda", "NUMBA-JIT", ""])
def test_unknown_backend_lists_available(bad):
    with pytest.raises(ValueError, match="available: auto, " + ", ".join(fasthw6.available_backends())):
        fasthw6.set_backend(bad)


def test_backend_name_must_be_str():
    with pytest.raises(TypeError, match="backend must be a str"):
        fasthw6.set_backend(3)


def test_environment_variable_selects_and_validates():
    code = "import fasthw6; print(fasthw6.get_backend())"
    out = subprocess.run([sys.executable, "-c", code], env={"FASTHW6_BACKEND": "numpy", "PATH": ""},
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "numpy"
    bad = subprocess.run([sys.executable, "-c", code], env={"FASTHW6_BACKEND": "gpu", "PATH": ""},
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "FASTHW6_BACKEND environment variable 'gpu' is unknown" in bad.stderr


def test_cython_kernels_load_blas_without_scipy_linalg():
    """The first Cython call loads scipy's BLAS module alone (the scipy.linalg package costs
    0.1-0.3 s of a first call); a later ``import scipy.linalg`` adopts that module and works."""
    if "cython" not in fasthw6.available_backends():
        pytest.skip("Cython backend not built")
    code = """
import sys
import numpy as np
from fasthw6.hmm import score_sequences
ll = score_sequences([0, 1, 1, 0], [2, 2], [0.5, 0.5], [[0.9, 0.1], [0.2, 0.8]],
                     [[0.7, 0.3], [0.4, 0.6]], backend="cython")
assert np.isfinite(ll).all()
assert "scipy.linalg.cython_blas" in sys.modules and "scipy.linalg" not in sys.modules
import scipy.linalg
from scipy.linalg import cython_blas
assert cython_blas is sys.modules["scipy.linalg.cython_blas"]
a = np.random.default_rng(0).random((20, 20)) + 20 * np.eye(20)
assert np.allclose(scipy.linalg.inv(a) @ a, np.eye(20))
print("ok")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_auto_without_the_cython_build_says_why_first_calls_compile(monkeypatch):
    """A checkout imported without its extensions built (python run from the repository after
    `pip install .`) makes auto compile numba at the first call: a warning names the cause."""
    real = _backend._backend_importable
    monkeypatch.setattr(_backend, "_backend_importable", lambda b: b != "cython" and real(b))
    _backend._warn_no_cython.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match=r"Cython kernels are missing.*source tree"):
            kernel = _backend._auto_kernel.__wrapped__("hmm", "forward_loglik")
    finally:
        _backend._warn_no_cython.cache_clear()
    assert kernel.__module__.startswith("fasthw6.hmm._numba")
