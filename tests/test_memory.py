"""Scratch memory of the compiled kernels: an allocation that fails is a ``MemoryError``, never a
crash.  Each case runs in a subprocess whose address space is capped just above what it has
mapped, with the kernel's inputs and outputs already allocated, so the first allocation that
fails is the kernel's own scratch."""
from __future__ import annotations

import pathlib
import subprocess
import sys
import textwrap

import pytest

import fasthw6

pytest.importorskip("resource")

ROOT = pathlib.Path(__file__).resolve().parents[1]

PRELUDE = """
import resource
import numpy as np

def cap(extra):
    with open("/proc/self/statm") as f:
        mapped = int(f.read().split()[0]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_AS, (mapped + extra, resource.RLIM_INFINITY))

"""

# scratch of every case: 64 MiB or more per thread, against 16 MiB of headroom
CASES = {
    # the convolutions' scratch is allocated by the API (NumPy), so the public call is capped
    **{f"conv.{op}": f"""
import fasthw6
W = 1 << 24
x, w = np.zeros((1, 1, 1, W), np.float32), np.ones((1, 1, 1, 1), np.float32)
cap(16 << 20)
fasthw6.{op}(x, w, backend="cython")
""" for op in ("conv2d", "conv_transpose2d")},
    "nn.batchnorm_forward_2d": """
from fasthw6.nn import _cython as k
D = 1 << 23
x, y = np.zeros((1, D), np.float32), np.empty((1, D), np.float32)
g, b, mean, var = (np.ones(D) for _ in range(4))
cap(16 << 20)
k.batchnorm_forward_2d(x, g, b, 1e-5, True, mean, var, y, 256, 1, False)
""",
    "vae.latent_forward": """
from fasthw6.vae import _cython as k
D = 1 << 23
mu, v, eps, z = (np.zeros((1, D), np.float32) for _ in range(4))
kl, chk = np.empty(1), np.empty(1)
cap(16 << 20)
k.latent_forward(mu, v, eps, False, False, z, kl, chk)
""",
}


@pytest.mark.parametrize("case", list(CASES))
def test_scratch_allocation_failure_is_a_memory_error(case):
    pytest.importorskip(f"fasthw6.{case.split('.')[0]}._cython")
    body = CASES[case].replace("\n", "\n    ")
    code = PRELUDE + f"try:{body}\n    print('completed')\nexcept MemoryError:\n    print('MemoryError')\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"exit status {proc.returncode}: {proc.stderr[-2000:]}"
    assert proc.stdout.strip() == "MemoryError", proc.stdout + proc.stderr[-2000:]


# Scratch sized to the work (issue 19, item 1).  The HMM E-step once reserved N²·64·8 bytes per
# thread of Σξ accumulators whether a block used them or not (4.6 GB at N=3000); a transposed
# convolution with a stride far wider than its output reserved ``stride`` phases per row (8 GB
# for a 1x1 output at stride 10⁹); a numba kernel whose ``prange`` worker failed to allocate
# raised SystemError or left its output unwritten.  Both compiled backends, in a subprocess
# under an address-space limit a little above what it has mapped after warming the kernels.

SCRIPT = textwrap.dedent("""
    import resource
    import sys

    import numpy as np

    import fasthw6
    from fasthw6 import hmm

    backend = sys.argv[1]
    rng = np.random.default_rng(0)
    SOFT, HARD = resource.getrlimit(resource.RLIMIT_AS)


    def mapped():
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024


    def limit(extra_mb):
        resource.setrlimit(resource.RLIMIT_AS, (mapped() + (extra_mb << 20), HARD))


    def unlimit():
        resource.setrlimit(resource.RLIMIT_AS, (SOFT, HARD))


    # HMM posteriors at N=800: the Σξ GEMM path needs O(N²) scratch per thread, not the
    # N²·64 doubles (328 MB per thread) of per-lane accumulators it does not use
    N, M = 800, 4
    sp = rng.dirichlet(np.ones(N))
    A = rng.dirichlet(np.ones(N), size=N)
    B = rng.dirichlet(np.ones(M), size=N)
    lengths = np.full(64, 5)
    X = rng.integers(0, M, int(lengths.sum()))
    ll0, g0 = hmm.posteriors(X, lengths, sp, A, B, backend=backend)
    limit(200)
    ll, g = hmm.posteriors(X, lengths, sp, A, B, backend=backend)
    unlimit()
    np.testing.assert_allclose(ll, ll0, rtol=1e-12)
    np.testing.assert_allclose(g, g0, rtol=1e-10, atol=1e-14)

    # a transposed convolution at a stride far wider than its output: one phase per column
    one = np.ones((1, 1, 1, 1))
    fasthw6.conv_transpose2d(np.ones((1, 1, 2, 2)), one, stride=3, backend=backend)
    limit(200)
    out = fasthw6.conv_transpose2d(one, one, stride=10 ** 9, backend=backend)
    unlimit()
    assert out.shape == (1, 1, 1, 1) and out[0, 0, 0, 0] == 1.0, out

    # the GEMM path (64 channel pairs) asked for a column matrix it cannot have: MemoryError,
    # nothing claimed; then the same call, with the memory back, is right
    x = rng.standard_normal((2, 8, 40, 40))
    w = rng.standard_normal((8, 8, 24, 24))  # cols: 8*24*24 x 1600 doubles, 59 MB a thread
    small = fasthw6.conv_transpose2d(x[:, :, :4, :4], w, backend=backend)
    ref = fasthw6.conv_transpose2d(x, w, backend="numpy")
    limit(40)
    try:
        fasthw6.conv_transpose2d(x, w, backend=backend)
    except MemoryError as exc:
        print("MemoryError:", exc)
    else:
        sys.exit("no MemoryError for the column matrix")
    unlimit()
    np.testing.assert_allclose(fasthw6.conv_transpose2d(x, w, backend=backend), ref,
                               rtol=1e-10, atol=1e-9)
    print("OK")
""")


@pytest.mark.skipif(not pathlib.Path("/proc/self/status").exists(), reason="needs /proc")
@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_scratch_sized_to_the_work_and_clean_memory_errors(backend):
    if backend not in fasthw6.available_backends():
        pytest.skip(f"backend {backend} not available")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, backend], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stdout + proc.stderr[-3000:]
