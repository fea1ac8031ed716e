"""EM and Viterbi on Dask (``fasthw6.distributed.fit`` / ``decode``): equal to the local fit,
a worker killed mid-iteration, part files, every model class, and the scheduler's faults
(nothing listening, a malformed address, no workers) in the library and the command line."""
from __future__ import annotations

import copy
import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
db = pytest.importorskip("dask.bag")

from fasthw6 import distributed as D  # noqa: E402
from fasthw6.hmm import (GMMHMM, CategoricalHMM, GaussianHMM, MultinomialHMM,  # noqa: E402
                         PoissonHMM)

EXE = os.path.join(os.path.dirname(sys.executable), "fasthw6")
BE = "cython"  # numba would compile in each fresh worker process (about a minute)
PARAMS = ("startprob_", "transmat_", "emissionprob_", "means_", "covars_", "weights_",
          "lambdas_")


# --------------------------------------------------------------------------- data and models
def _lengths(rng, S=24):
    return rng.integers(10, 60, S)


def categorical(seed=0):
    rng = np.random.default_rng(seed)
    L = _lengths(rng)
    X = rng.integers(0, 5, L.sum())
    m = CategoricalHMM(3, n_iter=10, tol=-np.inf, random_state=seed, backend=BE)
    return m, X, L


def gaussian(seed=0, kind="diag"):
    rng = np.random.default_rng(seed)
    L = _lengths(rng)
    X = rng.normal(size=(L.sum(), 2)) + np.repeat(rng.normal(size=(len(L), 2)) * 3, L, axis=0)
    # means from data rows instead of k-means (slow to start, and not what is tested here)
    m = GaussianHMM(3, kind, n_iter=10, tol=-np.inf, random_state=seed, backend=BE,
                    init_params="stc")
    m.means_ = X[rng.choice(len(X), 3, replace=False)]
    return m, X, L


def gmm(seed=0):
    _, X, L = gaussian(seed)
    m = GMMHMM(2, n_mix=2, n_iter=10, tol=-np.inf, random_state=seed, backend=BE,
               init_params="stcw")
    m.means_ = X[np.random.default_rng(seed).choice(len(X), 4, replace=False)].reshape(2, 2, -1)
    return m, X, L


def poisson(seed=0):
    rng = np.random.default_rng(seed)
    L = _lengths(rng)
    return (PoissonHMM(3, n_iter=10, tol=-np.inf, random_state=seed, backend=BE),
            rng.poisson(3, size=(L.sum(), 3)), L)


def multinomial(seed=0):
    rng = np.random.default_rng(seed)
    L = _lengths(rng)
    return (MultinomialHMM(3, n_trials=5, n_iter=10, tol=-np.inf, random_state=seed, backend=BE),
            rng.multinomial(5, [0.2, 0.3, 0.5], size=L.sum()), L)


MAKERS = dict(categorical=categorical, gaussian=gaussian, gmm=gmm, poisson=poisson,
              multinomial=multinomial)


def started(make, seed=0):
    """(model initialised from all the data, init_params "", X, lengths)."""
    m, X, L = make(seed)
    m._init(X.reshape(-1, 1) if isinstance(m, CategoricalHMM) else X, L)
    m.init_params = ""
    return m, X, L


def params(m):
    return {k: np.asarray(getattr(m, k)) for k in PARAMS if hasattr(m, k)}


def assert_same_fit(a, b, atol):
    pa, pb = params(a), params(b)
    assert pa.keys() == pb.keys()
    for k in pa:
        np.testing.assert_allclose(pa[k], pb[k], rtol=0, atol=atol, err_msg=k)
    assert a.monitor_.iter == b.monitor_.iter
    np.testing.assert_allclose(list(a.monitor_.history), list(b.monitor_.history), rtol=1e-12)


# --------------------------------------------------------------------------- the cluster
@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:
        with distributed.Client(cluster) as c:
            c.wait_for_workers(2, timeout=60)
            yield c


class KillOnce(CategoricalHMM):
    """Kills its worker process in the middle of the first E-step task that runs once the
    ``armed`` file exists, leaving the ``killed`` file behind (the retry finds it and runs)."""

    def _estep(self, data, off, sp, tm):
        armed, killed = self._marker + ".armed", self._marker + ".killed"
        if os.path.exists(armed):
            try:
                fd = os.open(killed, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.close(fd)
                os._exit(1)
        return CategoricalHMM._estep(self, data, off, sp, tm)  # (no super(): pickled by value)


KillOnce.__module__ = "__main__"  # pickled by value: the workers cannot import this file


# --------------------------------------------------------------------------- local (threads)
@pytest.mark.parametrize("name", sorted(MAKERS))
def test_local_one_partition_is_the_local_fit_bit_for_bit(name):
    m, X, L = MAKERS[name]()
    ref = copy.deepcopy(m).fit(X, L)
    got = D.fit(m, [(X, L)])
    for k, v in params(ref).items():
        np.testing.assert_array_equal(params(got)[k], v, err_msg=k)
    assert list(got.monitor_.history) == list(ref.monitor_.history)


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_local_partitions_equal_the_local_fit(name):
    m, X, L = started(MAKERS[name])
    ref = copy.deepcopy(m).fit(X, L)
    got = D.fit(m, D.split_partitions(X, L, 5))
    assert_same_fit(got, ref, 1e-10)
    assert got.monitor_.iter == 10


def test_monitor_convergence_and_overrides_as_the_local_fit():
    m, X, L = started(gaussian)
    m.tol = 15.0  # the gains: 500, 21, 9 ...: converged at iteration 4
    ref = copy.deepcopy(m).fit(X, L)
    calls = []
    got = D.fit(m, D.split_partitions(X, L, 3), callback=lambda *a: calls.append(a))
    assert got.monitor_.converged and got.monitor_.iter == ref.monitor_.iter < 10
    assert [c[0] for c in calls] == list(range(1, got.monitor_.iter + 1))
    assert [c[1] for c in calls] == list(got.monitor_.history)
    m2, X, L = started(gaussian)
    D.fit(m2, D.split_partitions(X, L, 3), n_iter=2)
    assert m2.monitor_.iter == 2 and m2.n_iter == 10


def test_initialisation_from_the_first_partition_and_n_features_from_all():
    m, X, L = categorical(3)
    X = X % 4
    X[-1] = 6  # the largest symbol lies in the last partition
    parts = D.split_partitions(X, L, 4)
    got = D.fit(copy.deepcopy(m), parts)
    assert got.n_features == 7 and got.emissionprob_.shape == (3, 7)
    ref = copy.deepcopy(m)
    ref.n_features = 7
    ref._init(parts[0][0].reshape(-1, 1), parts[0][1])  # the emissions' draws use no data
    ref.init_params = ""
    # the chain's draws warn about the sample count of all the data, not the partition's
    ref.fit(X, L)
    assert_same_fit(got, ref, 1e-10)


def test_bag_of_sequences():
    m, X, L = started(categorical)
    ref = copy.deepcopy(m).fit(X, L)
    ends = np.cumsum(L)
    bag = db.from_sequence([X[e - n:e] for e, n in zip(ends, L)], npartitions=4)
    assert_same_fit(D.fit(m, bag), ref, 1e-10)
    g, Xg, Lg = started(gaussian)
    ref = copy.deepcopy(g).fit(Xg, Lg)
    ends = np.cumsum(Lg)
    bag = db.from_sequence([Xg[e - n:e] for e, n in zip(ends, Lg)], npartitions=3)
    assert_same_fit(D.fit(g, bag), ref, 1e-10)


def test_bad_arguments():
    m, X, L = categorical()
    with pytest.raises(TypeError, match="fasthw6 HMM estimator"):
        D.fit(object(), [(X, L)])
    with pytest.raises(TypeError, match="sequences must be a dask.bag.Bag"):
        D.fit(m, X)
    with pytest.raises(ValueError, match="nothing to fit"):
        D.fit(m, [(X[:0], [])])
    with pytest.raises(ValueError, match=r"sequences\[1\]: lengths sum to"):
        D.fit(m, [(X, L), (X, [1])])
    g, Xg, Lg = gaussian()
    with pytest.raises(ValueError, match=r"sequences\[1\]: X has 3 features .* means_ has 2"):
        D.fit(g, [(Xg, Lg), (np.ones((4, 3)), [4])])
    with pytest.raises(ValueError, match=r"sequences\[1\]: X has 3 .* sequences\[0\] has 2"):
        D.fit(GaussianHMM(2, backend=BE), [(Xg, Lg), (np.ones((4, 3)), [4])])
    with pytest.raises(ValueError, match="n_iter must be"):
        D.fit(g, [(Xg, Lg)], n_iter=-1)
    with pytest.raises(ValueError, match="tol must be"):
        D.fit(g, [(Xg, Lg)], tol="x")


# --------------------------------------------------------------------------- decode
@pytest.mark.parametrize("name", ["categorical", "gaussian"])
def test_decode_local_in_input_order(name, tmp_path):
    m, X, L = started(MAKERS[name])
    m.fit(X, L)
    parts = D.split_partitions(X, L, 4)
    lp, states = D.decode(m, parts)
    ends = np.cumsum(L)
    want = [m.decode(X[e - n:e], [n]) for e, n in zip(ends, L)]
    np.testing.assert_allclose(lp, [w[0] for w in want], rtol=1e-13)
    np.testing.assert_array_equal(states, np.concatenate([w[1] for w in want]))
    files = D.decode(m, parts, out_dir=tmp_path / "out")
    assert [os.path.basename(f) for f in files] == [f"part-{k:05d}.npz" for k in range(4)]
    assert sorted(os.listdir(tmp_path / "out")) == [os.path.basename(f) for f in files]
    got = [np.load(f) for f in files]
    np.testing.assert_array_equal(np.concatenate([g["logprob"] for g in got]), lp)
    np.testing.assert_array_equal(np.concatenate([g["states"] for g in got]), states)
    np.testing.assert_array_equal(np.concatenate([g["lengths"] for g in got]), L)
    with pytest.raises(ValueError, match="exists and is not empty"):
        D.decode(m, parts, out_dir=tmp_path / "out")


def test_decode_failure_leaves_nothing(tmp_path):
    m, X, L = started(categorical)
    parts = D.split_partitions(X, L, 4)
    bad = parts[:3] + [(np.full(5, 9), [5])]  # symbol 9 is outside the alphabet
    with pytest.raises(ValueError, match=r"sequences\[3\]: "):
        D.decode(m, bad, out_dir=tmp_path / "new")
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError):
        D.decode(m, bad, out_dir=tmp_path / "empty")
    assert os.listdir(tmp_path / "empty") == []


# --------------------------------------------------------------------------- on the cluster
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MAKERS))
def test_cluster_fit_equals_the_local_fit(client, name):
    m, X, L = started(MAKERS[name])
    ref = copy.deepcopy(m).fit(X, L)
    parts = D.split_partitions(X, L, 5)
    local = D.fit(copy.deepcopy(m), parts)
    got = D.fit(m, parts, client)
    assert_same_fit(got, ref, 1e-10)
    assert_same_fit(got, local, 1e-13)  # same tree of sums: the same arithmetic


@pytest.mark.slow
def test_cluster_worker_killed_mid_iteration(client, tmp_path):
    m, X, L = started(categorical, seed=4)
    ref = copy.deepcopy(m).fit(X, L)
    k = KillOnce(3, n_iter=10, tol=-np.inf, backend=BE, init_params="")
    k.startprob_, k.transmat_, k.emissionprob_ = m.startprob_, m.transmat_, m.emissionprob_
    k._marker = str(tmp_path / "marker")
    pids = set(client.run(os.getpid).values())

    def arm(it, ll, seconds):
        if it == 2:  # iteration 3's first task kills its worker
            open(k._marker + ".armed", "w").close()

    got = D.fit(k, D.split_partitions(X, L, 6), client, callback=arm)
    assert os.path.exists(k._marker + ".killed")
    assert_same_fit(got, ref, 1e-10)
    client.wait_for_workers(2, timeout=60)
    assert set(client.run(os.getpid).values()) != pids  # a worker was restarted


@pytest.mark.slow
def test_cluster_decode_and_bag(client, tmp_path):
    m, X, L = started(categorical)
    m.fit(X, L)
    parts = D.split_partitions(X, L, 5)
    lp, states = D.decode(m, parts)
    glp, gstates = D.decode(m, parts, client)
    np.testing.assert_array_equal(glp, lp)
    np.testing.assert_array_equal(gstates, states)
    files = D.decode(m, parts, client, out_dir=tmp_path / "o")
    np.testing.assert_array_equal(np.concatenate([np.load(f)["states"] for f in files]), states)
    ends = np.cumsum(L)
    bag = db.from_sequence([X[e - n:e] for e, n in zip(ends, L)], npartitions=3)
    np.testing.assert_array_equal(D.decode(m, bag, client)[1], states)
    bad = parts[:2] + [(np.full(5, 9), [5])]
    with pytest.raises(ValueError, match=r"sequences\[2\]"):
        D.decode(m, bad, client, out_dir=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


# --------------------------------------------------------------------------- command line
def _run(*argv, timeout=120):
    t0 = time.perf_counter()
    r = subprocess.run([EXE, *map(str, argv)], capture_output=True, text=True, timeout=timeout)
    return r, time.perf_counter() - t0


def _write_seqs(path, X, L):
    ends = np.cumsum(L)
    path.write_text("".join(" ".join(map(str, X[e - n:e])) + "\n" for e, n in zip(ends, L)))


@pytest.mark.slow
def test_cli_fit_and_decode_with_scheduler(client, tmp_path):
    _, X, L = categorical(2)
    _write_seqs(tmp_path / "s.txt", X, L)
    addr = client.scheduler.address
    args = ["fit", "-n", "3", tmp_path / "s.txt", "--n-iter", "6", "--tol", "-1", "--backend", BE]
    r, _ = _run(*args, "-o", tmp_path / "local.json")
    assert r.returncode == 0, r.stderr
    r, _ = _run(*args, "-o", tmp_path / "dist.json", "--scheduler", addr)
    assert r.returncode == 0, r.stderr
    *lines, summary = r.stderr.splitlines()  # fit ends with its summary line
    assert summary.startswith("fasthw6 fit: 6 iterations, final log-likelihood ")
    assert [ln.split(":")[1].strip() for ln in lines] == [f"iteration {i}" for i in range(1, 7)]
    a, b = (json.loads((tmp_path / f).read_text()) for f in ("local.json", "dist.json"))
    for key in ("startprob", "transmat", "emissionprob"):
        np.testing.assert_allclose(a[key], b[key], rtol=0, atol=1e-10)

    m = CategoricalHMM.load(tmp_path / "dist.json")
    r, _ = _run("decode", "-m", tmp_path / "dist.json", tmp_path / "s.txt", "--chunk-size",
                "1K", "--scheduler", addr, "-o", tmp_path / "parts")
    assert r.returncode == 0, r.stderr
    files = sorted(os.listdir(tmp_path / "parts"))
    assert files == [f"part-{k:05d}.npz" for k in range(len(files))] and len(files) > 1
    got = [np.load(tmp_path / "parts" / f) for f in files]
    lp, states = m.decode(X, L)[0], m.predict(X, L)
    np.testing.assert_array_equal(np.concatenate([g["lengths"] for g in got]), L)
    np.testing.assert_array_equal(np.concatenate([g["states"] for g in got]), states)
    assert np.isclose(np.concatenate([g["logprob"] for g in got]).sum(), lp, rtol=1e-12)
    r, _ = _run("decode", "-m", tmp_path / "dist.json", tmp_path / "s.txt", "--scheduler", addr,
                "-o", tmp_path / "parts")
    assert r.returncode == 2 and "not empty" in r.stderr and len(r.stderr.splitlines()) == 1
    r, _ = _run("decode", "-m", tmp_path / "dist.json", tmp_path / "s.txt", "--scheduler", addr)
    local, _ = _run("decode", "-m", tmp_path / "dist.json", tmp_path / "s.txt")
    assert r.returncode == 0 and r.stdout == local.stdout


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_nothing_listening(tmp_path):
    addr = f"tcp://127.0.0.1:{_free_port()}"
    t0 = time.perf_counter()
    with pytest.raises(ConnectionError, match=f"cannot connect to scheduler {addr}"):
        D.connect(addr)
    assert time.perf_counter() - t0 < 10
    m, X, L = categorical()
    with pytest.raises(ConnectionError, match=addr):
        D.fit(m, [(X, L)], addr)
    _write_seqs(tmp_path / "s.txt", X, L)
    r, secs = _run("fit", "-n", "2", tmp_path / "s.txt", "-o", tmp_path / "m.json",
                   "--scheduler", addr)
    assert r.returncode == 2 and secs < 10
    assert len(r.stderr.splitlines()) == 1 and addr in r.stderr, r.stderr
    assert not (tmp_path / "m.json").exists()


def test_malformed_address(tmp_path):
    addr = "tcp://127.0.0.1:abc"
    with pytest.raises(ValueError, match="port 'abc' is not a number"):
        D.connect(addr)
    m, X, L = categorical()
    m.fit(X, L)
    m.save(str(tmp_path / "m.json"))
    _write_seqs(tmp_path / "s.txt", X, L)
    for cmd in (["fit", "-n", "2", tmp_path / "s.txt", "-o", tmp_path / "n.json"],
                ["decode", "-m", tmp_path / "m.json", tmp_path / "s.txt"]):
        r, _ = _run(*cmd, "--scheduler", addr)
        assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
        assert addr in r.stderr and "invalid literal" not in r.stderr


def test_scheduler_without_workers(tmp_path):
    with distributed.LocalCluster(n_workers=0, processes=False, protocol="tcp",
                                  dashboard_address=":0") as cluster:
        addr = cluster.scheduler_address
        t0 = time.perf_counter()
        with pytest.raises(TimeoutError, match=f"scheduler {addr} has no workers"):
            D.connect(addr, workers_timeout=0.5)
        assert time.perf_counter() - t0 < 10
        m, X, L = categorical()
        with distributed.Client(cluster) as c:
            with pytest.raises(TimeoutError, match="has no workers"):
                D.fit(m, [(X, L)], c, workers_timeout=0.5)
        _write_seqs(tmp_path / "s.txt", X, L)
        r, secs = _run("fit", "-n", "2", tmp_path / "s.txt", "-o", tmp_path / "m.json",
                       "--scheduler", addr, "--wait-workers", "1")
        assert r.returncode == 2 and secs < 20
        assert len(r.stderr.splitlines()) == 1 and "has no workers" in r.stderr, r.stderr
