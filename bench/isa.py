"""Run a benchmark with every library's code paths held to a narrower vector ISA than the CPU has.

    python -m bench.isa avx2 -- python -m pytest bench/bench_hmm.py --benchmark-json=...

A target has to hold on AVX2-only machines as well as AVX-512 ones, and the machine a session
gets is drawn by chance.  On an AVX-512 CPU this runs the command with the code an AVX2-only
CPU of the same family would run: numba compiles for that CPU model (``NUMBA_CPU_NAME``, with its
own cache directory, since cached code is tied to the target), OpenBLAS picks its kernels for it
(``OPENBLAS_CORETYPE``), NumPy's runtime dispatch leaves out the AVX-512 loops
(``NPY_DISABLE_CPU_FEATURES``), XLA (dynamax) compiles for AVX2 (``--xla_cpu_max_isa``) and
PyTorch (pomegranate) takes its AVX2 kernels (``ATEN_CPU_CAPABILITY``).  The Cython extensions
are built for baseline x86-64 and run the same code on either machine.

What it cannot hold back: clock speed and cache sizes stay the host's, so the figures say how the
code paths compare, not what a given AVX2 machine measures.  Each results file records the
emulation (``machine_info["isa_emulated"]``) and the README labels its rows with it.
"""
from __future__ import annotations

import os
import sys
import tempfile

# ISA -> (numba CPU model, OpenBLAS core type, NumPy features left out, XLA ISA, ATen capability)
PROFILES = {
    "avx2": ("znver3", "Zen",
             "X86_V4 AVX512_ICL AVX512_SPR",  # NumPy 2.4's names for its AVX-512 targets
             "AVX2", "avx2"),
}

ENV_FLAG = "FASTHW6_BENCH_ISA"  # read by bench/conftest.py into machine_info


def environment(isa: str, base: dict | None = None) -> dict:
    """The environment that holds every library to ``isa``."""
    cpu, blas, npy_off, xla, aten = PROFILES[isa]
    env = dict(os.environ if base is None else base)
    env["NUMBA_CPU_NAME"] = cpu
    env["NUMBA_CACHE_DIR"] = os.path.join(tempfile.gettempdir(), f"fasthw6-numba-{cpu}")
    env["OPENBLAS_CORETYPE"] = blas
    env["NPY_DISABLE_CPU_FEATURES"] = npy_off
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_cpu_max_isa={xla}").strip()
    env["ATEN_CPU_CAPABILITY"] = aten
    env[ENV_FLAG] = isa
    return env


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) < 3 or argv[0] not in PROFILES or argv[1] != "--":
        print(f"usage: python -m bench.isa {{{','.join(PROFILES)}}} -- COMMAND ...",
              file=sys.stderr)
        return 2
    env = environment(argv[0])
    os.execvpe(argv[2], argv[2:], env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
