"""Compiled code: where numba keeps it, when a kernel is ready, and compiling it ahead of time.

numba compiles a kernel the first time it meets a new signature (argument types), which for the
HMM kernels takes tens of seconds.  Three things keep that off the user's clock:

- **The cache.**  Every ``@njit(cache=True)`` kernel of fasthw6 is stored on disk under
  :func:`cache_dir` -- ``$NUMBA_CACHE_DIR`` if set (numba's own variable wins), else
  ``$FASTHW6_CACHE_DIR``, else ``$XDG_CACHE_HOME/fasthw6`` (``~/.cache/fasthw6``) -- never inside
  the installed package, so a read-only site-packages or container image works and an uninstall
  leaves nothing behind in it.  Entries are keyed by the source's hash (for a ``_numba`` package, all its modules:
  :func:`source_stamp`), the argument types and the CPU (model and features): a cache built on another machine is ignored, not misused.
- **The stand-in.**  The Cython kernels, built at install time, give results bit for bit equal
  to numba's (``fasthw6._backend.STANDIN``; ``tests/test_*bitidentity.py`` hold them to it).
  The ``auto`` backend runs numba's kernel when its compiled code for the call's argument types
  is in memory or in the cache, and the Cython one otherwise.  The answer is the same either
  way, so results do not depend on what happens to be compiled; only the time does.
- **Background compilation.**  When ``auto`` takes the stand-in for a large call, it asks a separate low-priority
  process to compile numba's kernel for those argument types into the cache (one at a time,
  serialised across processes by a lock file in the cache).  Later calls -- in this process once
  the cache has it, and in every later process -- run numba.  ``FASTHW6_BACKGROUND_COMPILE=0``
  turns this off; ``fasthw6 compile`` (:func:`compile_all`) builds the cache ahead of time, for
  container images and Dask workers.

``jit_status()`` tells, per kernel, which argument types are ready and which backend ``auto``
last ran.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import logging
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time

_PKG_DIR = os.path.dirname(os.path.abspath(__file__))
_ENV_DIR = "FASTHW6_CACHE_DIR"
_ENV_BG = "FASTHW6_BACKGROUND_COMPILE"
RECHECK_S = 1.0  # how often a call on the stand-in looks for the background compiler's result


def cache_dir() -> str:
    """The folder numba's compiled fasthw6 kernels are stored in (see the module docstring).

    Examples
    --------
    >>> isinstance(cache_dir(), str)
    True
    """
    if os.environ.get("NUMBA_CACHE_DIR"):
        return os.path.abspath(os.environ["NUMBA_CACHE_DIR"])
    if os.environ.get(_ENV_DIR):
        return os.path.abspath(os.environ[_ENV_DIR])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fasthw6")


def install_cache_locator() -> None:
    """Make numba store fasthw6's kernels under :func:`cache_dir` (called by every ``_numba``
    module before its first ``@njit``).  Functions outside this package are not affected: the
    locator declines them and numba's own locators follow.  If numba's internals have moved, its
    default (``__pycache__`` beside the source) stays in force."""
    try:
        from numba.core import caching
    except ImportError:
        return
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    mixin = getattr(caching, "_SourceFileBackedLocatorMixin", None)
    base = getattr(caching, "_CacheLocator", None)
    if impl is None or mixin is None or base is None:
        return
    if any(getattr(c, "_fasthw6", False) for c in impl._locator_classes):
        return

    class FastHW6CacheLocator(mixin, base):
        _fasthw6 = True

        def __init__(self, py_func, py_file):
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = os.path.join(cache_dir(), self.get_suitable_cache_subpath(py_file))

        def get_cache_path(self):
            return self._cache_path

        def get_source_stamp(self):
            return source_stamp(self._py_file)

        @classmethod
        def from_function(cls, py_func, py_file):
            if os.path.commonpath([_PKG_DIR, os.path.abspath(py_file)]) != _PKG_DIR:
                return None
            return super().from_function(py_func, py_file)

    # first: fasthw6's kernels go under cache_dir() (which is $NUMBA_CACHE_DIR when that is set)
    impl._locator_classes = [FastHW6CacheLocator, *impl._locator_classes]
    _lock_cache_saves(caching)
    _stable_closure_keys(caching)


def _ours(py_func) -> bool:
    path = getattr(getattr(py_func, "__code__", None), "co_filename", "")
    return bool(path) and os.path.commonpath([_PKG_DIR, os.path.abspath(path)]) == _PKG_DIR


def _closure_identity(value, depth=0):
    """What a closure cell of a fasthw6 kernel stands for, the same in every process: a kernel
    (numba dispatcher) by its module, qualified name, bytecode and, in turn, its own cells;
    anything else by value.  ``None`` when a value has no such identity."""
    py_func = getattr(value, "py_func", None)
    if py_func is not None and hasattr(value, "overloads"):
        if not _ours(py_func) or depth > 8:
            return None
        cells = tuple(_closure_identity(c.cell_contents, depth + 1)
                      for c in (py_func.__closure__ or ()))
        if any(c is None for c in cells):
            return None
        code = py_func.__code__
        return ("kernel", py_func.__module__, py_func.__qualname__,
                hashlib.sha256(code.co_code).hexdigest(), cells)
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return ("value", value)
    if isinstance(value, tuple):
        items = tuple(_closure_identity(v, depth + 1) for v in value)
        return None if any(v is None for v in items) else ("tuple", items)
    return None


def _stable_closure_keys(caching) -> None:
    """Make the cache key of a fasthw6 kernel that closes over other kernels (the factories'
    variants: ``njit_variant``) the same in every process.

    numba keys a cached closure by a pickle of its cells, and a pickled dispatcher carries a
    random identifier drawn anew in each process.  A factory's kernel that calls another kernel
    from its closure (``score._make_forward``, ``estep_small._make_estep_small``) was therefore
    never found in the cache: every process compiled it again (seconds to tens of seconds on
    each first call) and added one more entry to the index.  Here such a cell is keyed by what
    the kernel is (:func:`_closure_identity`), and every other key stays numba's own.  Falls
    back to numba's key if its internals have moved."""
    cls = getattr(caching, "Cache", None)
    orig = getattr(cls, "_index_key", None)
    if orig is None or getattr(orig, "_fasthw6", False):
        return

    def _index_key(self, sig, codegen):
        py_func = getattr(self, "_py_func", None)
        if py_func is None or not py_func.__closure__ or not _ours(py_func):
            return orig(self, sig, codegen)
        cells = tuple(_closure_identity(c.cell_contents) for c in py_func.__closure__)
        if any(c is None for c in cells):
            return orig(self, sig, codegen)
        h = lambda b: hashlib.sha256(b).hexdigest()  # noqa: E731
        return (sig, codegen.magic_tuple(), (h(py_func.__code__.co_code), h(pickle.dumps(cells))))

    _index_key._fasthw6 = True
    cls._index_key = _index_key


def _lock_cache_saves(caching) -> None:
    """Serialise numba's cache writes under :func:`cache_dir` across processes.

    numba picks a data file name for a new entry from the index it read, then writes index and
    data, with no lock: two processes compiling different signatures of one kernel at once (the
    test suite's workers, ``fasthw6 compile``'s pool, background compilers) can both pick
    ``<kernel>.2.nbc``; the index then names one signature and the file holds the other's code,
    which a later process loads and runs: wrong results, seen once in a test run.  Here a save
    takes a lock file in the entry's folder, re-reads the index, writes the data, then the
    index that names it.  Falls back to numba's own save if its internals have moved."""
    cls = getattr(caching, "IndexDataCacheFile", None)
    orig = getattr(cls, "save", None)
    if orig is None or getattr(orig, "_fasthw6", False):
        return
    needed = ("_load_index", "_save_index", "_save_data", "_data_name")
    if not all(hasattr(cls, n) for n in needed):
        return

    try:
        import fcntl
    except ImportError:  # not POSIX: numba's save as it is
        return

    def save(self, key, data):
        folder = getattr(self, "_cache_path", None)
        if folder is None or os.path.commonpath([cache_dir(), os.path.abspath(folder)]) != cache_dir():
            return orig(self, key, data)

        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, "index.lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            overloads = self._load_index()
            name = overloads.get(key)
            if name is None:
                taken = set(overloads.values())
                name = next(n for n in map(self._data_name, itertools.count(1)) if n not in taken)
            self._save_data(name, data)
            if overloads.get(key) != name:
                overloads[key] = name
                self._save_index(overloads)

    save._fasthw6 = True
    cls.save = save


def njit_variant(tag, **options):
    """Decorator for a kernel that a factory makes once per compile-time constant (a state count
    N, say): ``numba.njit(cache=True, **options)`` under a name of its own, ``<name>_<tag>``.

    numba names a kernel's machine code after its qualified name and a counter private to the
    compiling process, so two variants from one factory (same qualified name), compiled by two
    processes into the cache, can carry the same symbol.  A process that then loads both links
    every call to whichever it loaded first -- the N=2 code running on N=3 data: wrong results
    or a crash, seen in test runs after the cache had been filled by parallel compilers.  The
    variant's own name gives it its own symbols (and its own index file in the cache)."""
    from numba import njit

    def rename(fn):
        fn.__name__ = f"{fn.__name__}_{tag}"
        fn.__qualname__ = f"{fn.__qualname__}_{tag}"
        return njit(cache=True, **options)(fn)

    return rename


def _file_key(path):
    st = os.stat(path)
    return path, st.st_mtime_ns, st.st_size


@functools.lru_cache(maxsize=64)
def _hash_files(keys):
    h = hashlib.sha256()
    for path, _, _ in keys:
        with open(path, "rb") as f:
            h.update(os.path.basename(path).encode() + b"\0" + f.read())
    return h.digest()


def source_stamp(py_file) -> bytes:
    """What a cached kernel of ``py_file`` is valid for.  numba stamps a kernel with its own
    file's contents, but a kernel's compiled code also holds what it calls or reads from other
    modules (numba inlines callees and freezes globals).  A kernel in a ``_numba`` package is
    stamped with every module of that package and the system's ``_sizes.py``, so that changing
    any of them (an upgrade, an edit) invalidates the cache instead of running stale code; a
    one-file ``_numba.py`` imports no other kernel module and keeps its own contents as stamp."""
    folder = os.path.dirname(os.path.abspath(py_file))
    if os.path.basename(folder) != "_numba":
        return _hash_files((_file_key(os.path.abspath(py_file)),))
    paths = sorted(os.path.join(folder, n) for n in os.listdir(folder) if n.endswith(".py"))
    sizes = os.path.join(os.path.dirname(folder), "_sizes.py")
    if os.path.exists(sizes):
        paths.append(sizes)
    return _hash_files(tuple(_file_key(p) for p in paths))


# --------------------------------------------------------------------------- the stand-in
def _typekey(a):
    """A cheap stand-in for numba.typeof(a): equal keys give equal numba types."""
    fl = getattr(a, "flags", None)
    if fl is not None and hasattr(a, "dtype"):
        return (a.dtype.str, a.ndim, fl.c_contiguous, fl.f_contiguous, fl.writeable, fl.aligned)
    return type(a)


def _load_cached(disp, sig) -> bool:
    """Whether ``disp`` has compiled code for ``sig`` now: in memory, or loaded from the cache
    (as numba's ``Dispatcher.compile`` does before compiling).  Never compiles."""
    try:
        from numba.core.compiler_lock import global_compiler_lock

        with global_compiler_lock:
            if tuple(sig) in disp.overloads:
                return True
            cres = disp._cache.load_overload(sig, disp.targetctx)
            if cres is None:
                return False
            if not cres.objectmode:
                disp.targetctx.insert_user_function(cres.entry_point, cres.fndesc, [cres.library])
            disp.add_overload(cres)
            return True
    except Exception:  # numba internals moved: treat as not ready (the stand-in answers)
        return False


_status: dict[str, dict] = {}
_lock = threading.Lock()
SMALL_CALL_BYTES = 1 << 18  # array bytes below which ``auto`` runs the Cython kernel


def _nbytes(args) -> int:
    return sum(getattr(a, "nbytes", 0) for a in args)


class AutoKernel:
    """The ``auto`` backend for one kernel (see :mod:`fasthw6._backend`).

    - A call whose array arguments hold fewer than ``SMALL_CALL_BYTES`` runs ``cython`` (built
      at install time): its work is too small to pay for numba's first call in a process, which
      imports numba and loads or compiles the kernel (a second or more).
    - A larger call runs ``fast`` (numba).  When ``identical`` -- the Cython kernel gives
      numba's bits -- and numba's code for the call's argument types is neither in memory nor
      in the cache, ``cython`` answers instead and a background process compiles numba's code.
      (Without ``identical``, numba compiles in the foreground: results then depend on the
      input alone, never on what happens to be compiled.)
    """

    def __init__(self, label, fast, cython, identical=True):
        self.label = label
        self.fast = fast
        self.cython = cython
        self.identical = identical
        self._ready: dict[tuple, object] = {}  # key -> True, or when numba was last looked for
        self._info = _status.setdefault(label, dict(ready=[], last=None, requested=[]))

    def __call__(self, *args):
        if _nbytes(args) < SMALL_CALL_BYTES:
            self._info["last"] = "cython"
            return self.cython(*args)
        if self.identical:
            key = tuple(map(_typekey, args))
            st = self._ready.get(key)
            if st is not True and (st is None or time.monotonic() - st >= RECHECK_S):
                st = self._probe(key, args)
            if st is not True:
                self._info["last"] = "cython"
                return self.cython(*args)
        self._info["last"] = "numba"
        return self.fast(*args)

    def _probe(self, key, args):
        import numba

        disp = getattr(self.fast, "dispatcher", self.fast)
        sig = tuple(numba.typeof(a) for a in args)
        if _load_cached(disp, sig):
            self._ready[key] = True
            self._info["ready"].append(str(sig))
            return True
        first = key not in self._ready
        self._ready[key] = time.monotonic()
        if first:
            _request(disp, sig, self.label)
        return self._ready[key]


class CompileWarning(UserWarning):
    """A numba kernel is about to be compiled in the foreground (a new argument-type signature
    under ``backend="numba"``): the call takes seconds to a minute longer, once; later calls and
    later processes load the code from :func:`cache_dir`.  Silence it with
    ``warnings.simplefilter("ignore", fasthw6.CompileWarning)``; ``fasthw6 compile`` builds
    the cache ahead of time."""


_log = logging.getLogger("fasthw6.jit")


class NoticeKernel:
    """A numba kernel that says so, once per argument types, before it compiles: a
    :class:`CompileWarning` and an INFO record on the ``fasthw6.jit`` logger.  Otherwise the
    kernel itself (the check is one dict lookup per call)."""

    def __init__(self, label, fast):
        self.label = label
        self.fast = fast
        self.dispatcher = getattr(fast, "dispatcher", fast)
        self._seen: set = set()

    def __call__(self, *args):
        key = tuple(map(_typekey, args))
        if key not in self._seen:
            self._notice(args)
            self._seen.add(key)
        return self.fast(*args)

    def _notice(self, args):
        import numba

        try:
            sig = tuple(numba.typeof(a) for a in args)
        except Exception:  # an argument numba types only when compiling: let it say so
            return
        if _load_cached(self.dispatcher, sig):
            return
        msg = (f"compiling numba kernel {self.label} for ({', '.join(map(str, sig))}): once, "
               f"seconds to a minute; later calls and processes load it from {cache_dir()}")
        _log.info(msg)
        import warnings

        warnings.warn(msg, CompileWarning, stacklevel=3)

    def __getattr__(self, name):  # the dispatcher's attributes (signatures, py_func, ...)
        return getattr(self.fast, name)


# --------------------------------------------------------------------------- background compiler
_children: list[subprocess.Popen] = []


def background_enabled() -> bool:
    """Whether ``auto`` may start background compilations (``FASTHW6_BACKGROUND_COMPILE``)."""
    return os.environ.get(_ENV_BG, "1").strip().lower() not in ("0", "false", "no", "off")


def _request(disp, sig, label) -> None:
    """Start a low-priority process compiling ``disp`` for ``sig`` into the cache.  It runs in
    its own session, so it finishes and stores its work even if this process exits first;
    concurrent ones queue on a lock file (``_compile_jobs``)."""
    if not background_enabled():
        return
    with _lock:
        _status[label]["requested"].append(str(sig))
        fd, path = tempfile.mkstemp(prefix="fasthw6-jit-", suffix=".pkl")
        with os.fdopen(fd, "wb") as f:
            pickle.dump([(disp.py_func.__module__, disp.py_func.__name__, sig)], f)
        try:
            os.makedirs(cache_dir(), exist_ok=True)
            with open(os.path.join(cache_dir(), "background-compile.log"), "ab") as log:
                _children.append(subprocess.Popen(
                    [sys.executable, "-m", "fasthw6._jit", path], stdin=subprocess.DEVNULL,
                    stdout=log, stderr=log, start_new_session=True))
        except OSError:  # no cache folder or no process to spare: stay on the stand-in
            with contextlib.suppress(OSError):
                os.unlink(path)


def wait_background(timeout: float | None = None) -> bool:
    """Wait until the background compilations this process started have finished; True if
    they have (for scripts and tests that want numba's code in the cache before going on)."""
    t_end = None if timeout is None else time.monotonic() + timeout
    for p in list(_children):
        try:
            p.wait(None if t_end is None else max(0.0, t_end - time.monotonic()))
        except subprocess.TimeoutExpired:
            return False
    return True


def _compile_jobs(path: str) -> None:
    """Body of the background process: compile each (module, function, signature) into the
    cache, one machine-wide at a time (a second process finds the first one's result there)."""
    with contextlib.suppress(OSError):
        os.nice(19)
    try:
        with open(path, "rb") as f:
            jobs = pickle.load(f)
    finally:
        os.unlink(path)
    import fcntl
    import importlib

    os.makedirs(cache_dir(), exist_ok=True)
    with open(os.path.join(cache_dir(), "compile.lock"), "w") as lockf:
        fcntl.flock(lockf, fcntl.LOCK_EX)
        for mod, name, sig in jobs:
            t0 = time.perf_counter()
            getattr(importlib.import_module(mod), name).compile(sig)
            print(f"{time.strftime('%Y-%m-%d %H:%M:%S')} compiled {mod}.{name}{sig} in "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)


def jit_status() -> dict[str, dict]:
    """Per kernel run through the ``auto`` stand-in so far: the argument types numba's code is
    ready for, those sent to the background compiler, and the backend of the last call.

    Examples
    --------
    >>> isinstance(jit_status(), dict)
    True
    """
    return {k: dict(v, ready=list(v["ready"]), requested=list(v["requested"]))
            for k, v in _status.items()}


if __name__ == "__main__":
    _compile_jobs(sys.argv[1])


# --------------------------------------------------------------------------- ahead of time
SYSTEMS = ("hmm", "seqio", "conv", "nn", "vae", "svm")
FLOATS = ("float64", "float32")
SYMBOLS = ("int64", "uint8")  # the HMM kernels' two symbol types (fasthw6.hmm._checks._CANON)


def _warm_hmm(floating, symbols):
    import numpy as np

    from .hmm import CategoricalHMM, api

    sp = np.array([0.6, 0.4])
    tm = np.array([[0.7, 0.3], [0.4, 0.6]])
    em = np.array([[0.5, 0.4, 0.1], [0.1, 0.3, 0.6]])
    X = (np.arange(1 << 16) % 3).astype(symbols)  # large enough for the range kernel
    L = [1 << 15, 1 << 15]
    kw = dict(dtype=np.dtype(floating), backend="numba")
    api.score_sequences(X, L, sp, tm, em, **kw)
    api.posteriors(X[:9], [4, 5], sp, tm, em, **kw)
    api.em_statistics(X[:9], [4, 5], sp, tm, em, **kw)
    if floating == "float64":
        api.viterbi(X[:9], [4, 5], sp, tm, em, backend="numba")
        m = CategoricalHMM(2, random_state=0, backend="numba")
        m.startprob_, m.transmat_, m.emissionprob_ = sp, tm, em
        m.sample(5, random_state=0)
        from .hmm import score_models

        score_models([(sp, tm, em)], X[:9], [4, 5], backend="numba")
    if symbols == "int64":  # the framewise engine's symbols are frame indices (int64)
        from .hmm import GaussianHMM

        g = GaussianHMM(2, "diag", init_params="", n_iter=1, dtype=np.dtype(floating),
                        backend="numba")
        g.startprob_, g.transmat_ = sp, tm
        g.means_, g.covars_ = np.array([[0.0], [3.0]]), np.array([[1.0], [2.0]])
        F = np.linspace(-2.0, 5.0, 9)[:, None]
        g.fit(F, [4, 5])
        g.predict(F, [4, 5])
        f = GaussianHMM(2, "full", init_params="", n_iter=1, dtype=np.dtype(floating),
                        backend="numba")  # few states: full_frames and full_moments
        f.startprob_, f.transmat_ = sp, tm
        f.means_, f.covars_ = g.means_, np.array([[[1.0]], [[2.0]]])
        f.fit(F, [4, 5])
        f.predict(F, [4, 5])
        if floating == "float64":  # float64 frames are scored from their logs, in the kernel
            from .hmm import _gaussian as G, score_frames

            g.score(F, [4, 5])  # few states, narrow frames: forward_loglik_diag_lanes
            # from these many states on, diagonal densities are computed inside the scoring
            # and Viterbi kernels (forward_loglik_diag, viterbi_diag)
            k = max(G.FUSED_MIN_N, G.FUSED_VITERBI_MIN_N)
            d = GaussianHMM(k, "diag", init_params="", backend="numba")
            d.startprob_, d.transmat_ = np.full(k, 1.0 / k), np.full((k, k), 1.0 / k)
            d.means_, d.covars_ = np.arange(k, dtype=float)[:, None], np.ones((k, 1))
            d.score(F, [4, 5])
            d.predict(F, [4, 5])

            score_frames(np.log(em).T[X[:9].astype(np.int64)], [4, 5], sp, tm, backend="numba")


def _warm_seqio(floating, symbols):
    from .seqio import read_sequences

    import io

    read_sequences(io.BytesIO(b"0 1 2\n2 1\n"), n_symbols=3, backend="numba")


def _warm_conv(floating, symbols):
    import numpy as np

    from . import conv

    x = np.ones((1, 8, 4, 4), floating)
    conv.conv2d(x, np.ones((2, 8, 3, 3), floating), backend="numba", activation="relu")
    conv.conv_transpose2d(x, np.ones((8, 2, 3, 3), floating), stride=2, backend="numba")
    conv.conv_transpose2d(x, np.ones((8, 8, 3, 3), floating), stride=2, backend="numba")  # GEMM


def _warm_nn(floating, symbols):
    import numpy as np

    from .nn import api

    for shape in ((8, 4), (4, 3, 2, 2)):
        x = np.arange(np.prod(shape), dtype=floating).reshape(shape) % 5
        api.batchnorm_forward_backward(x, None, None, np.ones_like(x), backend="numba")
        api.batchnorm_forward(x, training=False, running_mean=np.zeros(shape[1], floating),
                              running_var=np.ones(shape[1], floating), backend="numba")


def _warm_vae(floating, symbols):
    import numpy as np

    from .vae import api

    m = np.ones((4, 3), floating)
    api.latent_forward(m, m, m, backend="numba")
    api.latent_backward(m, 1.0, m, m, m, backend="numba")


def _warm_svm(floating, symbols):
    import numpy as np

    from .svm import HardMarginSVC

    if floating == "float64":
        HardMarginSVC(backend="numba").fit(np.array([[1.0, 2.0], [2.0, 3.0], [-1.0, -1.0]]), [1, 1, 0])


def _tasks(systems, floats, symbols):
    """(label, system, float dtype, symbol dtype) of each compile task."""
    out = []
    for s in systems:
        if s == "seqio":  # bytes in, int32 out: one signature
            out.append(("seqio", s, None, None))
        elif s == "svm":  # float64 only
            out += [("svm float64", s, "float64", None)] if "float64" in floats else []
        elif s == "hmm":
            out += [(f"hmm {f} {x} symbols", s, f, x) for f in floats for x in symbols]
        else:
            out += [(f"{s} {f}", s, f, None) for f in floats]
    return out


def _run_task(system, floating, symbols):
    install_cache_locator()
    t0 = time.perf_counter()
    globals()[f"_warm_{system}"](floating, symbols)
    return time.perf_counter() - t0


def compile_all(systems=SYSTEMS, floats=FLOATS, symbols=SYMBOLS, jobs=None, progress=None,
                exclude=()):
    """Compile numba's kernels into the cache ahead of time (``fasthw6 compile``): for container
    images, Dask workers and CI, so that no later process compiles.

    Parameters
    ----------
    systems : iterable of str
        Among ``SYSTEMS``.
    floats, symbols : iterable of str
        Float dtypes (all systems) and HMM symbol dtypes to compile for.
    jobs : int, optional
        Processes compiling in parallel (default: the CPUs available).
    progress : callable, optional
        Called as ``progress(label, seconds)`` after each task.
    exclude : iterable of str
        Labels of tasks to leave out (e.g. ``"hmm float32 uint8 symbols"``).

    Returns
    -------
    dict
        label -> seconds it took (a few hundredths when the cache had it already).
    """
    from concurrent.futures import ProcessPoolExecutor, as_completed
    import multiprocessing

    tasks = [t for t in _tasks(systems, floats, symbols) if t[0] not in set(exclude)]
    jobs = max(1, min(len(tasks) or 1, jobs or len(os.sched_getaffinity(0))))
    done = {}
    # processes started fresh (not forked from a process that may hold numba's threads or locks)
    with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futs = {pool.submit(_run_task, s, f, x): label for label, s, f, x in tasks}
        for fut in as_completed(futs):
            done[futs[fut]] = fut.result()
            if progress is not None:
                progress(futs[fut], done[futs[fut]])
    return done
