"""fasthw6.distributed without a cluster: local partitions under every numba threading layer."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("dask")
pytest.importorskip("numba")

SCRIPT = textwrap.dedent("""
    import numpy as np, numba, fasthw6 as F
    from fasthw6 import distributed as D
    F.set_backend("numba")  # the layer under test is numba's (auto would take Cython at this size)
    m = F.CategoricalHMM(2, init_params="")
    m.startprob_ = np.array([0.6, 0.4]); m.transmat_ = np.array([[0.7, 0.3], [0.2, 0.8]])
    m.emissionprob_ = np.array([[0.5, 0.4, 0.1], [0.1, 0.3, 0.6]])
    X = np.random.default_rng(0).integers(0, 3, 40000); L = np.full(400, 100)
    if "{kind}" == "list":
        r = D.score_sequences(m, [(X[:0], L[:0])] + D.split_partitions(X, L, 8))
    else:
        import dask.bag as db
        ends = np.cumsum(L)
        r = D.score_sequences(m, db.from_sequence([X[e - 100:e] for e in ends], npartitions=8))
    assert np.array_equal(r, m.score_sequences(X, L))
    print(numba.threading_layer())
""")


@pytest.mark.parametrize("kind", ["list", "bag"])
@pytest.mark.parametrize("layer", ["workqueue", "default"])
def test_local_partitions_under_each_threading_layer(kind, layer, tmp_path):
    # the workqueue layer (numba without OpenMP/TBB) aborts the process on concurrent calls
    env = dict(os.environ, NUMBA_THREADING_LAYER=layer)
    r = subprocess.run([sys.executable, "-c", SCRIPT.format(kind=kind)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, (r.returncode, r.stderr[-2000:])
    if layer == "workqueue":
        assert r.stdout.split()[-1] == "workqueue"
