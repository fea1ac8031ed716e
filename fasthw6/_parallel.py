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

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_size = 0
_forked_thread = 0  # in a forked process, the thread that forked it (its ident); else 0


def _after_fork_in_child() -> None:
    """A forked child has none of the parent's threads: start a new pool when it needs one,
    and remember which thread forked (see the module docstring)."""
    global _pool, _size, _lock, _forked_thread
    _pool, _size, _lock = None, 0, threading.Lock()
    _forked_thread = threading.get_ident()


def forked_thread() -> int:
    """The ident (``threading.get_ident()``) of the thread that forked this process, the only
    thread a forked process starts with; 0 in a process that was not forked (or forked before
    fasthw6 was imported).  OpenMP regions led by it run on one thread."""
    return _forked_thread


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _executor(n: int) -> ThreadPoolExecutor:
    global _pool, _size
    with _lock:
        if _pool is None or _size < n:
            old = _pool
            _pool, _size = ThreadPoolExecutor(n, thread_name_prefix="fasthw6"), n
            if old is not None:
                old.shutdown(wait=False)
        return _pool


def run_pieces(fn: Callable[[int], None], n_pieces: int, n_threads: int) -> None:
    """Call ``fn(i)`` for every ``i`` in ``range(n_pieces)``, on at most ``n_threads`` threads.

    One thread or one piece: in the calling thread, in order.  Otherwise on the pool's threads,
    each taking the next piece not yet taken, while the caller waits.  The first exception
    (``KeyboardInterrupt`` included) stops the hand-out of pieces and is raised here.

    Examples
    --------
    >>> out = [0] * 5
    >>> def square(i):
    ...     out[i] = i * i
    >>> run_pieces(square, 5, 2)
    >>> out
    [0, 1, 4, 9, 16]
    """
    n_threads = max(1, min(int(n_threads), n_pieces))
    if n_threads == 1:
        for i in range(n_pieces):
            fn(i)
        return
    take = itertools.count()  # next() on it is atomic: each piece is taken once
    stop = threading.Event()

    def work():
        while not stop.is_set():
            i = next(take)
            if i >= n_pieces:
                return
            try:
                fn(i)
            except BaseException:
                stop.set()
                raise

    futures = [_executor(n_threads).submit(work) for _ in range(n_threads)]
    try:
        for f in futures:
            f.result()
    except BaseException:
        stop.set()
        raise


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
    import numpy as np

    S = offsets.shape[0] - 1
    if S <= 0:
        return np.zeros(2, np.int64)  # one piece, empty
    n = max(1, min(int(n_pieces), S))
    targets = (int(offsets[S]) * np.arange(1, n, dtype=np.int64)) // n
    inner = np.searchsorted(offsets[:S + 1], targets)
    bounds = np.unique(np.concatenate(([0], np.clip(inner, 1, max(1, S - 1)), [S])))
    return bounds.astype(np.int64)
