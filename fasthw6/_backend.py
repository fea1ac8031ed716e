"""The one dispatch point: which implementation runs a kernel.

Every system package (``fasthw6.conv``, ``fasthw6.hmm``, ...) keeps its kernels in three modules
with the same function names and signatures:

- ``_numba``   -- ``@njit`` kernels (backend ``"numba"``);
- ``_cython``  -- compiled Cython kernels (backend ``"cython"``);
- ``reference`` -- naive NumPy, obviously right (backend ``"numpy"``).

``get_kernel(system, name, backend)`` is the only place that chooses among them.  The choice is,
in order of precedence: the ``backend=`` argument of a call, the innermost ``use_backend()``
block, ``set_backend()``, the ``FASTHW6_BACKEND`` environment variable, then ``"auto"``.

``"auto"`` runs a small call on the Cython kernels, built at install time, and a large one on
numba's once numba's compiled code for the call's argument types is in memory or in the on-disk
cache; until then Cython answers and numba's code is compiled in the background
(:mod:`fasthw6._jit`).  The Cython kernels give bit for bit numba's results (``STANDIN``), so a
fresh installation answers in milliseconds, not after a minute of compilation, and every answer
is the same whichever kernel gave it.  Without the Cython build ``auto`` is numba (compiling
at the first call), without numba Cython, without both NumPy.

The same registry drives the equivalence tests and the benchmarks: ``comparisons(op)`` returns
every available backend of a public function plus every installed anchor library registered
for it with ``register_anchor``.

In a forked process (``os.fork``, multiprocessing's ``"fork"`` start method) numba's parallel
kernels (``conv``, ``nn``, ``vae``) cannot run when numba's threading layer is GNU OpenMP, the
usual one on Linux without TBB: numba kills a child of the process that started it with
SIGTERM, and GNU OpenMP's pool of the forking thread is stale there.  ``get_kernel`` (and
``auto``) then hand out the Cython kernel of the same name instead, which gives numba's bits
(``STANDIN``), on one thread in the forking thread (:mod:`fasthw6._parallel` has the whole rule);
without the Cython build such a call raises RuntimeError naming the remedies.  Under numba's TBB
or workqueue layer (``pip install tbb``, or ``NUMBA_THREADING_LAYER``) numba's kernels run in the
child as they are.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import importlib
import importlib.util
import os
import warnings
from typing import Callable, Iterator

BACKENDS = ("numba", "cython", "numpy")
# systems whose Cython kernels give bit for bit numba's results, so that ``auto`` may answer with
# them while numba's code is compiling (tests/test_*bitidentity.py and test_seqio.py hold them
# to it): every system today
STANDIN = frozenset({"hmm", "seqio", "conv", "nn", "svm", "vae"})
_MODULE = {"numba": "_numba", "cython": "_cython", "numpy": "reference"}
_ENV = "FASTHW6_BACKEND"

_global_choice: str | None = None  # set_backend(); None means "read the environment"
_context_choice: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "fasthw6_backend", default=None
)


@functools.lru_cache(maxsize=None)
def _preload_cython_blas() -> None:
    """Load ``scipy.linalg.cython_blas`` (the BLAS the HMM and convolution Cython kernels call)
    without importing the ``scipy.linalg`` package around it, which the kernels do not use and
    which costs 0.1-0.3 s: the module is registered under its own name, so the kernels' import of
    it finds it, and a later ``import scipy.linalg`` adopts it.  Any surprise (another scipy
    layout): nothing is done and the ordinary import happens."""
    import sys

    name = "scipy.linalg.cython_blas"
    if name in sys.modules or "scipy.linalg" in sys.modules:
        return
    try:
        import importlib.machinery

        spec = importlib.util.find_spec("scipy")
        if spec is None or not spec.submodule_search_locations:
            return
        folder = os.path.join(list(spec.submodule_search_locations)[0], "linalg")
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = os.path.join(folder, "cython_blas" + suffix)
            if os.path.exists(path):
                break
        else:
            return
        blas_spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(blas_spec)
        sys.modules[name] = mod
        try:
            blas_spec.loader.exec_module(mod)
        except BaseException:
            del sys.modules[name]
            raise
    except Exception:  # noqa: BLE001 -- fall back to the plain import
        return


@functools.lru_cache(maxsize=None)
def _backend_importable(backend: str) -> bool:
    if backend == "numpy":
        return True
    if backend == "numba":  # found, not imported: numba is imported by the first call that runs it
        return importlib.util.find_spec("numba") is not None
    # cython: the extensions are built together, so one probe stands for all of them
    _preload_cython_blas()
    try:
        importlib.import_module("fasthw6.conv._cython")
    except ImportError:
        return False
    return True


def available_backends() -> list[str]:
    """Backends usable in this installation, best first.

    Returns
    -------
    list of str
        A subset of ``["numba", "cython", "numpy"]``; ``"numpy"`` is always present.

    Examples
    --------
    >>> "numpy" in available_backends()
    True
    """
    return [b for b in BACKENDS if _backend_importable(b)]


def _check_name(name: str, what: str = "backend") -> str:
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a str, got {type(name).__name__}")
    name = name.strip().lower()
    if name == "auto":
        return name
    if name not in BACKENDS or not _backend_importable(name):
        avail = ", ".join(["auto"] + available_backends())
        state = "unknown" if name not in BACKENDS else "not available in this installation"
        raise ValueError(f"{what} {name!r} is {state}; available: {avail}")
    return name


def resolve_backend(backend: str | None = None) -> str:
    """The backend a call with this ``backend=`` argument uses: ``"auto"``, ``"numba"``,
    ``"cython"`` or ``"numpy"`` (after the precedence rules of the module docstring)."""
    for choice in (backend, _context_choice.get(), _global_choice):
        if choice is not None:
            return _check_name(choice)
    env = os.environ.get(_ENV)
    if env:
        return _check_name(env, f"{_ENV} environment variable")
    return "auto"


def get_backend() -> str:
    """The backend calls without ``backend=`` use now: ``"auto"`` (see the module docstring;
    :func:`fasthw6.jit_status` tells which kernel ``auto`` ran), ``"numba"``, ``"cython"`` or
    ``"numpy"``.

    Examples
    --------
    >>> get_backend() in ("auto", "numba", "cython", "numpy")
    True
    """
    return resolve_backend(None)


def set_backend(name: str) -> None:
    """Set the process-wide default backend (``"auto"``, ``"numba"``, ``"cython"`` or ``"numpy"``).

    Raises
    ------
    ValueError
        If ``name`` is unknown or not available; the message lists the available ones.

    Examples
    --------
    >>> set_backend("numpy"); get_backend()
    'numpy'
    >>> set_backend("auto")
    """
    global _global_choice
    _global_choice = _check_name(name)


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[str]:
    """Context manager selecting a backend for the calls made inside it (thread/task local).

    Examples
    --------
    >>> with use_backend("numpy"):
    ...     get_backend()
    'numpy'
    """
    token = _context_choice.set(_check_name(name))
    try:
        yield get_backend()
    finally:
        _context_choice.reset(token)


@contextlib.contextmanager
def single_threaded() -> Iterator[None]:
    """numba kernels, BLAS and OpenMP pools on one thread inside the block.

    For loops of many tiny kernel calls (training small networks): there, waking a thread pool
    costs more than the work, about a millisecond per call on a busy machine.  threadpoolctl
    limits the BLAS/OpenMP pools where it is installed.

    Examples
    --------
    >>> with single_threaded():
    ...     pass
    """
    try:
        import numba
    except ImportError:
        numba = None
    prev = numba.get_num_threads() if numba is not None else None
    if numba is not None:
        numba.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        limits = contextlib.nullcontext()
    else:
        limits = threadpool_limits(limits=1)
    try:
        with limits:
            yield
    finally:
        if numba is not None:
            numba.set_num_threads(prev)


@functools.lru_cache(maxsize=None)
def _module(system: str, backend: str):
    if backend == "cython":
        _preload_cython_blas()
    try:
        return importlib.import_module(f"fasthw6.{system}.{_MODULE[backend]}")
    except ImportError as exc:
        avail = ", ".join(b for b in available_backends() if b != backend)
        raise ValueError(
            f"backend {backend!r} is not available for fasthw6.{system} ({exc}); "
            f"available: {avail}"
        ) from exc


def _auto_backend(system: str) -> str:
    """The backend ``auto`` falls back to in ``system`` when the other is missing: numba, else
    Cython, else NumPy."""
    for b in BACKENDS:
        if _has_module(system, b):
            return b
    return "numpy"


@functools.lru_cache(maxsize=None)
def _has_module(system: str, backend: str) -> bool:
    if not _backend_importable(backend):
        return False
    try:
        _module(system, backend)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=None)
def _auto_kernel(system: str, name: str) -> Callable:
    """``auto``'s kernel ``name`` of ``system``: small calls on Cython, large ones on numba once
    its code is compiled (``fasthw6._jit.AutoKernel``).  numba is imported only when a large
    call comes."""
    if not _backend_importable("cython") or not _has_module(system, "cython"):
        fallback = _auto_backend(system)
        if fallback == "numba":
            _warn_no_cython()
        return getattr(_module(system, fallback), name)
    cython = getattr(_module(system, "cython"), name)
    if not _backend_importable("numba"):
        return cython
    from ._jit import AutoKernel

    return AutoKernel(f"{system}.{name}", _LazyKernel(system, name), cython,
                      identical=system in STANDIN)


def _source_checkout() -> bool:
    """Whether fasthw6 is imported from a source tree (its folder beside setup.py)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.exists(os.path.join(root, "setup.py"))


@functools.lru_cache(maxsize=None)
def _warn_no_cython() -> None:
    """Say once why first calls are slow when ``auto`` has only numba: without the Cython
    build nothing answers while numba compiles.  The usual cause is running Python from the
    repository after ``pip install .``: the checkout, not the installed copy, is imported, and
    its extensions were never built in place."""
    where = os.path.dirname(os.path.abspath(__file__))
    hint = (f"fasthw6 is imported from the source tree {where}, whose extensions are not built: "
            f"run from outside the checkout (to use the installed copy) or build them in place "
            f"with `pip install -e .`" if _source_checkout() else
            "reinstall fasthw6 where a C compiler is available, or build the cache ahead of "
            "time with `fasthw6 compile`")
    warnings.warn(f"fasthw6's Cython kernels are missing, so the first call of each function "
                  f"compiles numba's kernels (10-60 s); {hint}", RuntimeWarning, stacklevel=4)


class _LazyKernel:
    """numba's kernel, its module imported at the first call."""

    def __init__(self, system, name):
        self.system, self.name, self._fn = system, name, None

    def __call__(self, *args):
        if self._fn is None:
            self._fn = getattr(_module(self.system, "numba"), self.name)
        if _forked:
            return _forked_numba(self.system, self.name, self._fn)(*args)
        return self._fn(*args)

    @property
    def dispatcher(self):
        if self._fn is None:
            self._fn = getattr(_module(self.system, "numba"), self.name)
        return self._fn


def get_kernel(system: str, name: str, backend: str | None = None) -> Callable:
    """Return kernel ``name`` of ``fasthw6.<system>`` for the resolved backend (in a forked
    process, numba's parallel kernels may give way to Cython's: see the module docstring)."""
    b = resolve_backend(backend)
    if b == "auto":
        return _auto_kernel(system, name)
    fn = getattr(_module(system, b), name)
    if _forked and b == "numba":
        return _forked_numba(system, name, fn)
    if b == "numba" and hasattr(fn, "py_func"):
        return _noticed(system, name, fn)
    return fn


@functools.lru_cache(maxsize=None)
def _noticed(system: str, name: str, fn: Callable) -> Callable:
    """numba's kernel, saying so before it compiles (``fasthw6._jit.NoticeKernel``)."""
    from ._jit import NoticeKernel

    return NoticeKernel(f"{system}.{name}", fn)


# --------------------------------------------------------------------------- forked processes
_forked = False  # True in a process forked from one that imported fasthw6


def _after_fork_in_child() -> None:
    global _forked
    _forked = True
    _numba_fork_safe.cache_clear()  # the answer depends on what ran before this fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _forked_numba(system: str, name: str, fn: Callable) -> Callable:
    """numba's kernel ``fn`` in a forked process: itself when it runs no parallel region or
    numba's threading layer is fork safe, else Cython's kernel of the same name (bit for bit
    numba's), else a RuntimeError naming the remedies."""
    if not getattr(fn, "targetoptions", {}).get("parallel") or _numba_fork_safe():
        return fn
    if system in STANDIN and _has_module(system, "cython"):
        return getattr(_module(system, "cython"), name)
    raise RuntimeError(
        f"numba's parallel kernel fasthw6.{system}.{name} cannot run in a forked process: numba's "
        "GNU OpenMP threading layer is not fork safe (numba terminates such a child), and the "
        "Cython kernels that stand in for it there are not built.  Start worker processes with "
        "multiprocessing's 'spawn' or 'forkserver' method, build the Cython extensions, or give "
        "numba a fork-safe threading layer (pip install tbb, or NUMBA_THREADING_LAYER=workqueue, "
        "which is not thread safe)")


def _next_threading_layer() -> str:
    """The threading layer numba would start now (it starts one at the first parallel call):
    ``"tbb"``, ``"omp"``, ``"workqueue"``, or ``"forksafe"`` for a choice numba makes among
    fork-safe layers only."""
    from numba.core import config

    t = str(config.THREADING_LAYER).lower()
    if t in ("tbb", "omp", "workqueue"):
        return t
    if t in ("safe", "forksafe"):
        return "forksafe"
    order = ["tbb", "omp"] if t == "threadsafe" else list(config.THREADING_LAYER_PRIORITY)
    for layer in order:
        try:
            if layer == "tbb":
                from numba.np.ufunc.parallel import _check_tbb_version_compatible

                _check_tbb_version_compatible()
                importlib.import_module("numba.np.ufunc.tbbpool")
            elif layer == "omp":
                importlib.import_module("numba.np.ufunc.omppool")
            return layer
        except Exception:  # noqa: BLE001 -- not installed (or numba moved it): the next one
            continue
    return "omp"  # unknown: assume the unsafe one


@functools.lru_cache(maxsize=None)
def _numba_fork_safe() -> bool:
    """Whether numba's parallel kernels can run in this forked process: its threading layer
    (started before the fork, else the one it would start) is TBB, workqueue, or an OpenMP
    other than GNU's.  GNU OpenMP is not fork safe: numba terminates a child of the process
    that started it, and a region led by the forking thread waits for the parent's threads."""
    try:
        import numba

        try:
            layer = numba.threading_layer()
        except ValueError:  # not started before the fork
            layer = _next_threading_layer()
        if layer == "omp":
            from numba.np.ufunc import omppool

            return getattr(omppool, "openmp_vendor", "GNU") != "GNU"
    except Exception:  # noqa: BLE001 -- numba's internals moved: assume the unsafe layer
        return False
    return layer in ("tbb", "workqueue", "forksafe")


def kernel_threads(system: str, backend: str | None = None) -> int:
    """Threads the parallel kernels of ``fasthw6.<system>`` run on under ``backend`` now (1 for
    a backend module without an ``n_threads`` function: it does not run in parallel).  Under
    ``auto`` that of the backend ``auto`` runs, so the work is cut into the same chunks
    whether numba or Cython takes the call (numba is not imported for it)."""
    b = resolve_backend(backend)
    if b == "auto":
        b = "cython" if _has_module(system, "cython") else _auto_backend(system)
    fn = getattr(_module(system, b), "n_threads", None)
    return max(1, int(fn())) if fn is not None else 1


# --------------------------------------------------------------------------- comparisons
# op -> anchor name -> loader; a loader returns a callable with the public function's
# signature (minus ``backend=``) or raises ImportError when its library is not installed.
_ANCHORS: dict[str, dict[str, Callable[[], Callable]]] = {}


def register_anchor(op: str, name: str):
    """Decorator registering a loader for an anchor implementation of public function ``op``."""

    def deco(loader: Callable[[], Callable]) -> Callable[[], Callable]:
        _ANCHORS.setdefault(op, {})[name] = loader
        return loader

    return deco


def anchors(op: str) -> dict[str, Callable | None]:
    """Every anchor registered for ``op``: name -> callable, or None when not installed."""
    out: dict[str, Callable | None] = {}
    for name, loader in _ANCHORS.get(op, {}).items():
        try:
            out[name] = loader()
        except ImportError:
            out[name] = None
    return out


def comparisons(op: str, public: Callable, with_anchors: bool = True) -> dict[str, Callable | None]:
    """Every implementation of public function ``op``: each backend, then each anchor.

    Backends not available here map to None, as do anchors whose library is missing, so a
    caller (a test or a benchmark) can skip them by name.
    """
    out: dict[str, Callable | None] = {}
    for b in BACKENDS:
        out[b] = functools.partial(public, backend=b) if _backend_importable(b) else None
    if with_anchors:
        out.update(anchors(op))
    return out
