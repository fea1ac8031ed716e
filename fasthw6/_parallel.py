"""Parallelism for the HMM kernels: a batch cut into pieces, run on a pool of Python threads.

The compiled kernels are serial and release the GIL (numba ``nogil=True``, Cython ``nogil``).
A batch function cuts its work into independent pieces (contiguous ranges of sequences of about
equal symbol count) and :func:`run_pieces` runs them on up to ``n_threads`` threads.  Both
compiled backends get the same pieces, so their results stay bit for bit equal at any thread
count.

Why not numba's ``parallel=True``: a parallel function costs numba's parfor passes at every
compilation, 30% of the HMM kernels' first-call time (one float/symbol dtype set: 109 -> 79 s),
and a signal cannot reach Python while a parallel region runs.  Here the calling thread only
waits (an interruptible wait), so Ctrl-C raises ``KeyboardInterrupt`` in the caller at once;
pieces not yet started are dropped, and the ones running finish into buffers nobody reads.

Forked processes (``os.fork``, ``multiprocessing`` with the ``"fork"`` start method, the default
on Linux before Python 3.14) run every kernel, with the parent's results, after the parent has
run kernels itself; ``tests/test_fork.py`` holds them to it:

- this pool: a child has none of the parent's threads, so it starts a pool of its own;
- the Cython kernels of ``conv``, ``nn`` and ``vae`` (OpenMP regions): GNU OpenMP keeps a pool of
  workers for each thread that has led a region, and in a child the forking thread's pool lists
  workers that do not exist there: a region it led on more than one thread would wait for them
  forever.  In the child that thread (its main thread, :func:`forked_thread`) runs those kernels
  on one thread; threads the child starts get fresh pools and every thread;
- numba's parallel kernels (the same three systems): numba terminates a child of a process that
  started its GNU OpenMP threading layer (SIGTERM), so in a child the Cython kernels, bit for
  bit numba's, answer instead (one thread in the main thread, as above).  Without the Cython
  build such a call raises RuntimeError.  Under numba's TBB layer (``pip install tbb``) or
  workqueue layer numba's kernels run in the child as they are (:mod:`fasthw6._backend`).

A child thus computes single-threaded in its main thread, usually what a pool of worker
processes wants.  The ``"spawn"`` and ``"forkserver"`` start methods avoid all of this, at the
cost of importing fasthw6 (and loading numba's kernels) in every worker.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import queue
import threading
from typing import Callable

import numpy as np

_lock = threading.Lock()
_pool: "_Pool | None" = None
_forked_thread = 0  # in a forked process, the thread that forked it (its ident); else 0

#: A call whose ``work`` (about the scalar operations it does) is below this runs its pieces
#: in the calling thread when it has one thread: handing them to a pool thread costs tens of
#: microseconds, and a call this small (~10 ms) ends before a Ctrl-C needs answering.
INLINE_WORK = 1 << 24
#: The main thread's wait for the pieces wakes this often (seconds) even without a signal.
WAIT_SLICE = 0.25


def _after_fork_in_child() -> None:
    """A forked child has none of the parent's threads: start a new pool when it needs one,
    and remember which thread forked (see the module docstring)."""
    global _pool, _lock, _forked_thread
    _pool, _lock = None, threading.Lock()
    _forked_thread = threading.get_ident()


def forked_thread() -> int:
    """The ident (``threading.get_ident()``) of the thread that forked this process, the only
    thread a forked process starts with; 0 in a process that was not forked (or forked before
    fasthw6 was imported).  OpenMP regions led by it run on one thread."""
    return _forked_thread


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class _Pool:
    """Daemon threads taking callables from a queue: a daemon thread still finishing the piece
    of an interrupted call does not hold up the interpreter's exit (a ThreadPoolExecutor's
    threads are joined at exit)."""

    def __init__(self, n: int):
        self.size = n
        self.tasks: queue.SimpleQueue = queue.SimpleQueue()
        self.threads = [threading.Thread(target=self._loop, name=f"fasthw6-{i}", daemon=True)
                        for i in range(n)]
        for t in self.threads:
            t.start()

    def _loop(self) -> None:
        while True:
            task = self.tasks.get()
            if task is None:
                return
            task()

    def retire(self) -> None:
        """Let every thread end once it has finished what it is running."""
        for _ in self.threads:
            self.tasks.put(None)


def _executor(n: int) -> _Pool:
    global _pool
    with _lock:
        if _pool is None or _pool.size < n:
            old = _pool
            _pool = _Pool(n)
            if old is not None:
                old.retire()
        return _pool


def _retire(pool: _Pool) -> None:
    """An interrupted call's pool, whose threads may still run a piece nobody waits for: the
    next call gets a fresh pool instead of queueing behind them; these end after the piece."""
    global _pool
    with _lock:
        if _pool is pool:
            _pool = None
    pool.retire()


_local = threading.local()


@contextlib.contextmanager
def _thread_setting(name: str, value):
    """This thread's setting ``name`` (an attribute of ``_local``) is ``value`` inside the
    block, and what it was before after it."""
    before = getattr(_local, name, None)
    setattr(_local, name, value)
    try:
        yield
    finally:
        setattr(_local, name, before)


@contextlib.contextmanager
def inline_pieces():
    """Inside the block, :func:`run_pieces` called from this thread runs every piece in this
    thread, in order: for work that is already spread over the threads one level up (pieces
    of pieces), which would otherwise wait on the pool it is running on.

    Examples
    --------
    >>> seen = []
    >>> with inline_pieces():
    ...     run_pieces(seen.append, 3, 4, work=1 << 30)
    >>> seen
    [0, 1, 2]
    """
    with _thread_setting("inline", True):
        yield


@contextlib.contextmanager
def reuse_buffers(pool: dict):
    """Inside the block, :func:`scratch` called from this thread hands out views of the arrays
    kept in ``pool`` (a dict owned by this thread), grown when too small, instead of new ones.

    For work done chunk after chunk in one thread: each chunk's per-frame tables (emissions,
    γ) would otherwise be new arrays, and every page of them faulted in and zeroed by the
    kernel again.  numba, one thread, 2000 x 500 frames, one GaussianHMM diag E-step in 4 MB
    chunks: N=3 D=4 15000 page faults, N=16 D=4 40000 (about 1.6 us each).  What
    :func:`scratch` returns is valid until the next request of its key in this thread: none
    of it may outlive the chunk.

    Examples
    --------
    >>> pool = {}
    >>> with reuse_buffers(pool):
    ...     a = scratch("x", (2, 3))
    ...     b = scratch("x", 4)
    >>> bool(np.shares_memory(a, b)), sorted(pool)
    (True, ['x'])
    """
    with _thread_setting("buffers", pool):
        yield


def scratch(key: str, shape, dtype=float, zero: bool = False):
    """An array of ``shape`` and ``dtype`` (zero-filled with ``zero``): inside
    :func:`reuse_buffers`, a view of that pool's array for ``key``; else a new one."""
    pool = getattr(_local, "buffers", None)
    if pool is None:
        return np.zeros(shape, dtype) if zero else np.empty(shape, dtype)
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64))
    buf = pool.get(key)
    if buf is None or buf.dtype != dtype or buf.shape[0] < size:
        buf = pool[key] = np.empty(size, dtype)
    out = buf[:size].reshape(shape)
    if zero:
        out.fill(0)
    return out


def run_pieces(fn: Callable[[int], None], n_pieces: int, n_threads: int,
               work: int = 0) -> None:
    """Call ``fn(i)`` for every ``i`` in ``range(n_pieces)``, on at most ``n_threads`` threads.

    One thread, one piece, or a small call (``work``, about the scalar operations of the whole
    call, below :data:`INLINE_WORK`, or a call from a thread other than the main one), or
    inside :func:`inline_pieces`: in the calling thread, in order.  Otherwise on the pool's
    threads, each taking the next piece not yet taken, while the caller waits; from the main
    thread an interruptible wait, so Ctrl-C (or any signal handler's exception) is raised here
    at once, the pieces not yet taken are dropped and the running ones finish, on their own,
    into buffers nobody reads.  The first exception of a piece (``KeyboardInterrupt``
    included) also stops the hand-out of pieces and is raised here.

    Examples
    --------
    >>> out = [0] * 5
    >>> def square(i):
    ...     out[i] = i * i
    >>> run_pieces(square, 5, 2)
    >>> out
    [0, 1, 4, 9, 16]
    >>> run_pieces(square, 5, 1, work=1 << 30)  # one pool thread, the caller waits
    >>> out
    [0, 1, 4, 9, 16]
    """
    n_threads = max(1, min(int(n_threads), n_pieces))
    if getattr(_local, "inline", False) or n_threads == 1 and (
            work < INLINE_WORK or n_pieces < 1
            or threading.current_thread() is not threading.main_thread()):
        for i in range(n_pieces):
            fn(i)
        return
    take = itertools.count()  # next() on it is atomic: each piece is taken once
    stop = threading.Event()
    done = threading.Event()
    errors: list = []
    state = [n_threads]  # workers still running
    state_lock = threading.Lock()

    def work_loop():
        try:
            while not stop.is_set():
                i = next(take)
                if i >= n_pieces:
                    return
                fn(i)
        except BaseException as exc:  # noqa: BLE001 -- handed to the waiting caller
            stop.set()
            errors.append(exc)
        finally:
            with state_lock:
                state[0] -= 1
                if state[0] == 0:
                    done.set()

    pool = _executor(n_threads)
    for _ in range(n_threads):
        pool.tasks.put(work_loop)
    try:
        while not done.wait(WAIT_SLICE):
            pass
    except BaseException:
        stop.set()
        if not done.is_set():
            _retire(pool)
        raise
    if errors:
        raise errors[0]


def cut(offsets, n_pieces: int):
    """Boundaries (int64, ``n_pieces' + 1`` of them) cutting the sequences of ``offsets`` into
    at most ``n_pieces`` contiguous ranges of about equal symbol count, none empty (one empty
    piece for no sequences).

    Examples
    --------
    >>> import numpy as np
    >>> cut(np.array([0, 5, 10, 11, 20]), 2).tolist()
    [0, 2, 4]
    """
    S = offsets.shape[0] - 1
    if S <= 0:
        return np.zeros(2, np.int64)  # one piece, empty
    n = max(1, min(int(n_pieces), S))
    targets = (int(offsets[S]) * np.arange(1, n, dtype=np.int64)) // n
    inner = np.searchsorted(offsets[:S + 1], targets)
    bounds = np.unique(np.concatenate(([0], np.clip(inner, 1, max(1, S - 1)), [S])))
    return bounds.astype(np.int64)
