"""Scratch memory of the compiled kernels: an allocation that fails is a ``MemoryError``, never a
crash.  Each case runs in a subprocess whose address space is capped just above what it has
mapped, with the kernel's inputs and outputs already allocated, so the first allocation that
fails is the kernel's own scratch."""
from __future__ import annotations

import subprocess
import sys

import pytest

pytest.importorskip("resource")

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
    **{f"conv.{op}": f"""
from fasthw6.conv import _cython as k
W = 1 << 24
x, out = np.zeros((1, 1, 1, W), np.float32), np.empty((1, 1, 1, W), np.float32)
w, b = np.ones((1, 1, 1, 1), np.float32), np.zeros(1, np.float32)
cap(16 << 20)
k.{op}(x, w, b, 1, 1, 0, 0, False, out)
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
