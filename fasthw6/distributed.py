"""HMMs on a Dask cluster (extra ``dist``: ``pip install 'fasthw6[dist]'``): scoring, training
and decoding many sequences where they live.

- :func:`score_sequences`: each partition of sequences is scored by one call of
  ``model.score_sequences`` on a worker, so the per-sequence work stays inside the compiled
  kernels; results come back in input order.
- :func:`fit`: Baum-Welch with the E-step on the workers.  Each partition is validated once and
  kept in its worker's memory; every iteration sends the current parameters to one task per
  partition, which returns summable statistics (``BaseHMM._estep``: a few arrays the size of the
  parameters, never per-frame ones); the cluster adds them pairwise (a tree of tasks) and the
  client receives one dict and runs the M-step.  Without a client the same code runs on local
  threads.
- :func:`decode`: Viterbi paths per partition, returned in input order or written by the
  workers as ``part-NNNNN.npz`` files.
- :func:`connect`: a Client for a scheduler address, with bounded waits and one-line errors.

Partitions travel inside the task graph (they are not scattered to one worker): when a worker
dies the scheduler recomputes its tasks (and the partitions it held) elsewhere, so every
sequence is scored, decoded or counted in the statistics exactly once.  The price is that an
in-memory partition is also held by the scheduler; for data larger than that, pass a dask.bag
whose partitions are read on the workers.
"""
from __future__ import annotations

import copy
import importlib
import os
import time
import uuid

import numpy as np

from .hmm._checks import check_lengths

DEFAULT_CONNECT_TIMEOUT = 10.0  # seconds to reach the scheduler
DEFAULT_WORKERS_TIMEOUT = 30.0  # seconds to wait for a first worker
_SCHEMES = ("tcp", "tls", "ws", "wss", "ucx")


def _score_partition(model, X, lengths):
    """Per-sequence log-likelihoods of one ``(X, lengths)`` partition (runs on a worker)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.shape[0] == 0:
        return np.empty(0, dtype=np.float64)
    return np.asarray(model.score_sequences(np.asarray(X), lengths), dtype=np.float64)


def _score_bag_partition(model, seqs):
    """The same for a partition of a dask.bag: an iterable of 1-D integer sequences."""
    seqs = [np.asarray(s).reshape(-1) for s in seqs]
    if not seqs:
        return np.empty(0, dtype=np.float64)
    lengths = np.fromiter((s.shape[0] for s in seqs), dtype=np.int64, count=len(seqs))
    return _score_partition(model, np.concatenate(seqs), lengths)


def split_partitions(X, lengths, n_partitions: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cut ``(X, lengths)`` into up to ``n_partitions`` runs of consecutive whole sequences.

    Examples
    --------
    >>> parts = split_partitions(np.arange(6) % 2, [1, 2, 3], 2)
    >>> [p[1].tolist() for p in parts]
    [[1], [2, 3]]
    """
    X = np.asarray(X)
    if not isinstance(n_partitions, (int, np.integer)) or n_partitions < 1:
        raise ValueError(f"n_partitions must be a positive int, got {n_partitions!r}")
    lengths = check_lengths(lengths, X.shape[0])
    ends = np.concatenate([[0], np.cumsum(lengths)])
    cuts = np.unique(np.linspace(0, lengths.shape[0], n_partitions + 1).astype(np.int64))
    return [(X[ends[a]:ends[b]], lengths[a:b]) for a, b in zip(cuts[:-1], cuts[1:])]


def _is_bag(obj) -> bool:
    try:
        import dask.bag as db
    except ImportError:
        return False
    return isinstance(obj, db.Bag)


def _partitions(sequences) -> list[tuple[np.ndarray, np.ndarray]]:
    if not isinstance(sequences, (list, tuple)):
        raise TypeError(
            "sequences must be a dask.bag.Bag of sequences or a list of (X, lengths) partitions, "
            f"got {type(sequences).__name__}")
    parts = []
    for i, p in enumerate(sequences):
        if not isinstance(p, (tuple, list)) or len(p) != 2:
            raise TypeError(f"sequences[{i}] must be an (X, lengths) pair, got {type(p).__name__}")
        X = np.asarray(p[0])
        lengths = np.asarray(p[1])
        if X.ndim == 2 and X.shape[1] == 1:
            X = X[:, 0]
        if X.ndim != 1:
            raise ValueError(f"sequences[{i}]: X must be 1-D or (n, 1), got shape {X.shape}")
        if lengths.ndim != 1 or (lengths.size and not np.issubdtype(lengths.dtype, np.integer)):
            raise ValueError(f"sequences[{i}]: lengths must be a 1-D integer array")
        lengths = check_lengths(lengths, X.shape[0], name=f"sequences[{i}]: lengths")
        parts.append((X, lengths))
    return parts


def _first_kernel_call(run, items):
    """Run ``items`` in this thread up to the first that scores something (its kernel call picks
    numba's threading layer); returns (results so far, number of items run)."""
    res = []
    for k, item in enumerate(items):
        r = np.asarray(run(item), dtype=np.float64)
        res.append(r)
        if r.shape[0]:
            return res, k + 1
    return res, len(items)


def _threads_safe() -> bool:
    """Whether the kernels may be called from several threads at once.  Numba's workqueue
    layer (its fallback where neither OpenMP nor TBB is installed) aborts the whole process on
    concurrent use; under it the local partitions run one after the other, each still parallel
    inside the kernel."""
    try:
        import numba
    except ImportError:
        return True
    try:
        return numba.threading_layer() != "workqueue"
    except ValueError:
        # no parallel numba kernel has run yet (auto ran Cython so far, or another backend was
        # chosen): safe if the layer numba would start is not workqueue
        if numba.config.THREADING_LAYER == "workqueue":
            return False
        for pool in ("numba.np.ufunc.omppool", "numba.np.ufunc.tbbpool"):
            try:
                importlib.import_module(pool)
                return True
            except ImportError:
                pass
        return False


def score_sequences(model, sequences, client=None, *, retries: int = 2) -> np.ndarray:
    """Per-sequence log-likelihoods of many sequences, computed on Dask, in input order.

    Parameters
    ----------
    model : CategoricalHMM
        Any object with ``score_sequences(X, lengths)``; it is shipped to the workers.
    sequences : dask.bag.Bag or list of (X, lengths)
        A bag whose elements are 1-D integer sequences (one partition = one kernel call), or a
        list of partitions in hmmlearn's convention (concatenated symbols and their lengths).
    client : distributed.Client or str, optional
        The cluster (a Client or a scheduler address).  Without one the partitions run on local
        threads (the kernels release the GIL), or one after the other under numba's workqueue
        threading layer, which is not thread safe.
    retries : int
        Extra attempts for a task that raises (a lost worker is handled by the scheduler anyway).

    Returns
    -------
    ndarray of float64, shape (n_sequences,)
        The score of every sequence, partitions concatenated in input order.

    Raises
    ------
    TypeError
        ``sequences`` is neither a bag nor a list of ``(X, lengths)`` pairs.
    ValueError
        A partition whose lengths do not sum to its number of symbols; or whatever the model
        raises for symbols outside its alphabet.

    Examples
    --------
    Without a client the partitions run on local threads:

    >>> import numpy as np, fasthw6
    >>> m = fasthw6.CategoricalHMM(2, init_params="")
    >>> m.startprob_, m.transmat_ = np.array([0.5, 0.5]), np.array([[0.9, 0.1], [0.1, 0.9]])
    >>> m.emissionprob_ = np.array([[0.8, 0.2], [0.2, 0.8]])
    >>> parts = [(np.array([0, 0, 1]), [2, 1]), (np.array([1, 1]), [2])]
    >>> np.round(score_sequences(m, parts), 4).tolist()
    [-1.1332, -0.6931, -1.1332]
    """
    if not hasattr(model, "score_sequences"):
        raise TypeError(f"model must have a score_sequences(X, lengths) method, got {type(model).__name__}")
    import dask

    if _is_bag(sequences):
        tasks = [dask.delayed(_score_bag_partition, pure=True)(model, part)
                 for part in sequences.to_delayed()]
    else:
        parts = _partitions(sequences)
        if not parts:
            return np.empty(0, dtype=np.float64)
        if client is None:
            from concurrent.futures import ThreadPoolExecutor

            import os

            res, k = _first_kernel_call(lambda p: _score_partition(model, *p), parts)
            rest = parts[k:]
            if rest and _threads_safe():
                with ThreadPoolExecutor(max_workers=min(len(rest), os.cpu_count() or 1)) as ex:
                    res += list(ex.map(lambda p: _score_partition(model, *p), rest))
            else:
                res += [_score_partition(model, *p) for p in rest]
            return np.concatenate(res)
        tasks = [dask.delayed(_score_partition, pure=False)(model, X, L) for X, L in parts]
    if not tasks:
        return np.empty(0, dtype=np.float64)
    if client is None:
        res, k = _first_kernel_call(lambda t: dask.compute(t, scheduler="synchronous")[0], tasks)
        rest = tasks[k:]
        if rest:
            res += dask.compute(*rest, scheduler="threads" if _threads_safe() else "synchronous")
    else:
        if isinstance(client, str):
            with connect(client) as c:
                return score_sequences(model, sequences, c, retries=retries)
        wait_for_workers(client)
        futures = client.compute(tasks, retries=retries)
        res = client.gather(futures)
    return np.concatenate([np.asarray(r, dtype=np.float64) for r in res])


# =========================================================================== connecting
def check_address(address):
    """``(scheme, host, port)`` of a scheduler address (``tcp://HOST:PORT``, ``HOST:PORT``,
    ``tls://...``; ``port`` None for ``inproc://`` and an address without one), or a one-line
    ValueError naming the address.

    Examples
    --------
    >>> check_address("tcp://127.0.0.1:8786")
    ('tcp', '127.0.0.1', 8786)
    >>> check_address("tcp://127.0.0.1:abc")
    Traceback (most recent call last):
    ...
    ValueError: invalid scheduler address 'tcp://127.0.0.1:abc': the port 'abc' is not a number (expected tcp://HOST:PORT)
    """
    if not isinstance(address, str) or not address.strip():
        raise ValueError(f"the scheduler address must be a non-empty string such as "
                         f"tcp://HOST:PORT, got {address!r}")
    scheme, sep, rest = address.strip().partition("://")
    if not sep:
        scheme, rest = "tcp", address.strip()
    scheme = scheme.lower()
    if scheme == "inproc":
        return scheme, rest, None
    if scheme not in _SCHEMES:
        raise ValueError(f"invalid scheduler address {address!r}: unknown protocol {scheme!r} "
                         f"(expected tcp://HOST:PORT; protocols: {', '.join(_SCHEMES)}, inproc)")
    host, colon, port = rest.rpartition(":")
    if not colon or host.count(":") and not host.startswith("["):  # no port (or bare IPv6)
        host, port = rest, None
    if not host or "/" in host:
        raise ValueError(f"invalid scheduler address {address!r}: expected {scheme}://HOST:PORT")
    if port is None:
        return scheme, host.strip("[]"), None
    if not port.isdigit():
        raise ValueError(f"invalid scheduler address {address!r}: the port {port!r} is not a "
                         f"number (expected {scheme}://HOST:PORT)")
    if not 0 < int(port) < 65536:
        raise ValueError(f"invalid scheduler address {address!r}: the port {port} is not in "
                         f"1..65535")
    return scheme, host.strip("[]"), int(port)


def _one_line(exc) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def connect(address, *, timeout=DEFAULT_CONNECT_TIMEOUT,
            workers_timeout=DEFAULT_WORKERS_TIMEOUT):
    """A ``distributed.Client`` of the scheduler at ``address``, once it has a worker.

    Parameters
    ----------
    address : str
        ``tcp://HOST:PORT`` (or ``HOST:PORT``, ``tls://...``).
    timeout : float
        Seconds to reach the scheduler.  Where nothing listens at the address (connection
        refused) the answer comes at once.
    workers_timeout : float or None
        Seconds to wait for the scheduler to have at least one worker (None: do not wait).

    Raises
    ------
    ValueError
        A malformed address (``tcp://127.0.0.1:abc``), one line naming it.
    ConnectionError
        No scheduler answers at the address within ``timeout``, one line naming it.
    TimeoutError
        The scheduler has no worker after ``workers_timeout`` seconds.
    ImportError
        dask.distributed is not installed.
    """
    scheme, host, port = check_address(address)
    try:
        from distributed import Client
    except ImportError:
        raise ImportError("a scheduler needs dask.distributed: pip install 'fasthw6[dist]'") \
            from None
    timeout = float(timeout)
    if scheme in ("tcp", "tls", "ws", "wss") and port is not None:
        _probe(address, host, port, timeout)
    try:
        client = Client(address, timeout=timeout, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ConnectionError(f"cannot connect to scheduler {address}: {_one_line(exc)}") \
            from None
    try:
        wait_for_workers(client, workers_timeout, address)
    except BaseException:
        client.close()
        raise
    return client


def _probe(address, host, port, timeout):
    """Fail fast, in one line, where nothing listens at ``host:port`` (distributed would
    retry a refused connection until its timeout)."""
    import socket

    try:
        with socket.create_connection((host, port), timeout=min(timeout, 5.0)):
            pass
    except ConnectionRefusedError:
        raise ConnectionError(f"cannot connect to scheduler {address}: nothing is listening "
                              f"there (connection refused)") from None
    except socket.gaierror as exc:
        raise ConnectionError(f"cannot connect to scheduler {address}: unknown host {host!r} "
                              f"({exc.strerror or exc})") from None
    except (socket.timeout, TimeoutError):
        raise ConnectionError(f"cannot connect to scheduler {address}: no answer within "
                              f"{min(timeout, 5.0):g} s") from None
    except OSError as exc:
        raise ConnectionError(f"cannot connect to scheduler {address}: "
                              f"{exc.strerror or _one_line(exc)}") from None


def wait_for_workers(client, timeout=DEFAULT_WORKERS_TIMEOUT, address=None):
    """Return once ``client``'s cluster has a worker; TimeoutError (one line) after
    ``timeout`` seconds without one (None: return at once)."""
    if timeout is None or client.nthreads():
        return
    address = address or getattr(client.scheduler, "address", "?")
    try:
        client.wait_for_workers(1, timeout=float(timeout))
    except (TimeoutError, OSError) as exc:
        if isinstance(exc, OSError) and not isinstance(exc, TimeoutError):
            raise ConnectionError(f"lost the scheduler {address}: {_one_line(exc)}") from None
        raise TimeoutError(f"scheduler {address} has no workers: none joined within "
                           f"{float(timeout):g} s (start one with: dask worker {address})") \
            from None


# =========================================================================== partitions
class _Part:
    """A partition as the model reads it (``_data``'s validated form and the offsets of its
    sequences) and what validating it learnt (``info``).  Pickled whole when it moves between
    workers, so an ndarray subclass (the count models' ``_Counts``) stays one."""

    __slots__ = ("data", "off", "info")

    def __init__(self, data, off, info):
        self.data, self.off, self.info = data, off, info

    def __getstate__(self):
        return self.data, self.off, self.info

    def __setstate__(self, state):
        self.data, self.off, self.info = state


def _reads_symbols(model) -> bool:
    from .hmm.estimator import CategoricalHMM

    return isinstance(model, CategoricalHMM)


def _jobs(model, sequences) -> list:
    """The partitions as jobs: ``("arrays", X, lengths)`` (checked here: shapes and lengths)
    or ``("bag", delayed partition of a dask.bag)``."""
    if _is_bag(sequences):
        return [("bag", part) for part in sequences.to_delayed()]
    if not isinstance(sequences, (list, tuple)):
        raise TypeError(
            "sequences must be a dask.bag.Bag of sequences or a list of (X, lengths) partitions, "
            f"got {type(sequences).__name__}")
    symbols = _reads_symbols(model)
    jobs = []
    for i, p in enumerate(sequences):
        if not isinstance(p, (tuple, list)) or len(p) != 2:
            raise TypeError(f"sequences[{i}] must be an (X, lengths) pair, got {type(p).__name__}")
        X = np.asarray(p[0])
        if symbols:
            if X.ndim == 2 and X.shape[1] == 1:
                X = X[:, 0]
            if X.ndim != 1:
                raise ValueError(f"sequences[{i}]: X must be 1-D or (n, 1), got shape {X.shape}")
        elif X.ndim != 2:
            raise ValueError(f"sequences[{i}]: X must have shape (n_samples, n_features), got "
                             f"{X.shape}")
        if p[1] is None:
            lengths = np.array([X.shape[0]] if X.shape[0] else [], dtype=np.int64)
        else:
            lengths = np.asarray(p[1])
            if lengths.ndim != 1 or (lengths.size and not np.issubdtype(lengths.dtype,
                                                                         np.integer)):
                raise ValueError(f"sequences[{i}]: lengths must be a 1-D integer array")
            lengths = check_lengths(lengths, X.shape[0], name=f"sequences[{i}]: lengths")
        jobs.append(("arrays", X, lengths))
    return jobs


def _bag_arrays(symbols, i, seqs):
    """(X, lengths) of a partition of a dask.bag: 1-D symbol sequences for a categorical
    model, (n, n_features) arrays for the others."""
    seqs = [np.asarray(s) for s in seqs]
    if symbols:
        seqs = [s.reshape(-1) for s in seqs]
    for k, s in enumerate(seqs):
        if not symbols and s.ndim != 2:
            raise ValueError(f"partition {i}, sequence {k}: a sequence of frames must have shape "
                             f"(n_samples, n_features), got {s.shape}")
    lengths = np.fromiter((s.shape[0] for s in seqs), dtype=np.int64, count=len(seqs))
    if not seqs:
        return np.empty((0,) if symbols else (0, 0)), lengths
    return np.concatenate(seqs), lengths


def _naming(i, exc):
    """The model's complaint about partition ``i``, naming it."""
    kind = ValueError if isinstance(exc, ValueError) else TypeError
    return kind(f"sequences[{i}]: {_one_line(exc)}")


def _prepare(model, i, X, lengths):
    """Validate partition ``i`` as ``fit`` validates its X (on a copy of the model: what it
    learns, e.g. ``n_features``, goes back in ``info``); runs on a worker."""
    try:
        data, off = model._data(X, lengths, fitting=True)
    except (ValueError, TypeError) as exc:
        raise _naming(i, exc) from None
    info = dict(n_sequences=int(len(off) - 1), n_frames=int(len(data)), size=int(np.size(data)),
                n_features=getattr(model, "n_features", None))
    return _Part(data, off, info)


def _prepare_bag(model, i, seqs):
    return _prepare(model, i, *_bag_arrays(_reads_symbols(model), i, seqs))


def _part_info(part):
    return part.info


def _same(x):
    return x


def _estep_task(model, part):
    """The E-step of one partition with the model's current parameters: summable statistics
    (``BaseHMM._estep``), nothing per frame; runs on a worker."""
    return model._estep(part.data, part.off, model.startprob_, model.transmat_)


def _tree(items, add):
    """Pairwise sums in a fixed order (a balanced tree): the same arithmetic wherever the
    additions run."""
    items = list(items)
    while len(items) > 1:
        nxt = [add(items[k], items[k + 1]) for k in range(0, len(items) - 1, 2)]
        if len(items) % 2:
            nxt.append(items[-1])
        items = nxt
    return items[0]


def _add_sums(a, b):
    from .hmm._base import add_sums

    return add_sums(a, b)


def _lean(model):
    """A copy of the model to ship to the workers: the parameters without ``monitor_``'s
    history."""
    from .hmm.monitor import ConvergenceMonitor

    m = copy.copy(model)
    m.monitor_ = ConvergenceMonitor(model.monitor_.tol, model.monitor_.n_iter, False)
    return m


# =========================================================================== runners
class _Cluster:
    """Tasks on a Dask cluster: futures, reduced and gathered there."""

    def __init__(self, client, retries):
        self.client, self.retries = client, retries
        self.tag = uuid.uuid4().hex[:10]

    def ship(self, model, name):
        """The model as a task of its own: one copy in the graph however many tasks use it
        (each worker fetches it once), recomputed like any task if its worker is lost (a
        scattered object would be gone)."""
        return self.client.submit(_same, model, key=f"fasthw6-{name}-model-{self.tag}",
                                  pure=False)

    def map_jobs(self, name, fn, bag_fn, model, jobs, *extra, first=0):
        import dask

        model = self.ship(model, name)
        out = []
        for i, job in enumerate(jobs, first):
            key = f"fasthw6-{name}-{self.tag}-{i}"
            if job[0] == "arrays":
                out.append(self.client.submit(fn, model, i, job[1], job[2], *extra, key=key,
                                              retries=self.retries, pure=False))
            else:
                d = dask.delayed(bag_fn, pure=False)(model, i, job[1], *extra,
                                                     dask_key_name=key)
                out.append(self.client.compute(d, retries=self.retries))
        return out

    def infos(self, parts):
        return self.client.gather([self.client.submit(_part_info, p, pure=False,
                                                      key=f"fasthw6-info-{self.tag}-{i}")
                                   for i, p in enumerate(parts)])

    def fetch(self, part):
        return self.client.gather(part)

    def estep(self, model, parts, it):
        c, tag = self.client, f"{self.tag}-{it}"
        model = self.ship(model, f"estep-{it}")
        leaves = [c.submit(_estep_task, model, p, key=f"fasthw6-estep-{tag}-{i}",
                           retries=self.retries, pure=False) for i, p in enumerate(parts)]
        count = iter(range(len(leaves)))

        def add(a, b):
            return c.submit(_add_sums, a, b, key=f"fasthw6-sum-{tag}-{next(count)}",
                            retries=self.retries, pure=False)

        root = _tree(leaves, add)
        return c.gather(root)

    def gather(self, futures):
        try:
            return self.client.gather(futures)
        except BaseException:
            from distributed import wait

            # let every task end before the caller cleans up what they wrote
            wait(futures)
            raise

    def release(self, futures):
        self.client.cancel([f for f in futures if hasattr(f, "key")])


class _Local:
    """The same work on local threads (one after the other where the kernels are not thread
    safe, see ``_threads_safe``)."""

    def _run(self, calls):
        if not calls:
            return []
        out = [calls[0]()]  # in this thread: its kernel call picks numba's threading layer
        rest = calls[1:]
        if rest and _threads_safe():
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=min(len(rest), os.cpu_count() or 1)) as ex:
                out += list(ex.map(lambda f: f(), rest))
        else:
            out += [f() for f in rest]
        return out

    def map_jobs(self, name, fn, bag_fn, model, jobs, *extra, first=0):
        import dask

        def call(i, job):
            if job[0] == "arrays":
                return lambda: fn(copy.copy(model), i, job[1], job[2], *extra)
            return lambda: bag_fn(copy.copy(model), i,
                                  dask.compute(job[1], scheduler="synchronous")[0], *extra)

        return self._run([call(i, job) for i, job in enumerate(jobs, first)])

    def infos(self, parts):
        return [p.info for p in parts]

    def fetch(self, part):
        return part

    def estep(self, model, parts, it):
        leaves = self._run([lambda p=p: _estep_task(model, p) for p in parts])
        return _tree(leaves, _add_sums)

    def gather(self, results):
        return results

    def release(self, results):
        pass


def _runner(client, retries, workers_timeout):
    if client is None:
        return _Local()
    if not hasattr(client, "submit"):
        raise TypeError(f"client must be a distributed.Client, a scheduler address or None, got "
                        f"{type(client).__name__}")
    wait_for_workers(client, workers_timeout)
    return _Cluster(client, retries)


def _check_model(model, what):
    from .hmm._base import BaseHMM

    if not isinstance(model, BaseHMM):
        raise TypeError(f"model must be a fasthw6 HMM estimator (CategoricalHMM, GaussianHMM, "
                        f"GMMHMM, PoissonHMM, MultinomialHMM) to {what}, got "
                        f"{type(model).__name__}")


# =========================================================================== fit
def fit(model, sequences, client=None, *, n_iter=None, tol=None, callback=None,
        retries: int = 2, workers_timeout=DEFAULT_WORKERS_TIMEOUT):
    """Train ``model`` by EM (Baum-Welch) with the E-step on a Dask cluster; returns the model.

    The same EM as ``model.fit``: each iteration's E-step runs on every partition where it
    lives, as summable statistics (``BaseHMM._estep``: arrays the size of the parameters, never
    per-frame ones); the cluster adds them pairwise in a fixed tree, the client receives one
    dict, runs the M-step (``BaseHMM._mstep``) and updates ``model.monitor_`` exactly as
    ``fit`` does (``history``, ``iter``, ``converged``; it stops when the log-likelihood gains
    less than ``tol`` or after ``n_iter`` iterations).  On one partition the numbers are
    ``model.fit``'s bit for bit; on several, the sums are added in another order (agreement to
    about 1e-12 relative).  A task lost with its worker is recomputed elsewhere (the partitions
    are held as tasks, not scattered), so no statistic is counted twice or lost.

    Parameters
    ----------
    model : CategoricalHMM, GaussianHMM, GMMHMM, PoissonHMM or MultinomialHMM
        Its constructor arguments apply (``params``, priors, ``dtype``, ``backend``...).
        Initialisation follows ``init_params`` as in ``fit``: the chain with the same draws
        (from the total number of samples), the emissions from the FIRST non-empty partition
        (k-means on it for the Gaussian models, its counts' moments for ``PoissonHMM``).  For
        a start from all the data, set the parameters (or call ``model._init(X, lengths)``)
        and use ``init_params=""``.  A categorical model's ``n_features``, when None, is the
        largest symbol of all partitions + 1.  ``MultinomialHMM.n_trials`` left None stays
        None (``fit`` would set it to the rows' sums).
    sequences : list of (X, lengths) or dask.bag.Bag
        As :func:`score_sequences` takes them: partitions in hmmlearn's convention (``X`` 1-D
        or (n, 1) symbols for a categorical model, (n, n_features) frames otherwise; lengths
        None: one sequence), or a bag whose elements are sequences (1-D symbol arrays, or
        (n, n_features) arrays of frames), one partition of the bag per task.
    client : distributed.Client, str or None
        The cluster, or a scheduler address (:func:`connect`).  None: the partitions run on
        local threads, through the same code (bit for bit the cluster's numbers).
    n_iter, tol : optional
        Override the model's ``n_iter`` and ``tol`` (the model's attributes are left as they
        are; ``monitor_`` has the values used).
    callback : callable, optional
        ``callback(iteration, loglik, seconds)`` after each iteration (1-based; the
        log-likelihood of the parameters the iteration started from, as ``monitor_.history``).
    retries : int
        Extra attempts of a task that raises (a lost worker is handled by the scheduler).
    workers_timeout : float or None
        Seconds to wait for the cluster's first worker before a TimeoutError.

    Examples
    --------
    >>> import numpy as np, fasthw6
    >>> rng = np.random.default_rng(0)
    >>> X = rng.integers(0, 3, 600); L = np.full(6, 100)
    >>> m = fasthw6.CategoricalHMM(2, n_iter=5, random_state=0, init_params="")
    >>> m.startprob_, m.transmat_ = np.array([0.5, 0.5]), np.array([[0.9, 0.1], [0.2, 0.8]])
    >>> m.emissionprob_ = np.array([[0.5, 0.3, 0.2], [0.2, 0.3, 0.5]])
    >>> ref = fasthw6.CategoricalHMM(2, n_iter=5, init_params="")
    >>> ref.startprob_, ref.transmat_ = m.startprob_, m.transmat_
    >>> ref.emissionprob_ = m.emissionprob_
    >>> _ = ref.fit(X, L)
    >>> _ = fit(m, split_partitions(X, L, 3))
    >>> bool(np.allclose(m.emissionprob_, ref.emissionprob_, rtol=0, atol=1e-12))
    True
    >>> m.monitor_.iter
    5
    """
    from .hmm._base import _check_tol, positive_int

    _check_model(model, "fit")
    model._check_fit_args()
    n_iter = positive_int(model.n_iter if n_iter is None else n_iter, "n_iter", minimum=0)
    tol = _check_tol(model.tol if tol is None else tol)
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be callable, got {type(callback).__name__}")
    jobs = _jobs(model, sequences)
    if isinstance(client, str):
        with connect(client, workers_timeout=workers_timeout) as c:
            return fit(model, sequences, c, n_iter=n_iter, tol=tol, callback=callback,
                       retries=retries, workers_timeout=workers_timeout)
    runner = _runner(client, retries, workers_timeout)
    parts = runner.map_jobs("part", _prepare, _prepare_bag, _lean(model), jobs)
    try:
        return _fit(runner, model, parts, n_iter, tol, callback)
    finally:
        runner.release(parts)


def _fit(runner, model, parts, n_iter, tol, callback):
    infos = runner.infos(parts)
    keep = [i for i, info in enumerate(infos) if info["n_frames"]]
    if not keep:
        raise ValueError("the sequences hold no samples: there is nothing to fit")
    widths = [infos[i]["n_features"] for i in keep]
    if _reads_symbols(model):
        if model.n_features is None:
            model.n_features = int(max(widths))
    else:
        for i, w in zip(keep, widths):
            if w != widths[0]:
                raise ValueError(f"sequences[{i}]: X has {w} features per sample but "
                                 f"sequences[{keep[0]}] has {widths[0]}")
        model.n_features = int(widths[0])
    # the local fit's initialisation: the chain from the number of samples of all the data,
    # the emissions from the first non-empty partition
    model._init_chain(sum(info["size"] for info in infos))
    model._init_emissions(runner.fetch(parts[keep[0]]).data)
    sp, tm = model._start_em(n_iter, tol)
    if not _reads_symbols(model) and model._n_dims() != widths[0]:
        raise ValueError(f"the sequences have {widths[0]} features per sample but the model "
                         f"has {model._n_dims()}")
    parts = [parts[i] for i in keep]
    for it in range(n_iter):
        t0 = time.perf_counter()
        sums = runner.estep(_lean(model), parts, it)
        model._mstep(sums)
        model.monitor_.report(sums["loglik"])
        if callback is not None:
            callback(it + 1, sums["loglik"], time.perf_counter() - t0)
        if model.monitor_.converged:
            break
    return model


# =========================================================================== decode
def _write_part(out_dir, i, lp, states, lengths):
    """``part-NNNNN.npz`` (``logprob``, ``states``, ``lengths``) in ``out_dir``, atomically:
    written to a temporary file there, then renamed into place."""
    os.makedirs(out_dir, exist_ok=True)
    final = os.path.join(out_dir, f"part-{i:05d}.npz")
    tmp = os.path.join(out_dir, f".part-{i:05d}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, logprob=np.asarray(lp, np.float64), states=np.asarray(states, np.int64),
                     lengths=np.asarray(lengths, np.int64))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return final


def _decode_part(model, i, X, lengths, out_dir):
    """Viterbi of partition ``i``: ``(logprob, states)``, or, with ``out_dir``, the path of the
    file the worker wrote; runs on a worker."""
    model = copy.copy(model)  # shared by the worker's threads: _check stores its arrays back
    sp, tm = model._check()
    try:
        data, off = model._data(X, lengths)
    except (ValueError, TypeError) as exc:
        raise _naming(i, exc) from None
    if len(off) > 1:
        lp, states = model._run("viterbi", data, off, sp, tm)
    else:
        lp, states = np.empty(0), np.empty(0, np.int64)
    lp, states = np.asarray(lp, np.float64), np.asarray(states, np.int64)
    if out_dir is None:
        return lp, states
    return _write_part(out_dir, i, lp, states, np.diff(off))


def _decode_bag_part(model, i, seqs, out_dir):
    return _decode_part(model, i, *_bag_arrays(_reads_symbols(model), i, seqs), out_dir)


def claim_out_dir(out_dir) -> tuple[str, bool]:
    """``(absolute path, created)``: ``out_dir`` made if missing; ValueError if it exists and
    is not an empty directory."""
    path = os.path.abspath(os.fspath(out_dir))
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise ValueError(f"{out_dir}: exists and is not a directory")
        if os.listdir(path):
            raise ValueError(f"{out_dir}: the output directory exists and is not empty; "
                             f"choose a new or empty one")
        return path, False
    os.makedirs(path)
    return path, True


def remove_parts(out_dir, n_parts, remove_dir=False):
    """Remove what :func:`decode` wrote (or began to write) in ``out_dir``: ``part-NNNNN.npz``
    below ``n_parts`` (None: all) and the temporary files; the directory too when
    ``remove_dir`` and empty."""
    if not os.path.isdir(out_dir):
        return
    for name in os.listdir(out_dir):
        if name.startswith(".part-") and name.endswith(".tmp") or (
                name.startswith("part-") and name.endswith(".npz")
                and name[5:-4].isdigit() and (n_parts is None or int(name[5:-4]) < n_parts)):
            try:
                os.unlink(os.path.join(out_dir, name))
            except OSError:
                pass
    if remove_dir:
        try:
            os.rmdir(out_dir)
        except OSError:
            pass


def decode(model, sequences, client=None, *, out_dir=None, retries: int = 2,
           workers_timeout=DEFAULT_WORKERS_TIMEOUT, _first_part=0, _claimed=False):
    """Viterbi decoding of many sequences on Dask: per-sequence log-probabilities and state
    paths, in input order.

    Parameters
    ----------
    model : a fitted fasthw6 HMM estimator (any class)
    sequences, client, retries, workers_timeout
        As :func:`fit`.
    out_dir : path, optional
        Write partition ``k`` as ``out_dir/part-0000k.npz`` (arrays ``logprob`` (one per
        sequence), ``states`` (the paths, concatenated) and ``lengths``) from the worker that
        decoded it, atomically (a temporary file renamed into place), instead of returning the
        arrays.  The directory must be new or empty (ValueError otherwise) and reachable by the
        workers at the same path (a shared file system, or a local cluster); if anything fails,
        every file written is removed (and the directory, if this call made it).

    Returns
    -------
    (logprob, states) : ndarray of float64 (n_sequences,), ndarray of int64 (n_samples,)
        Without ``out_dir``: the sequences' Viterbi log-probabilities and their paths,
        concatenated, as ``model.decode`` orders them.
    list of str
        With ``out_dir``: the files written, one per partition, in input order.

    Examples
    --------
    >>> import numpy as np, fasthw6
    >>> m = fasthw6.CategoricalHMM(2, init_params="")
    >>> m.startprob_, m.transmat_ = np.array([0.5, 0.5]), np.array([[0.9, 0.1], [0.1, 0.9]])
    >>> m.emissionprob_ = np.array([[0.8, 0.2], [0.2, 0.8]])
    >>> lp, states = decode(m, [(np.array([0, 0, 1]), [2, 1]), (np.array([1, 1]), [2])])
    >>> states.tolist()
    [0, 0, 1, 1, 1]
    """
    _check_model(model, "decode")
    model._check()
    jobs = _jobs(model, sequences)
    if isinstance(client, str):
        with connect(client, workers_timeout=workers_timeout) as c:
            return decode(model, sequences, c, out_dir=out_dir, retries=retries,
                          workers_timeout=workers_timeout, _first_part=_first_part,
                          _claimed=_claimed)
    runner = _runner(client, retries, workers_timeout)
    created = False
    if out_dir is not None:
        if _claimed:
            out_dir = os.path.abspath(os.fspath(out_dir))
        else:
            out_dir, created = claim_out_dir(out_dir)
    try:
        futs = runner.map_jobs("decode", _decode_part, _decode_bag_part, model, jobs, out_dir,
                               first=_first_part)
        res = list(runner.gather(futs))
    except BaseException:
        if out_dir is not None and not _claimed:
            _cleanup(runner, out_dir, _first_part + len(jobs), created)
        raise
    if out_dir is not None:
        return res
    if not res:
        return np.empty(0), np.empty(0, np.int64)
    return (np.concatenate([r[0] for r in res]),
            np.concatenate([r[1] for r in res]).astype(np.int64, copy=False))


def _cleanup(runner, out_dir, n_parts, remove_dir):
    """Remove the files of a failed :func:`decode` on the client and on every worker (whose
    file system may be their own)."""
    if isinstance(runner, _Cluster):
        try:
            runner.client.run(remove_parts, out_dir, n_parts, remove_dir)
        except Exception:  # noqa: BLE001  (best effort: the local removal follows)
            pass
    remove_parts(out_dir, n_parts, remove_dir)
