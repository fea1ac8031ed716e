"""Build the Cython kernels: every ``fasthw6/<system>/_cython.pyx`` becomes an extension.

The generated C is not committed; Cython and NumPy come from ``build-system.requires``.
"""
import glob
import os
import sys

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class ParallelBuildExt(build_ext):
    """Compile the extensions side by side, one per CPU (they are independent): the install is
    part of a new user's first minutes."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                else (os.cpu_count() or 1))

openmp = [] if sys.platform == "darwin" else ["-fopenmp"]
# -ffp-contract=off: no fused multiply-adds (gcc forms them by default where the target has FMA,
# e.g. CFLAGS=-march=native; clang within an expression).  Kernels whose results must equal
# numba's bit for bit need every product rounded, as numba does without fastmath.  MSVC (2022 on)
# does not contract by default, and x64 code without /arch:AVX2 has no FMA to contract to.
# -fno-trapping-math: lets gcc turn a branch on a float comparison into a select, so loops such
# as the polynomial exponential's vectorise; it changes no result, only floating-point traps.
compile_args = (["-O3", "-ffp-contract=off", "-fno-trapping-math"] + openmp if os.name != "nt"
                else ["/O2", "/openmp"])
link_args = openmp if os.name != "nt" else []



def write_sizes_pxi():
    """fasthw6/hmm/_cy_sizes.pxi from fasthw6/hmm/_sizes.py, the one home of the size switches
    both HMM backends share (rewritten only when it changes, so Cython rebuilds only then)."""
    import runpy

    src = os.path.join("fasthw6", "hmm", "_sizes.py")
    sizes = runpy.run_path(src)
    text = "# Written by setup.py from _sizes.py; edit that file, not this one.\ncdef enum:\n" + "".join(
        f"    {name} = {int(sizes[name])}\n" for name in sizes["SHARED"])
    out = os.path.join("fasthw6", "hmm", "_cy_sizes.pxi")
    if not os.path.exists(out) or open(out).read() != text:
        with open(out, "w") as f:
            f.write(text)


write_sizes_pxi()

extensions = [
    Extension(
        pyx[:-4].replace(os.sep, "."),
        [pyx],
        include_dirs=[np.get_include(), os.path.dirname(pyx)],  # the system's own C headers
        depends=sorted(glob.glob(os.path.join(os.path.dirname(pyx), "*.h"))),
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
    for pyx in sorted(glob.glob(os.path.join("fasthw6", "*", "_cython.pyx")))
]

setup(
    cmdclass={"build_ext": ParallelBuildExt},
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
        nthreads=max(1, os.cpu_count() or 1),
    )
)
