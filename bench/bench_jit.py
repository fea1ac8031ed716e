"""First call in a fresh process: what a new user, a CI job or a fresh Dask worker waits for.

Each case starts a new interpreter with an empty compiled-code cache (``NUMBA_CACHE_DIR``, which
fasthw6, numba and hmmkay all honour), times the import and the first call of one public
function, then starts a second interpreter on the same cache and times its first call again
(``warm``).  fasthw6 runs under its default backend (``auto``) and, for comparison, forced onto
numba (the compilation ``auto`` keeps off the clock); hmmlearn, hmmkay and dynamax (JAX, in
float64) answer the same HMM questions where they are installed.  Every case checks its result against fasthw6's NumPy
reference computed here.  Cases whose name ends in "large" use inputs above the size from which
``auto`` runs numba (``fasthw6._jit.SMALL_CALL_BYTES``).

The one suite whose list is not the comparisons registry's: its cases are scripts run in fresh
interpreters, and a peer's script must not import fasthw6 (where the registry's loaders live),
whose import would then count against the peer.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest


GROUP = "first call in a fresh process"

HMM_SETUP = """
import numpy as np
X = np.array({X}); L = {L}
sp = np.array({sp}); tm = np.array({tm}); em = np.array({em})
"""
RNG = np.random.default_rng(5)
N_STATES, M_SYMBOLS = 3, 4
SP = RNG.dirichlet(np.ones(N_STATES))
TM = RNG.dirichlet(np.ones(N_STATES), N_STATES)
EM = RNG.dirichlet(np.ones(M_SYMBOLS), N_STATES)
X_SMALL, L_SMALL = RNG.integers(0, M_SYMBOLS, 40), [15, 25]
hmm_setup = HMM_SETUP.format(X=X_SMALL.tolist(), L=L_SMALL, sp=SP.tolist(), tm=TM.tolist(),
                             em=EM.tolist())


def _fasthw6_model(backend):
    b = f"; m.backend = {backend!r}" if backend else ""
    return ("import fasthw6\n"
            "m = fasthw6.CategoricalHMM(3, n_features=4, init_params='', n_iter=1)" + b + "\n"
            "m.startprob_, m.transmat_, m.emissionprob_ = sp, tm, em\n")


def _hmm_cases():
    out = {}
    for impl, backend in (("fasthw6", None), ("fasthw6 numba", "numba")):
        model = _fasthw6_model(backend)
        out[("score_sequences", impl)] = model + "f = lambda: m.score_sequences(X, L)"
        out[("decode", impl)] = model + "f = lambda: np.r_[m.decode(X, L)[0]]"
        out[("fit (one EM iteration)", impl)] = (
            model + "f = lambda: np.r_[m.fit(X, L).monitor_.history[-1]]")
    hl = ("from hmmlearn.hmm import CategoricalHMM\n"
          "m = CategoricalHMM(3, n_features=4, init_params='', n_iter=1)\n"
          "m.startprob_, m.transmat_, m.emissionprob_ = sp, tm, em\n"
          "Xc = X.reshape(-1, 1)\n")
    out[("score_sequences", "hmmlearn")] = hl + (
        "f = lambda: np.array([m.score(Xc[:L[0]]), m.score(Xc[L[0]:])])")
    out[("decode", "hmmlearn")] = hl + "f = lambda: np.r_[m.decode(Xc, L)[0]]"
    out[("fit (one EM iteration)", "hmmlearn")] = hl + (
        "f = lambda: np.r_[m.fit(Xc, L).monitor_.history[-1]]")
    hk = ("from hmmkay import HMM\n"
          "m = HMM(sp, tm, em, n_iter=1)\n"
          "seqs = np.array([X[:L[0]], X[L[0]:2 * L[0]]])\n")  # hmmkay takes equal lengths
    out[("score_sequences", "hmmkay")] = hk + "f = lambda: np.r_[m.log_likelihood(seqs)]"
    dx = ("import jax, jax.numpy as jnp\n"
          "jax.config.update('jax_enable_x64', True)\n"
          "from dynamax.hidden_markov_model import CategoricalHMM\n"
          "m = CategoricalHMM(3, 1, 4)\n"
          "params, _ = m.initialize(jax.random.PRNGKey(0), initial_probs=jnp.asarray(sp),\n"
          "    transition_matrix=jnp.asarray(tm), emission_probs=jnp.asarray(em)[:, None, :])\n"
          "seqs = [jnp.asarray(X[:L[0]].reshape(-1, 1)), jnp.asarray(X[L[0]:].reshape(-1, 1))]\n"
          "def path_logprob(s, x):  # the decoded path's joint log-probability, to check it\n"
          "    s = np.asarray(s)\n"
          "    return (np.log(sp[s[0]]) + np.log(tm[s[:-1], s[1:]]).sum()\n"
          "            + np.log(em[s, np.asarray(x)[:, 0]]).sum())\n")
    out[("score_sequences", "dynamax")] = dx + (
        "f = lambda: np.array([float(m.marginal_log_prob(params, x)) for x in seqs])")
    out[("decode", "dynamax")] = dx + (
        "f = lambda: np.r_[sum(path_logprob(m.most_likely_states(params, x), x) for x in seqs)]")
    return out


OTHER = {
    "conv_transpose2d": (
        "import numpy as np, fasthw6\n"
        "x = np.ones((1, 2, {n}, {n}), np.float32); w = np.ones((2, 3, 3, 3), np.float32)\n"
        "f = lambda: fasthw6.conv_transpose2d(x, w, stride=2, activation='relu'{b})"),
    "batchnorm_forward": (
        "import numpy as np, fasthw6\n"
        "x = (np.arange({n} * 64, dtype=np.float32).reshape({n}, 64) % 7)\n"
        "f = lambda: fasthw6.batchnorm_forward(x{b})[0]"),
    "batchnorm_backward": (
        "import numpy as np, fasthw6\n"
        "x = (np.arange({n} * 64, dtype=np.float32).reshape({n}, 64) % 7)\n"
        "y, cache = fasthw6.batchnorm_forward(x{b})\n"
        "f = lambda: fasthw6.batchnorm_backward(np.ones_like(x), cache{b})[0]"),
    "latent_forward (VAE)": (
        "import numpy as np, fasthw6\n"
        "m = np.full(({n}, 32), 0.5, np.float32)\n"
        "f = lambda: fasthw6.latent_forward(m, m, m{b})[1]"),
    "latent_backward (VAE)": (
        "import numpy as np, fasthw6\n"
        "m = np.full(({n}, 32), 0.5, np.float32)\n"
        "f = lambda: fasthw6.latent_backward(m, 1.0, m, m, m{b})[0]"),
    "HardMarginSVC.fit": (
        "import numpy as np, fasthw6\n"
        "rng = np.random.default_rng(0); X = rng.normal(size=({n}, 16)); X[:, 0] += np.sign(X[:, 0]) * 2\n"
        "y = (X[:, 0] > 0).astype(int)\n"
        "f = lambda: fasthw6.HardMarginSVC({b2}).fit(X, y).coef_.ravel()"),
}
# rows (pixels per side for conv): "small" below fasthw6._jit.SMALL_CALL_BYTES, "large" above
SIZES = {"small": 8, "large": 4096}


def _other_cases():
    out = {}
    for op, code in OTHER.items():
        for size, n in SIZES.items():
            for impl, b in (("fasthw6", ""), ("fasthw6 numba", ", backend='numba'")):
                n_eff = 256 if op == "conv_transpose2d" and size == "large" else n
                out[(f"{op} {size}", impl)] = code.format(n=n_eff, b=b,
                                                          b2=b.lstrip(", "))
    return out


CASES = {**_hmm_cases(), **_other_cases()}

PROBE = """
import json, time
t0 = time.perf_counter()
{setup}
t1 = time.perf_counter(); r = f(); t2 = time.perf_counter(); f(); t3 = time.perf_counter()
import numpy as np
print(json.dumps(dict(setup_s=t1 - t0, first_s=t2 - t1, again_s=t3 - t2,
                      result=np.asarray(r, np.float64).ravel()[:64].tolist())))
"""


def _cpu() -> str:
    """The CPU model, recorded with every first-call figure (the README may mix machines)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform
    return platform.processor() or "unknown CPU"


def _run(setup, cache):
    env = dict(os.environ, NUMBA_CACHE_DIR=cache, FASTHW6_BACKGROUND_COMPILE="0")
    env.pop("FASTHW6_BACKEND", None)
    out = subprocess.run([sys.executable, "-c", PROBE.format(setup=setup)], env=env,
                         capture_output=True, text=True, timeout=900)
    if out.returncode != 0:
        if "ModuleNotFoundError" in out.stderr:
            pytest.skip(out.stderr.strip().splitlines()[-1])
        raise AssertionError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _expected(op, impl):
    """What fasthw6's NumPy reference answers for an HMM case; None where there is nothing to
    compare (other systems: checked finite and equal between the two processes)."""
    from fasthw6.hmm import score_sequences, viterbi

    if impl == "hmmkay" or op not in ("score_sequences", "decode", "fit (one EM iteration)"):
        return None
    if op == "score_sequences":
        return score_sequences(X_SMALL, L_SMALL, SP, TM, EM, backend="numpy")
    if op == "decode":
        return np.r_[viterbi(X_SMALL, L_SMALL, SP, TM, EM, backend="numpy")[0].sum()]
    # one EM iteration reports the log-likelihood of the starting parameters
    return np.r_[score_sequences(X_SMALL, L_SMALL, SP, TM, EM, backend="numpy").sum()]


@pytest.mark.parametrize("case", list(CASES), ids=[f"{o}-{i}" for o, i in CASES])
def test_first_call(benchmark, case):
    op, impl = case
    setup = (hmm_setup if op in ("score_sequences", "decode", "fit (one EM iteration)") else "") \
        + CASES[case]
    res = {}
    with tempfile.TemporaryDirectory() as cache:
        def both():
            res["cold"] = _run(setup, cache)
            res["warm"] = _run(setup, cache)
        benchmark.pedantic(both, rounds=1, iterations=1, warmup_rounds=0)
    cold, warm = res["cold"], res["warm"]
    got = np.asarray(cold["result"])
    assert np.isfinite(got).all() and np.array_equal(got, warm["result"])
    want = _expected(op, impl)
    if want is not None:
        np.testing.assert_allclose(got, np.ravel(want), rtol=1e-9)
    benchmark.extra_info.update(
        first_call=dict(op=op, impl=impl, cold_s=cold["first_s"], warm_s=warm["first_s"],
                        again_s=cold["again_s"], import_s=cold["setup_s"], cpu=_cpu()))


def test_import_and_demo(benchmark):
    """``import fasthw6`` and ``fasthw6 demo`` in a fresh process with an empty cache."""
    res = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, FASTHW6_BACKGROUND_COMPILE="0")

        def both():
            imp = subprocess.run([sys.executable, "-c", "import time; t = time.perf_counter(); "
                                  "import fasthw6; print(time.perf_counter() - t)"],
                                 env=env, capture_output=True, text=True, check=True)
            res["import"] = float(imp.stdout)
            t = __import__("time").perf_counter()
            demo = subprocess.run([sys.executable, "-m", "fasthw6", "demo"], env=env,
                                  capture_output=True, text=True, timeout=900)
            res["demo"] = __import__("time").perf_counter() - t
            assert demo.returncode == 0 and "all checks hold" in demo.stdout, demo.stdout
        benchmark.pedantic(both, rounds=1, iterations=1, warmup_rounds=0)
    benchmark.extra_info.update(first_call=dict(op="import fasthw6", impl="fasthw6",
                                                cold_s=res["import"], warm_s=None, cpu=_cpu()))
    benchmark.extra_info["demo_s"] = res["demo"]
