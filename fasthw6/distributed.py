"""Scoring many sequences on a Dask cluster (extra ``dist``: ``pip install 'fasthw6[dist]'``).

Each partition of sequences is scored by one call of ``model.score_sequences`` on a worker, so
the per-sequence work stays inside the compiled kernels; results come back in input order.
Partitions travel inside the task graph (they are not scattered to one worker), so when a worker
dies the scheduler recomputes its tasks elsewhere and every sequence still gets exactly one score.
"""
from __future__ import annotations

import importlib


import numpy as np

from .hmm._checks import check_lengths


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
            from distributed import Client

            with Client(client) as c:
                return score_sequences(model, sequences, c, retries=retries)
        futures = client.compute(tasks, retries=retries)
        res = client.gather(futures)
    return np.concatenate([np.asarray(r, dtype=np.float64) for r in res])
