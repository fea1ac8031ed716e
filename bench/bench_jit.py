"""JIT compile time, measured apart from every throughput benchmark.

Each round starts a fresh interpreter with an empty numba cache directory and times the first
call of a public function (compilation included) inside it, minus the same call made again
(already compiled).  Add a line to FIRST_CALLS for every system.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import pytest

FIRST_CALLS = {
    "conv_transpose2d f32": (
        "import numpy as np, fasthw6\n"
        "x = np.ones((1, 2, 5, 5), np.float32); w = np.ones((2, 3, 3, 3), np.float32)\n"
        "f = lambda: fasthw6.conv_transpose2d(x, w, stride=2, activation='relu', backend='numba')"
    ),
    "HMM score+decode+fit N=3 f64": (
        "import numpy as np, fasthw6\n"
        "X = np.arange(40) % 4; L = [15, 25]\n"
        "def f():\n"
        "    m = fasthw6.CategoricalHMM(3, n_iter=2, random_state=0); m.backend = 'numba'\n"
        "    m.fit(X, L)\n"
        "    return np.r_[m.score_sequences(X, L), m.decode(X, L)[0]]"
    ),
    "batchnorm fwd+bwd f32": (
        "import numpy as np, fasthw6.nn as nn\n"
        "x = np.ones((8, 4), np.float32) + np.arange(4, dtype=np.float32); g = np.ones(4, np.float32)\n"
        "f = lambda: nn.batchnorm_forward_backward(x, g, g, x, backend='numba')[0]"
    ),
    "VAE latent fwd+bwd f32": (
        "import numpy as np, fasthw6.vae as vae\n"
        "m = np.ones((4, 3), np.float32)\n"
        "f = lambda: np.r_[vae.latent_forward(m, m, m, backend='numba')[1], "
        "vae.latent_backward(m, 1.0, m, m, m, backend='numba')[0].ravel()]"
    ),
}

PROBE = """
import json, time
{setup}
t0 = time.perf_counter(); r = f(); t1 = time.perf_counter(); f(); t2 = time.perf_counter()
print(json.dumps(dict(first=t1 - t0, again=t2 - t1, ok=bool((abs(r) < float('inf')).all()))))
"""


def compile_seconds(setup: str) -> float:
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = subprocess.run([sys.executable, "-c", PROBE.format(setup=setup)], env=env,
                             capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["ok"], "first call returned non-finite values"
    return res["first"] - res["again"]


@pytest.mark.parametrize("case", list(FIRST_CALLS))
def test_jit_compile_time(benchmark, case):
    seconds = []
    benchmark.pedantic(lambda: seconds.append(compile_seconds(FIRST_CALLS[case])), rounds=1,
                       iterations=1, warmup_rounds=0)
    assert seconds[0] > 0
    benchmark.extra_info.update(jit_compile_s=seconds[0], case=case)
