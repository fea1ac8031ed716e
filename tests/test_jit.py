"""The ``auto`` backend's compile-free path: small calls on Cython without importing numba, the
stand-in while numba's code is not compiled, background compilation into the cache, where the
cache lives, and ``fasthw6 compile``.  Each case runs in a fresh interpreter with its own empty
cache folder, as a new user's process would."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fasthw6
from fasthw6 import _backend, _jit

pytestmark = pytest.mark.skipif(
    not {"numba", "cython"} <= set(fasthw6.available_backends()),
    reason="the auto policy chooses between numba and cython")


def run_py(code, cache, background=False, timeout=300):
    """Run ``code`` (dedented; SEQS may be prepended) in a fresh interpreter; its last stdout
    line, as JSON."""
    code = "\n".join(textwrap.dedent(part) for part in code.split("\n#--\n"))
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "FASTHW6_BACKEND")}
    env.update(FASTHW6_CACHE_DIR=str(cache), FASTHW6_BACKGROUND_COMPILE="1" if background else "0")
    out = subprocess.run([sys.executable, "-c", code], env=env, timeout=timeout,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


SEQS = """
import io, json, sys, time
import numpy as np
import fasthw6
from fasthw6 import _jit
from fasthw6.seqio import read_sequences

big = b"".join(b"%d %d %d\\n" % (i % 7, (i * 3) % 7, (i * 5) % 7) for i in range(60000))
#--
"""


def test_small_call_runs_cython_without_importing_numba(tmp_path):
    res = run_py("""
        import json, sys
        import numpy as np, fasthw6
        m = fasthw6.CategoricalHMM(3, n_iter=2, random_state=0)
        X = np.arange(40) % 4
        m.fit(X, [15, 25])
        ll = m.score_sequences(X, [15, 25])
        lp, _ = m.decode(X, [15, 25])
        st = fasthw6.jit_status()
        print(json.dumps(dict(numba="numba" in sys.modules, backend=fasthw6.get_backend(),
                              last={k: v["last"] for k, v in st.items()}, ll=ll.tolist())))
    """, tmp_path)
    assert res["numba"] is False and res["backend"] == "auto"
    assert res["last"] == {"hmm.lockstep_plan": "cython", "hmm.lockstep_run": "cython",
                           "hmm.forward_loglik": "cython", "hmm.viterbi": "cython"}
    assert np.isfinite(res["ll"]).all()
    assert not any(tmp_path.iterdir())  # nothing compiled, nothing cached


@pytest.mark.slow
def test_large_call_uses_standin_then_background_compiled_numba(tmp_path):
    """A large call before numba's tokeniser is compiled runs the Cython stand-in and starts a
    compiler process; once it is done the same call runs numba, with the same result, in this
    process and from the cache in the next."""
    first = run_py(SEQS + """
        r1 = read_sequences(io.BytesIO(big), n_symbols=7)
        last1 = fasthw6.jit_status()["seqio.tokenize"]["last"]
        assert _jit.wait_background(240)
        time.sleep(_jit.RECHECK_S)
        r2 = read_sequences(io.BytesIO(big), n_symbols=7)
        st = fasthw6.jit_status()["seqio.tokenize"]
        same = all(np.array_equal(a, b) for a, b in zip(r1, r2))
        print(json.dumps(dict(last1=last1, last2=st["last"], requested=len(st["requested"]),
                              same=same, n=int(r1[0].size))))
    """, tmp_path, background=True)
    assert first == dict(last1="cython", last2="numba", requested=1, same=True, n=180000)
    log = (tmp_path / "background-compile.log").read_text()
    assert "compiled fasthw6.seqio._numba.tokenize" in log
    second = run_py(SEQS + """
        read_sequences(io.BytesIO(big), n_symbols=7)
        st = fasthw6.jit_status()["seqio.tokenize"]
        print(json.dumps(dict(last=st["last"], requested=len(st["requested"]))))
    """, tmp_path, background=True)
    assert second == dict(last="numba", requested=0)


def test_large_call_without_background_stays_on_standin(tmp_path):
    res = run_py(SEQS + """
        read_sequences(io.BytesIO(big), n_symbols=7)
        st = fasthw6.jit_status()["seqio.tokenize"]
        print(json.dumps(dict(last=st["last"], requested=len(st["requested"]),
                              numba="numba" in sys.modules)))
    """, tmp_path, background=False)
    # numba is imported to look for the compiled kernel in the cache, but nothing is compiled
    assert res == dict(last="cython", requested=0, numba=True)
    assert not list(tmp_path.rglob("*.nbc"))


def test_kernels_are_cached_under_cache_dir_not_in_the_package(tmp_path):
    res = run_py("""
        import json, os
        import numpy as np
        from fasthw6 import _jit
        from fasthw6.seqio import _numba
        _numba.tokenize(np.frombuffer(b"1 2\\n", np.uint8), 3, np.empty(4, np.int32),
                        np.empty(2, np.int64), np.empty(2, np.int64))
        print(json.dumps(dict(path=_numba.tokenize._cache.cache_path, dir=_jit.cache_dir())))
    """, tmp_path)
    assert res["dir"] == str(tmp_path)
    assert pathlib.Path(res["path"]).parent == tmp_path
    assert list(tmp_path.rglob("*.tokenize-*.nbc"))


def test_locator_leaves_other_numba_functions_alone(tmp_path):
    """A user's own cached njit function, outside fasthw6, is stored where numba stores it."""
    mod = tmp_path / "usermod.py"
    mod.write_text("from numba import njit\n@njit(cache=True)\ndef f(x):\n    return x + 1\n")
    res = run_py(f"""
        import json, sys
        sys.path.insert(0, {str(tmp_path)!r})
        import fasthw6.hmm._numba  # installs fasthw6's locator
        import usermod
        usermod.f(1)
        print(json.dumps(dict(path=usermod.f._cache.cache_path)))
    """, tmp_path / "cache")
    assert res["path"] == str(tmp_path / "__pycache__")


def test_every_system_has_a_bit_identical_standin():
    for system in _jit.SYSTEMS:
        assert system in _backend.STANDIN
        k = _backend.get_kernel(system, {"hmm": "viterbi", "seqio": "tokenize", "conv": "conv2d",
                                         "nn": "batchnorm_forward_4d", "vae": "latent_forward",
                                         "svm": "smo_solve"}[system])
        assert isinstance(k, _jit.AutoKernel) and k.identical


def test_auto_rules_are_reproducible_without_a_bit_identical_standin(monkeypatch):
    """A kernel whose Cython twin were not bit-identical: the choice would depend on the input's
    size only (small on Cython, large on numba), whatever is compiled."""
    calls = []
    k = _jit.AutoKernel("test.kernel", lambda *a: calls.append("numba"),
                        lambda *a: calls.append("cython"), identical=False)
    small = np.ones((4, 4))
    large = np.ones((_jit.SMALL_CALL_BYTES // 8, 1))
    k(small, small)
    k(large, small)
    k(small, small)
    assert calls == ["cython", "numba", "cython"]


def test_explicit_backends_bypass_the_auto_policy():
    for b in ("numba", "cython", "numpy"):
        assert not isinstance(_backend.get_kernel("hmm", "viterbi", b), _jit.AutoKernel)


def test_cli_compile_fills_the_cache(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["FASTHW6_CACHE_DIR"] = str(tmp_path)
    out = subprocess.run([sys.executable, "-m", "fasthw6", "compile", "seqio", "-j", "1", "-v"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert f"1 kernel sets into {tmp_path}" in out.stderr and "seqio:" in out.stderr
    assert list(tmp_path.rglob("*.tokenize-*.nbc"))
    bad = subprocess.run([sys.executable, "-m", "fasthw6", "compile", "gpu"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown system 'gpu'" in bad.stderr


_SAVER = """
import sys
from numba.core import caching
from fasthw6 import _jit

_jit.install_cache_locator()
folder, who = sys.argv[1], int(sys.argv[2])
f = caching.IndexDataCacheFile(folder, "kernel-1.py311", b"stamp")
for i in range(40):
    f.save((who, i), (who, i) * 200)
"""


def test_concurrent_cache_saves_keep_index_and_data_paired(tmp_path):
    """Four processes adding entries to one numba index at once: every entry must load its own
    data (numba's unlocked save lets two processes pick the same data file name)."""
    from numba.core import caching

    folder = tmp_path / "hmm"
    folder.mkdir()
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    procs = [subprocess.Popen([sys.executable, "-c", _SAVER, str(folder), str(w)], env=env)
             for w in range(4)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    f = caching.IndexDataCacheFile(str(folder), "kernel-1.py311", b"stamp")
    for w in range(4):
        for i in range(40):
            assert f.load((w, i)) == (w, i) * 200, (w, i)


def _numba_modules():
    import importlib
    import pkgutil

    for system in _jit.SYSTEMS:
        pkg = importlib.import_module(f"fasthw6.{system}._numba")
        yield pkg
        for info in pkgutil.iter_modules(getattr(pkg, "__path__", [])):
            yield importlib.import_module(f"{pkg.__name__}.{info.name}")


def test_every_cached_kernel_has_a_name_of_its_own():
    """numba names a kernel's machine code after its qualified name and a per-process counter:
    two kernels of one name, cached by two processes, can share a symbol, and a process loading
    both runs one's code on the other's data.  Factory-made variants (one per N) must therefore
    be renamed (``_jit.njit_variant``); here every cached kernel of every system is checked."""
    from numba.core.registry import CPUDispatcher

    seen = {}
    for mod in _numba_modules():
        for obj in vars(mod).values():  # kernels, and the dicts factories return them in
            for k in (obj.values() if isinstance(obj, dict) else (obj,)):
                if isinstance(k, CPUDispatcher) and type(k._cache).__name__ != "NullCache":
                    key = (k.py_func.__module__, k.py_func.__qualname__)
                    assert seen.setdefault(key, k) is k, f"two cached kernels named {key}"
    assert len(seen) > 50  # every system's kernels were found
    lanes = [v for (m, q), v in seen.items() if "_make_lanes_small" in q]
    # N = 1..8 for rows of likelihoods and for frames of logs, N = 1..4 for diagonal Gaussians
    assert len(lanes) == 20
    # 5 kernels (forward, score_block, lanes_gemm, lanes_small, finish_one) for each of the
    # four emission modes (rows of likelihoods, frames of logs, diagonal Gaussians by GEMM and
    # in the small-N lanes)
    assert sum("_make_forward" in q for m, q in seen) == 20


_KEYS = """
import hashlib, importlib, json, pickle, pkgutil
import fasthw6
from numba.core.registry import CPUDispatcher

def mods(pkg):
    yield pkg
    for info in pkgutil.iter_modules(getattr(pkg, "__path__", [])):
        yield from mods(importlib.import_module(f"{pkg.__name__}.{info.name}"))

found, keys = [], {}
for name in ("hmm", "nn", "conv", "svm", "vae", "seqio"):
    for m in mods(importlib.import_module(f"fasthw6.{name}")):
        for obj in vars(m).values():
            for k in (obj.values() if isinstance(obj, dict) else obj if isinstance(obj, tuple) else (obj,)):
                if isinstance(k, CPUDispatcher) and k.py_func.__closure__:
                    found.append(k)
while found:  # the kernels the factories' kernels call, reached through their cells
    k = found.pop()
    q = k.py_func.__module__ + "." + k.py_func.__qualname__
    if q in keys or type(k._cache).__name__ == "NullCache":
        continue
    key = k._cache._index_key((), k.targetctx.codegen())
    keys[q] = hashlib.sha256(pickle.dumps(key)).hexdigest()
    found += [c.cell_contents for c in k.py_func.__closure__ or ()
              if isinstance(c.cell_contents, CPUDispatcher) and c.cell_contents.py_func.__closure__]
print(json.dumps(keys))
"""


def test_factory_kernels_have_the_same_cache_key_in_every_process(tmp_path):
    """A kernel that calls another kernel held in its closure (a factory's variant) must be
    found in the cache by the next process: numba keys it by a pickle of its cells, in which a
    dispatcher carries an identifier drawn anew per process, so without
    ``_jit._stable_closure_keys`` every process compiled the scoring kernels again (9 s per
    first GaussianHMM score, measured).  Here two fresh interpreters compute every such key."""
    first = run_py(_KEYS, tmp_path)
    second = run_py(_KEYS, tmp_path)
    assert {q.rsplit(".", 1)[1] for q in first if "_make_forward" in q} >= {
        f"{k}_{mode}" for k in ("forward", "score_block", "finish_one")
        for mode in ("rows", "frames", "diag")}
    assert any("_make_estep_small" in q for q in first)
    assert first == second


def test_njit_variant_names_and_compiles():
    def twice(x):
        return 2 * x + K

    K = 1
    f1 = _jit.njit_variant("k1")(twice)
    assert f1.py_func.__qualname__.endswith("twice_k1") and f1(3) == 7


def test_a_kernel_about_to_compile_says_so_once():
    """Issue 18: a numba kernel about to compile (no code in memory or cache for the call's
    types) warns once per argument types, with a category users can silence, and logs it."""
    import logging
    import warnings

    import numba
    import numpy as np

    from fasthw6 import CompileWarning
    from fasthw6._jit import NoticeKernel

    @numba.njit
    def twice(a):
        return a * 2

    k = NoticeKernel("test.twice", twice)
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("fasthw6.jit").addHandler(handler)
    logging.getLogger("fasthw6.jit").setLevel(logging.INFO)
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            assert k(np.arange(3)).tolist() == [0, 2, 4]
            assert k(np.arange(5)).tolist() == [0, 2, 4, 6, 8]  # same types: no second notice
            k(np.arange(3.0))  # new types: a notice again
    finally:
        logging.getLogger("fasthw6.jit").removeHandler(handler)
    notes = [x for x in w if issubclass(x.category, CompileWarning)]
    assert len(notes) == 2 and "test.twice" in str(notes[0].message)
    assert "once" in str(notes[0].message) and "int64" in str(notes[0].message)
    assert len(records) == 2
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        NoticeKernel("test.twice", twice)(np.arange(3))  # compiled now: no notice at all
        assert not w

    @numba.njit
    def thrice(a):
        return a * 3

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        warnings.simplefilter("ignore", CompileWarning)  # users can silence it
        NoticeKernel("test.thrice", thrice)(np.arange(3))
        assert not w
