"""The framewise engine (``fasthw6.hmm.frames``) and ``GaussianHMM``: agreement with the
categorical kernels, brute-force enumeration, hmmlearn, every backend, float32, range, and bad
input."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from _hmm_agree import LENGTHS, assert_agrees_with_hmmlearn

from fasthw6.hmm import (GaussianHMM, CategoricalHMM, em_statistics, frames_statistics,
                         load_model, posteriors, posteriors_frames, score_frames,
                         score_sequences, viterbi, viterbi_frames)

BACKENDS = ["numpy", "cython", "numba"]


def chain(n, seed):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(n)), rng.dirichlet(np.ones(n), n)


def brute(flp, sp, tm):
    """(log P, best path log-prob, γ) by enumerating every path."""
    T, N = flp.shape
    logp, best, g = [], -np.inf, np.zeros((T, N))
    with np.errstate(divide="ignore"):
        lsp, ltm = np.log(sp), np.log(tm)
    paths = list(itertools.product(range(N), repeat=T))
    for z in paths:
        lp = lsp[z[0]] + flp[0, z[0]] + sum(ltm[z[t - 1], z[t]] + flp[t, z[t]] for t in range(1, T))
        logp.append(lp)
        best = max(best, lp)
    logp = np.array(logp)
    total = np.logaddexp.reduce(logp)
    for z, lp in zip(paths, logp):
        g[np.arange(T), z] += np.exp(lp - total)
    return total, best, g


@pytest.mark.parametrize("N", [3, 16])
def test_far_frame_tables_take_the_prefetching_estep(N):
    """A table of frames larger than ESTEP_FAR_TABLE_BYTES makes the lockstep E-step fetch its
    rows ahead (the compiled small-N sweeps at N=3, the generic GEMM loops at N=16): the
    posteriors and sums equal the categorical kernels' on the same emissions (a small table,
    no hints), and numba's and Cython's bits are the same."""
    from fasthw6.hmm import _sizes

    rng = np.random.default_rng(N)
    M = 7
    sp, tm = chain(N, 2)
    em = rng.dirichlet(np.ones(M), N)
    lengths = rng.integers(560, 640, 90)
    lengths[:3] = (1, 2, 700)  # lanes that finish alone, and blocks of one
    X = rng.integers(0, M, lengths.sum())
    flp = np.log(em[:, X]).T
    assert flp.nbytes > _sizes.ESTEP_FAR_TABLE_BYTES
    got = {}
    for be in ("numba", "cython"):
        l1, g1 = posteriors(X, lengths, sp, tm, em, backend=be)
        l2, g2 = got[be] = posteriors_frames(flp, lengths, sp, tm, backend=be)
        np.testing.assert_allclose(l2, l1, rtol=1e-11)
        np.testing.assert_allclose(g2, g1, atol=1e-11)
        s1 = em_statistics(X, lengths, sp, tm, em, backend=be)
        s2 = frames_statistics(flp, lengths, sp, tm, backend=be)
        np.testing.assert_allclose(s2["trans"], s1["trans"], rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(s2["gamma"], g1, atol=1e-11)
        got[be] = got[be] + (s2["trans"], s2["gamma"])
    for a, b in zip(got["numba"], got["cython"]):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
def test_frames_equal_the_categorical_kernels(backend):
    rng = np.random.default_rng(1)
    N, M = 4, 6
    sp, tm = chain(N, 1)
    em = rng.dirichlet(np.ones(M), N)
    lengths = np.array([0, 1, 7, 30, 2, 65])
    X = rng.integers(0, M, lengths.sum())
    flp = np.log(em[:, X]).T
    np.testing.assert_allclose(score_frames(flp, lengths, sp, tm, backend=backend),
                               score_sequences(X, lengths, sp, tm, em, backend=backend),
                               rtol=1e-12, atol=1e-12)
    l1, g1 = posteriors(X, lengths, sp, tm, em, backend=backend)
    l2, g2 = posteriors_frames(flp, lengths, sp, tm, backend=backend)
    np.testing.assert_allclose(g2, g1, atol=1e-12)
    s1 = em_statistics(X, lengths, sp, tm, em, backend=backend)
    s2 = frames_statistics(flp, lengths, sp, tm, backend=backend)
    np.testing.assert_allclose(s2["trans"], s1["trans"], rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(s2["start"], s1["start"], rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(s2["gamma"], g1, atol=1e-12)
    v1, p1 = viterbi(X, lengths, sp, tm, em, backend=backend)
    v2, p2 = viterbi_frames(flp, lengths, sp, tm, backend=backend)
    np.testing.assert_array_equal(p2, p1)
    np.testing.assert_allclose(v2, v1, rtol=1e-13)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_frames_brute_force_and_range(backend, dtype):
    """Tiny chains enumerated path by path; every log-likelihood lowered by 1000 (each frame's
    probabilities ~e^-1000, far below float64's range) changes the score by exactly 1000 T."""
    rng = np.random.default_rng(2)
    N, T = 3, 5
    sp, tm = chain(N, 2)
    flp = rng.normal(size=(T, N)) * 3
    flp[2, 1] = -np.inf  # state 1 cannot emit frame 2
    total, best, g = brute(flp, sp, tm)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for shift in (0.0, -1000.0):
        ll = score_frames(flp + shift, None, sp, tm, dtype=dtype, backend=backend)
        np.testing.assert_allclose(ll, [total + shift * T], rtol=tol)
        _, gamma = posteriors_frames(flp + shift, None, sp, tm, dtype=dtype, backend=backend)
        np.testing.assert_allclose(gamma, g, atol=tol)
        lp, _ = viterbi_frames(flp + shift, None, sp, tm, backend=backend)
        np.testing.assert_allclose(lp, [best + shift * T], rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_frames_impossible_sequences_are_minus_inf_never_nan(backend):
    sp, tm = chain(2, 3)
    flp = np.zeros((6, 2))
    flp[3] = -np.inf  # no state can emit frame 3: the second sequence is impossible
    ll = score_frames(flp, [3, 3], sp, tm, backend=backend)
    assert np.isfinite(ll[0]) and ll[1] == -np.inf
    _, gamma = posteriors_frames(flp, [3, 3], sp, tm, backend=backend)
    assert not np.isnan(gamma).any() and (gamma[3:] == 0).all()
    st = frames_statistics(flp, [3, 3], sp, tm, backend=backend)
    assert not any(np.isnan(v).any() for v in st.values())


def test_frames_bad_input():
    sp, tm = chain(2, 4)
    with pytest.raises(ValueError, match=r"framelogprob\[1, 0\] is nan"):
        score_frames([[0.0, 0.0], [np.nan, 0.0]], None, sp, tm)
    with pytest.raises(ValueError, match=r"framelogprob\[0, 1\] is inf"):
        score_frames([[0.0, np.inf]], None, sp, tm)
    with pytest.raises(ValueError, match=r"shape \(n_samples, 2\)"):
        score_frames(np.zeros((3, 3)), None, sp, tm)
    with pytest.raises(TypeError, match="real numbers"):
        score_frames(np.array([["a", "b"]]), None, sp, tm)
    with pytest.raises(ValueError, match="lengths"):
        score_frames(np.zeros((3, 2)), [2, 2], sp, tm)
    with pytest.raises(ValueError, match="transmat row 1"):
        score_frames(np.zeros((3, 2)), None, sp, [[0.5, 0.5], [0.5, 0.6]])


@pytest.mark.parametrize("N", [1, 3, 8, 9, 64])
def test_frames_scoring_kernel_scales_as_it_reads(N):
    """``forward_loglik_frames`` (the kernel reads log-likelihoods and scales each frame by
    its maximum as it goes): numba and Cython give the same bits, on the lockstep lanes (N <= 8
    scaled lanes innermost, above row by row after the GEMM) and the sequences' tails alone;
    both match the reference and the table path (``scaled_frames`` + ``forward_loglik``) to
    rounding; frames at -1000, rows of -inf and impossible sequences come out right; a NaN or
    +inf entry anywhere gives a ValueError naming it, from every backend."""
    from fasthw6.hmm import _cython, _numba, reference
    from fasthw6.hmm.frames import _iota, scaled_frames, score_table

    rng = np.random.default_rng(N)
    lengths = np.concatenate([rng.integers(1, 40, 150), [0, 300]])
    rng.shuffle(lengths)
    off = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    n = int(off[-1])
    sp, tm = chain(N, N)
    flp = rng.normal(size=(n, N)) * 4 - 1000.0
    flp[rng.random((n, N)) < 0.2] = -np.inf
    flp[7] = -np.inf  # a frame no state emits: its sequence is impossible
    order = np.argsort(lengths, kind="stable")[np.count_nonzero(lengths == 0):]
    res = []
    for mod in (_numba, _cython, reference):
        out = np.zeros(lengths.size)
        assert mod.forward_loglik_frames(_iota(n), off, order.astype(np.int64), sp, tm, flp,
                                         out) == -1
        res.append(out)
    np.testing.assert_array_equal(res[0], res[1])
    np.testing.assert_allclose(res[0], res[2], rtol=1e-12)
    impossible = res[0] == -np.inf
    s7 = int(np.searchsorted(off, 7, side="right")) - 1
    assert impossible[s7] and not np.isnan(res[0]).any()
    table = score_table(sp, tm, *scaled_frames(flp, np.float64), off, np.float64, "cython")
    np.testing.assert_allclose(score_frames(flp, lengths, sp, tm, backend="numba"), table,
                               rtol=1e-12)
    assert (score_frames(flp, lengths, sp, tm, backend="numba")[~impossible] > -np.inf).all()
    for bad in (np.nan, np.inf):
        g = flp.copy()
        g[n - 5, N - 1] = bad
        for backend in BACKENDS:
            with pytest.raises(ValueError, match=rf"framelogprob\[{n - 5}, {N - 1}\] is"):
                score_frames(g, lengths, sp, tm, backend=backend)


# ------------------------------------------------------------------------- GaussianHMM
KINDS = ["diag", "spherical", "full", "tied"]


def gaussian_params(kind, N, D, rng):
    means = rng.normal(size=(N, D)) * 4
    if kind == "diag":
        cv = rng.uniform(0.5, 2.0, (N, D))
    elif kind == "spherical":
        cv = rng.uniform(0.5, 2.0, N)
    elif kind == "full":
        A = rng.normal(size=(N, D, D))
        cv = A @ A.transpose(0, 2, 1) + np.eye(D)
    else:
        A = rng.normal(size=(D, D))
        cv = A @ A.T + np.eye(D)
    return means, cv


def gaussian_model(kind, N=3, D=2, seed=0, **kw):
    rng = np.random.default_rng(seed)
    sp, tm = chain(N, seed)
    means, cv = gaussian_params(kind, N, D, rng)
    m = GaussianHMM(N, kind, init_params="", **kw)
    m.startprob_, m.transmat_, m.means_, m.covars_ = sp, tm, means, cv
    return m


@pytest.mark.parametrize("kind", KINDS)
def test_gaussian_matches_hmmlearn(kind):
    hmm = pytest.importorskip("hmmlearn.hmm")
    f = gaussian_model(kind, backend="cython")
    h = hmm.GaussianHMM(3, kind, init_params="", implementation="scaling")
    h.startprob_, h.transmat_, h.means_, h.covars_ = f.startprob_, f.transmat_, f.means_, \
        f._covars_
    lengths = LENGTHS
    X = assert_agrees_with_hmmlearn(f, h, lengths)
    np.testing.assert_allclose(f.get_stationary_distribution(), h.get_stationary_distribution(),
                               atol=1e-12)
    # EM from hmmlearn's own start (k-means and the data covariance, same seed)
    hf = hmm.GaussianHMM(3, kind, n_iter=5, tol=-np.inf, random_state=3,
                         implementation="scaling").fit(X, lengths)
    ff = GaussianHMM(3, kind, n_iter=5, tol=-np.inf, random_state=3,
                     backend="cython").fit(X, lengths)
    np.testing.assert_allclose(ff.means_, hf.means_, rtol=1e-8, atol=1e-8)
    hcv = hf._covars_[:, 0] if kind == "spherical" else hf._covars_
    np.testing.assert_allclose(ff._covars_, hcv, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ff.transmat_, hf.transmat_, atol=1e-10)
    np.testing.assert_allclose(ff.startprob_, hf.startprob_, atol=1e-10)
    np.testing.assert_allclose(list(ff.monitor_.history), list(hf.monitor_.history), rtol=1e-10)


@pytest.mark.parametrize("kind", KINDS)
def test_gaussian_brute_force(kind):
    """Emission densities from scipy, the chain enumerated path by path."""
    stats = pytest.importorskip("scipy.stats")
    m = gaussian_model(kind, N=3, D=2, seed=7, backend="numpy")
    X = np.random.default_rng(7).normal(size=(4, 2)) * 3
    cov = m.covars_
    flp = np.array([[stats.multivariate_normal(m.means_[i], cov[i]).logpdf(x) for i in range(3)]
                    for x in X])
    total, best, g = brute(flp, m.startprob_, m.transmat_)
    assert m.score(X) == pytest.approx(total, rel=1e-12)
    np.testing.assert_allclose(m.predict_proba(X), g, atol=1e-12)
    assert m.decode(X)[0] == pytest.approx(best, rel=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_gaussian_backends_and_float32_agree(kind):
    X = gaussian_model(kind, seed=11).sample(300, random_state=0)[0]
    ref = {}
    for be in BACKENDS:
        m = GaussianHMM(3, kind, n_iter=3, tol=-np.inf, random_state=0, backend=be).fit(
            X, [150, 150])
        ref[be] = (m.score_sequences(X, [150, 150]), m.means_)
    for be in ("cython", "numba"):
        np.testing.assert_allclose(ref[be][0], ref["numpy"][0], rtol=1e-10)
        np.testing.assert_allclose(ref[be][1], ref["numpy"][1], rtol=1e-9, atol=1e-9)
    m32 = GaussianHMM(3, kind, n_iter=3, tol=-np.inf, random_state=0, dtype=np.float32,
                      backend="cython").fit(X, [150, 150])
    np.testing.assert_allclose(m32.means_, ref["numpy"][1], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(m32.score_sequences(X, [150, 150]), ref["numpy"][0], rtol=1e-4)


def test_gaussian_em_never_nan():
    """A state no frame visits keeps its parameters; a constant feature's variance is floored
    at min_covar (hmmlearn's GitHub issue #2 data)."""
    m = gaussian_model("diag", N=3, D=1, seed=1, params="mc", backend="cython", n_iter=3)
    m.startprob_ = np.array([1.0, 0.0, 0.0])
    m.transmat_ = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    keep_mean, keep_cov = m.means_[1:].copy(), m._covars_[1:].copy()
    m.fit(np.random.default_rng(0).normal(size=(50, 1)))
    np.testing.assert_array_equal(m.means_[1:], keep_mean)
    np.testing.assert_array_equal(m._covars_[1:], keep_cov)
    X = np.array([[715.0, 585.0, 0.0, 0.0], [715.0, 520.0, 1.05, -60.4], [715.0, 455.0, 0.72, -52.7],
                  [715.0, 390.0, -0.46, -78.1], [715.0, 325.0, -6.43, -56.0],
                  [715.0, 260.0, -2.90, -78.0], [715.0, 195.0, 8.46, -70.3],
                  [715.0, 130.0, 4.09, -58.4], [715.0, 65.0, -1.22, -44.8]])
    for kind in KINDS:
        g = GaussianHMM(3, kind, random_state=0, backend="cython").fit(X)
        assert np.isfinite(g.score(X))
        assert np.isfinite(g.covars_).all() and np.isfinite(g.means_).all()
        assert np.linalg.eigvalsh(g.covars_).min() >= g.min_covar * (1 - 1e-9)


def test_gaussian_bad_input(tmp_path):
    m = gaussian_model("full", backend="cython")
    with pytest.raises(ValueError, match=r"X\[1, 0\] is nan"):
        m.score(np.array([[0.0, 0.0], [np.nan, 1.0]]))
    with pytest.raises(ValueError, match="2 features per sample|n_features=2"):
        m.score(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"reshape\(-1, 1\)"):
        m.score(np.zeros(4))
    bad = m._covars_.copy()
    bad[1] = [[1.0, 2.0], [2.0, 1.0]]  # indefinite
    m.covars_ = bad
    with pytest.raises(ValueError, match="state 1 is not positive definite"):
        m.score(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="covariance_type must be one of"):
        GaussianHMM(2, "bad").covars_ = np.ones(2)
    d = gaussian_model("diag")
    d.covars_ = -d._covars_
    with pytest.raises(ValueError, match="covars_ of state 0 must be positive"):
        d.score(np.zeros((2, 2)))
    c = CategoricalHMM(2, init_params="")
    c.startprob_, c.transmat_, c.emissionprob_ = [1.0, 0.0], np.eye(2), np.eye(2)
    c.save(tmp_path / "c.json")
    with pytest.raises(ValueError, match="holds a 'categorical' model, not a 'gaussian' one"):
        GaussianHMM.load(tmp_path / "c.json")


@pytest.mark.parametrize("kind", KINDS)
def test_gaussian_save_load(tmp_path, kind):
    m = gaussian_model(kind, backend="cython")
    p = tmp_path / "g.json"
    m.save(p)
    obj = json.loads(p.read_text())
    assert obj["type"] == "gaussian" and obj["format_version"] == 1
    m2 = load_model(p, backend="cython")
    assert isinstance(m2, GaussianHMM) and m2.covariance_type == kind
    X = m.sample(50, random_state=1)[0]
    np.testing.assert_array_equal(m2.score_sequences(X, [25, 25]), m.score_sequences(X, [25, 25]))
    obj["format_version"] = 99
    p.write_text(json.dumps(obj))
    with pytest.raises(ValueError, match="format version 99 is newer"):
        load_model(p)


@pytest.mark.parametrize("kind", KINDS)
def test_gaussian_far_from_origin(kind):
    """Data offset by 1e6 with unit variances: the centred products keep the scores of the
    offset-free model to 1e-7 relative (an uncentred expansion cancels ~1e12-sized terms)."""
    m = gaussian_model(kind, seed=3, backend="cython")
    X = m.sample(200, random_state=2)[0]
    ref = m.score_sequences(X, [200])
    m.means_ = m.means_ + 1e6
    np.testing.assert_allclose(m.score_sequences(X + 1e6, [200]), ref, rtol=1e-7)


def test_diag_frames_kernels_agree_bit_for_bit():
    """The fused diagonal-Gaussian kernels: numba and Cython give the same bits (one polynomial
    exponential, the same operation order), the NumPy reference agrees to rounding; frames
    outside [a, b) are not written; the exponential holds to 4e-16 relative down to -708 and
    is 0 below (-inf included)."""
    from fasthw6.hmm import _cython, _numba, reference

    rng = np.random.default_rng(0)
    for N, D in [(3, 4), (5, 1), (8, 3), (64, 16)]:  # 8: frames-outer stores from there
        X = rng.normal(size=(300, D)) * 30
        args = (rng.normal(size=D), 3, 290, rng.normal(size=(N, D)), -rng.uniform(0.1, 3, (N, D)),
                rng.normal(size=N))
        res = []
        for mod in (_numba, _cython, reference):
            out, shift = np.full((300, N), 7.0), np.full(300, 7.0)
            mod.diag_frames(X, *args, out, shift, True)
            assert (out[:3] == 7).all() and (out[290:] == 7).all()
            res.append((out[3:290], shift[3:290]))
        np.testing.assert_array_equal(res[0][0], res[1][0])
        np.testing.assert_array_equal(res[0][1], res[1][1])
        np.testing.assert_allclose(res[0][0], res[2][0], rtol=1e-10, atol=1e-300)  # ll ~ 1e4
        np.testing.assert_allclose(res[0][1], res[2][1], rtol=1e-13)
    # the exponential alone: ll = y for one state (const = y, no features)
    y = np.concatenate([-np.linspace(0, 744, 20001), [-np.inf, -708.4, -745.1]])
    out, shift = np.empty((y.size, 2)), np.empty(y.size)
    _numba.diag_frames(np.zeros((y.size, 0)), np.zeros(0), 0, y.size, np.zeros((2, 0)),
                       np.zeros((2, 0)), np.array([0.0, 0.0]), out, shift, True)
    assert (out == 1.0).all()  # both states equal: each frame scales to 1
    e = np.empty(y.size)
    for i, v in enumerate(y):  # through the kernel: state 1 at y below state 0
        o, s = np.empty((1, 2)), np.empty(1)
        _numba.diag_frames(np.zeros((1, 0)), np.zeros(0), 0, 1, np.zeros((2, 0)),
                           np.zeros((2, 0)), np.array([0.0, v]), o, s, True)
        e[i] = o[0, 1]
    with np.errstate(under="ignore"):
        ref = np.exp(y)
    kept = y > -708.0
    assert kept.sum() > 19000
    np.testing.assert_allclose(e[kept], ref[kept], rtol=4e-16)
    assert (e[~kept] == 0.0).all() and (ref[~kept] < 3.4e-308).all()


def test_full_frames_kernels_agree_bit_for_bit():
    """The full-covariance kernel (L⁻¹ times the residuals, tiles of four): numba and Cython
    give the same bits, in both modes (log-likelihoods; scaled with the shift), the NumPy
    reference agrees to rounding, and so does scipy's multivariate normal on the unpadded
    problem; D not a multiple of 4, one feature, one state, and frames outside [a, b) are
    not written.  Through ``log_density``, the kernel and the pairs-and-BLAS product agree
    on every backend."""
    from scipy.stats import multivariate_normal

    from fasthw6.hmm import _cython, _gaussian, _numba, reference

    rng = np.random.default_rng(5)
    for N, D in [(3, 4), (1, 1), (5, 3), (8, 9), (16, 16)]:
        X = rng.normal(size=(300, D)) * 3
        means = rng.normal(size=(N, D))
        A = rng.normal(size=(N, D, D))
        cv = A @ A.transpose(0, 2, 1) + 0.5 * np.eye(D)
        terms = _gaussian.full_terms(means, cv, "full")
        assert terms[2].shape[1] % 4 == 0 and (terms[2][:, D:] == 0).all()
        want = np.stack([multivariate_normal(means[k], cv[k]).logpdf(X[3:290]).reshape(-1)
                         for k in range(N)], axis=1)
        for scaled in (False, True):
            res = []
            for mod in (_numba, _cython, reference):
                out, shift = np.full((300, N), 7.0), np.full(300, 7.0)
                mod.full_frames(X, terms[0], 3, 290, *terms[1:], out, shift, scaled)
                assert (out[:3] == 7).all() and (out[290:] == 7).all()
                assert (shift[:3] == 7).all() and (shift[290:] == 7).all()
                if not scaled:
                    assert (shift == 7).all()
                res.append((out[3:290], shift[3:290]))
            np.testing.assert_array_equal(res[0][0], res[1][0])
            np.testing.assert_array_equal(res[0][1], res[1][1])
            np.testing.assert_allclose(res[0][0], res[2][0], rtol=1e-11, atol=1e-300)
            if scaled:
                np.testing.assert_allclose(res[0][1], want.max(axis=1), rtol=1e-11)
                np.testing.assert_allclose(np.log(res[0][0]) + res[0][1][:, None], want,
                                           rtol=1e-11)
            else:
                np.testing.assert_allclose(res[0][0], want, rtol=1e-11)
    N, D = 3, 5  # log_density: kernel (3 states) and pairs (forced) on every backend
    X = rng.normal(size=(5000, D))
    means = rng.normal(size=(N, D))
    A = rng.normal(size=(N, D, D))
    cv = A @ A.transpose(0, 2, 1) + np.eye(D)
    assert _gaussian.full_kernel(N, D) and not _gaussian.full_kernel(32, D)
    assert not _gaussian.full_kernel(16, 16)
    for kind, c in (("full", cv), ("tied", cv[0])):
        got = [_gaussian.log_density(X, means, c, kind, be) for be in ("numba", "cython", "numpy")]
        np.testing.assert_array_equal(got[0], got[1])
        old = _gaussian._FULL_KERNEL_MAX_K
        _gaussian._FULL_KERNEL_MAX_K = 0
        try:
            pairs = _gaussian.log_density(X, means, c, kind, "numba")
        finally:
            _gaussian._FULL_KERNEL_MAX_K = old
        for g in got:
            np.testing.assert_allclose(g, pairs, rtol=1e-11)


@pytest.mark.parametrize("N, D", [(9, 3), (16, 1), (20, 16), (3, 4), (1, 2), (2, 7), (4, 16),
                                  (5, 3), (8, 2)])
def test_fused_diag_scoring_kernels_agree_bit_for_bit(N, D):
    """``forward_loglik_diag`` (the densities computed inside the scoring kernel, by GEMM) and
    ``forward_loglik_diag_lanes`` (in the unrolled small-N lanes, N <= DIAG_SMALL_MAX_N) give,
    in numba and Cython alike, the bits of the framewise scoring kernel on the table of the
    same log-likelihoods (``diag_frames``) where both step alike: by GEMM (N > SMALL_MAX_N) or
    in the lanes; between, the fused kernel's GEMM and the table's lanes agree to rounding.
    The two backends agree bit for bit at every N; the NumPy reference agrees to rounding.
    Ragged lengths: empty, one frame, blocks whose lanes finish alone, more sequences than one
    block."""
    from fasthw6.hmm import _cython, _gaussian as G, _numba, reference
    from fasthw6.hmm._sizes import DIAG_SMALL_MAX_N, SMALL_MAX_N
    from fasthw6.hmm.frames import _iota

    rng = np.random.default_rng(N * 100 + D)
    lengths = np.concatenate([[0, 1, 2, 130], rng.integers(0, 40, 70)])
    off = np.concatenate([[0], np.cumsum(lengths)])
    n = int(off[-1])
    X = rng.normal(size=(n, D)) * 3
    sp, tm = chain(N, N)
    means, cv = rng.normal(size=(N, D)) * 2, rng.uniform(0.2, 3, (N, D))
    c, lin, quad, const = G.diag_terms(means, cv, "diag")
    flp = np.empty((n, N))
    _numba.diag_frames(X, c, 0, n, lin, quad, const, flp, np.empty(0), False)
    order = np.argsort(lengths, kind="stable")
    order = order[np.count_nonzero(lengths == 0):].astype(np.int64)
    want = np.zeros(len(lengths))
    assert _numba.forward_loglik_frames(_iota(n), off, order, sp, tm, flp, want) == -1
    outs = {}
    name = "forward_loglik_diag_lanes" if N <= DIAG_SMALL_MAX_N else "forward_loglik_diag"
    for mod in (_numba, _cython, reference):
        out = outs[mod] = np.zeros(len(lengths))
        assert getattr(mod, name)(_iota(n), off, order, sp, tm, (X, c, lin, quad, const),
                                  out) == -1
        if mod is reference:
            np.testing.assert_allclose(out, want, rtol=1e-11)
        elif N > SMALL_MAX_N or N <= DIAG_SMALL_MAX_N:  # the same operations
            np.testing.assert_array_equal(out, want)
        else:  # the fused kernel's GEMM against the table's unrolled lanes: another order
            np.testing.assert_allclose(out, want, rtol=1e-12)
    np.testing.assert_array_equal(outs[_cython], outs[_numba])
    assert want[0] == 0.0 and np.isfinite(want).all()
    if N > DIAG_SMALL_MAX_N:  # the lanes' entry refuses more states than it has lanes for
        for mod in (_numba, _cython):
            with pytest.raises(ValueError, match="too many states"):
                mod.forward_loglik_diag_lanes(_iota(n), off, order, sp, tm,
                                              (X, c, lin, quad, const), out)


@pytest.mark.parametrize("N, D", [(5, 3), (16, 1), (20, 16), (3, 4), (49, 5), (130, 2), (1, 2),
                                  (2, 8), (4, 16)])
def test_fused_diag_viterbi_kernels_agree_bit_for_bit(N, D):
    """``viterbi_diag`` (the densities computed inside the Viterbi kernel) gives, in numba and
    Cython alike, the paths and log-probabilities of the table kernel ``viterbi`` on the
    table of the same log-likelihoods (``diag_frames``), bit for bit; the NumPy reference
    finds the same paths, its log-probabilities equal to rounding.  Ragged lengths (empty,
    one frame, lanes that finish alone, more sequences than a block), an impossible
    transition (N > 1), and every Viterbi width: narrow lanes, wide lanes (N >=
    VIT_LANES_MAX_N) and one sequence at a time (N > VIT_WIDE_MAX_N)."""
    from fasthw6.hmm import _cython, _gaussian as G, _numba, reference
    from fasthw6.hmm.frames import _iota

    rng = np.random.default_rng(N * 100 + D)
    lengths = np.concatenate([[0, 1, 2, 130], rng.integers(0, 40, 70 if N < 100 else 6)])
    off = np.concatenate([[0], np.cumsum(lengths)])
    n = int(off[-1])
    X = rng.normal(size=(n, D)) * 3
    sp, tm = chain(N, N)
    if N > 1:
        tm[0, 1] = 0.0
    with np.errstate(divide="ignore"):
        lsp, ltm = np.log(sp), np.log(tm)
    means, cv = rng.normal(size=(N, D)) * 2, rng.uniform(0.2, 3, (N, D))
    c, lin, quad, const = G.diag_terms(means, cv, "diag")
    flp = np.empty((n, N))
    _numba.diag_frames(X, c, 0, n, lin, quad, const, flp, np.empty(0), False)
    bp = np.empty((1, int(lengths.max()), N), np.int8 if N <= 127 else np.int16)
    want_lp, want_states = np.empty(len(lengths)), np.empty(n, np.int64)
    _numba.viterbi(_iota(n), off, lsp, ltm, flp, bp, want_states, want_lp, -1)
    for mod in (_numba, _cython, reference):
        lp, states = np.full(len(lengths), np.nan), np.full(n, -1, np.int64)
        mod.viterbi_diag(_iota(n), off, lsp, ltm, (X, c, lin, quad, const), bp, states, lp,
                         -1)
        if mod is reference:  # NumPy's densities round otherwise
            np.testing.assert_allclose(lp, want_lp, rtol=1e-12)
        else:
            np.testing.assert_array_equal(lp, want_lp)
        np.testing.assert_array_equal(states, want_states)
    assert want_lp[0] == 0.0 and np.isfinite(want_lp).all()


def _spy(monkeypatch, module, name):
    """A list that each call of ``module.name`` appends to (the function still runs)."""
    calls = []
    fn = getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a: calls.append(1) or fn(*a))
    return calls


@pytest.mark.parametrize("N, D, fused", [(5, 3, True), (2, 3, True), (3, 7, True), (3, 8, False)])
@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_gaussian_fused_viterbi_matches_the_table(backend, N, D, fused, monkeypatch):
    """GaussianHMM decodes diagonal and spherical models inside the Viterbi kernel from
    FUSED_VITERBI_MIN_N states on, and at any N for frames of at most FUSED_NARROW_D
    features (else from the table): the same paths and log-probabilities as the framewise
    engine on the model's own log-likelihoods, also where a state's densities underflow."""
    from fasthw6.hmm import _gaussian as G

    assert (G.FUSED_VITERBI_MIN_N, G.FUSED_NARROW_D) == (5, 7)  # the cases' premise
    calls = _spy(monkeypatch, G, "viterbi_diag")
    for kind in ("diag", "spherical"):
        m = gaussian_model(kind, N=N, D=D, seed=7, backend=backend)
        X, _ = m.sample(300, random_state=2)
        lengths = [0, 1, 120, 179]
        lp, states = m.decode(X, lengths)
        want_lp, want_states = viterbi_frames(m._log_frames(X), lengths, m.startprob_,
                                              m.transmat_, backend=backend)
        np.testing.assert_array_equal(states, want_states)
        assert lp == want_lp.sum()
        # one state 10^3 sd from the data, where its density underflows in float64: the
        # log space loses nothing
        m.means_ = np.where(np.arange(N)[:, None] == 0, 1e3, m.means_)
        lp, states = m.decode(X, lengths)
        want_lp, want_states = viterbi_frames(m._log_frames(X), lengths, m.startprob_,
                                              m.transmat_, backend=backend)
        np.testing.assert_array_equal(states, want_states)
        assert lp == want_lp.sum() and np.isfinite(lp)
    assert len(calls) == (4 if fused else 0)  # two decodes per kind, fused or none


@pytest.mark.parametrize("N, D, fused", [(9, 8, True), (3, 7, True), (1, 2, True),
                                         (4, 8, False), (5, 3, False), (8, 2, False)])
@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_gaussian_fused_scoring_route(backend, N, D, fused, monkeypatch):
    """GaussianHMM scores diagonal and spherical models in float64 inside the scoring kernel
    from FUSED_MIN_N states on, and up to DIAG_SMALL_MAX_N states for frames of at most
    FUSED_NARROW_D features (``fused_score``), else from a table; either way the scores of the
    framewise engine on the model's own log-likelihoods (to the bit where the two step alike:
    the small-N lanes), and float32 models never take the fused kernel."""
    from fasthw6.hmm import _gaussian as G
    from fasthw6.hmm._sizes import DIAG_SMALL_MAX_N

    assert (G.FUSED_MIN_N, DIAG_SMALL_MAX_N, G.FUSED_NARROW_D) == (9, 4, 7)  # the premise
    calls = _spy(monkeypatch, G, "score_diag")
    for kind in ("diag", "spherical"):
        m = gaussian_model(kind, N=N, D=D, seed=3, backend=backend)
        X, _ = m.sample(300, random_state=4)
        lengths = [0, 1, 120, 179]
        got = m.score_sequences(X, lengths)
        want = score_frames(m._log_frames(X), lengths, m.startprob_, m.transmat_,
                            backend=backend)
        if N <= DIAG_SMALL_MAX_N:
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-12)
    assert len(calls) == (2 if fused else 0)
    m32 = gaussian_model("diag", N=N, D=D, seed=3, backend=backend, dtype=np.float32)
    want32 = score_frames(m32._log_frames(X), lengths, m32.startprob_, m32.transmat_,
                          dtype=np.float32, backend=backend)
    np.testing.assert_allclose(m32.score_sequences(X, lengths), want32, rtol=1e-6)
    assert len(calls) == (2 if fused else 0)  # float32: the table


@pytest.mark.parametrize("kind", ["diag", "spherical"])
@pytest.mark.parametrize("backend", ["numba", "cython"])
def test_gaussian_fused_scoring_recovers_and_matches(kind, backend):
    """GaussianHMM scores N >= FUSED_MIN_N diagonal models inside the scoring kernel: the
    scores equal the framewise engine's on the model's own log-likelihoods; a sequence whose
    only possible path runs through a frame that underflows in the scaled kernel (3600 nats
    below the best state) is rescored in log space to its true value, never -inf or NaN."""
    from fasthw6.hmm import _gaussian as G

    N, D = G.FUSED_MIN_N + 1, 2
    m = gaussian_model(kind, N=N, D=D, seed=5, backend=backend)
    X, _ = m.sample(400, random_state=1)
    lengths = [0, 1, 150, 249]
    got = m.score_sequences(X, lengths)
    want = score_frames(m._log_frames(X), lengths, m.startprob_, m.transmat_, backend="numpy")
    np.testing.assert_allclose(got, want, rtol=1e-11)
    assert m.score(X, lengths) == pytest.approx(want.sum(), rel=1e-11)
    # state 0 alone can start and never leaves; frame 1 sits on state 1's mean, 3600 nats
    # from state 0's
    sp = np.zeros(N)
    sp[0] = 1.0
    tm = np.full((N, N), 1.0 / N)
    tm[0] = 0.0
    tm[0, 0] = 1.0
    m.startprob_, m.transmat_ = sp, tm
    means = np.zeros((N, D))
    means[1:] = 60.0
    m.means_ = means
    m.covars_ = np.ones(N) if kind == "spherical" else np.ones((N, D))
    Y = np.zeros((3, D))
    Y[1] = 60.0
    got = m.score_sequences(Y, [3])
    exact = 3 * (-D / 2 * np.log(2 * np.pi)) - 0.5 * D * 60.0 ** 2
    assert got[0] == pytest.approx(exact, rel=1e-12)


def test_frame_pairs_kernels_agree():
    """The Gaussian features (pairwise products, or squares only with ``diag``, and the
    centred frame, lanes innermost): numba and Cython give the same bits, the NumPy reference
    the same values; columns past b - a and rows past the features are not written;
    log_density and moments built on them match a direct evaluation on every backend, with
    blocks and pieces of frames that do not divide the batch."""
    from fasthw6.hmm import _cython, _gaussian, _numba, reference

    rng = np.random.default_rng(1)
    for D, diag in itertools.product((1, 3, 16), (False, True)):
        X = rng.normal(size=(300, D)) * 5
        c = rng.normal(size=D)
        iu, ju = (np.arange(D),) * 2 if diag else np.triu_indices(D)
        y = X[7:250] - c
        want = np.vstack([(y[:, iu] * y[:, ju]).T, y.T])
        res = []
        for mod in (_numba, _cython, reference):
            out = np.full((want.shape[0] + 1, 260), 7.0)  # a last row it must not write
            mod.frame_pairs(X, c, 7, 250, out, diag)
            assert (out[:, 243:] == 7).all() and (out[-1] == 7).all()
            res.append(out[:-1, :243])
        np.testing.assert_array_equal(res[0], res[1])
        np.testing.assert_array_equal(res[0], res[2])
        np.testing.assert_allclose(res[0], want, rtol=1e-15)
    n, K, D = 70_001, 3, 5  # more than one piece and block, neither dividing n
    X = rng.normal(size=(n, D))
    means = rng.normal(size=(K, D))
    A = rng.normal(size=(K, D, D))
    cv = A @ A.transpose(0, 2, 1) + np.eye(D)
    w = rng.uniform(size=(n, K))
    ctr = means.mean(axis=0)
    Linv = np.linalg.inv(np.linalg.cholesky(cv))
    z = np.einsum("kij,nkj->nki", Linv, X[:, None, :] - means[None])
    ll = -0.5 * (D * np.log(2 * np.pi) + np.linalg.slogdet(cv)[1] + (z * z).sum(axis=2))
    y = X - ctr
    for be in ("numba", "cython", "numpy"):
        np.testing.assert_allclose(_gaussian.log_density(X, means, cv, "full", be), ll,
                                   rtol=1e-10, atol=1e-10)
        post, obs, sq = _gaussian.moments(X, w, "full", ctr, be)
        np.testing.assert_allclose(post, w.sum(axis=0), rtol=1e-12)
        np.testing.assert_allclose(obs, w.T @ y, rtol=1e-10)
        np.testing.assert_allclose(sq, np.einsum("nk,ni,nj->kij", w, y, y), rtol=1e-10)


@pytest.mark.parametrize("K,D", [(3, 4), (5, 1), (64, 4), (16, 16), (32, 16)])
def test_diag_moments_kernel_and_blas_agree(K, D):
    """Diagonal M-step sums: the fused kernel (K < 16, or < 32 from 16 features on) and the
    BLAS blocks against a direct evaluation, every backend, pieces and blocks not dividing n
    (the kernel's last frames of a piece one at a time); numba's and Cython's sums are the
    same bits."""
    from fasthw6.hmm import _gaussian

    rng = np.random.default_rng(K * D)
    n = 70_001
    X = rng.normal(size=(n, D)) * 3 + 10
    w = rng.uniform(size=(n, K))
    ctr = rng.normal(size=D) + 10
    y = X - ctr
    res = {}
    for be in ("numba", "cython", "numpy"):
        post, obs, sq = res[be] = _gaussian.moments(X, w, "diag", ctr, be)
        np.testing.assert_allclose(post, w.sum(axis=0), rtol=1e-12)
        np.testing.assert_allclose(obs, w.T @ y, rtol=1e-10, atol=1e-8)
        np.testing.assert_allclose(sq, w.T @ (y * y), rtol=1e-10)
    for a, b in zip(res["numba"], res["cython"]):
        np.testing.assert_array_equal(a, b)


def test_mixture_frames_kernels_agree():
    """GMMHMM's mixture kernel: numba and Cython give the same bits, the NumPy reference the
    same values, in both outputs (logs; scaled table and shift) and with the posteriors; a zero
    weight, a state whose components are all -inf and a frame with every state -inf give 0
    (scaled), -inf (logs) and posteriors 0, never NaN; rows outside [a, b) are untouched."""
    from fasthw6.hmm import _cython, _numba, reference

    rng = np.random.default_rng(2)
    N, nm, n = 3, 4, 300
    L0 = rng.normal(size=(n, N * nm)) * 50 - 300
    L0[5, 4:8] = -np.inf  # state 1 impossible at frame 5
    L0[9] = -np.inf  # every state impossible at frame 9
    logw = np.log(rng.dirichlet(np.ones(nm), N))
    logw[2, 1] = -np.inf  # a zero weight
    for scaled in (False, True):
        res = []
        for mod in (_numba, _cython, reference):
            L = L0.copy()
            out, shift = np.full((n, N), 7.0), np.full(n if scaled else 0, 7.0)
            mod.mixture_frames(L, logw, 3, 290, out, shift, True, scaled)
            assert (out[:3] == 7).all() and (out[290:] == 7).all()
            assert (L[:3] == L0[:3]).all() and (L[290:] == L0[290:]).all()
            assert not np.isnan(out).any() and not np.isnan(L).any()
            res.append((out[3:290], shift[3:290] if scaled else shift, L[3:290]))
        for k in range(3):
            np.testing.assert_array_equal(res[0][k], res[1][k])
            np.testing.assert_allclose(res[0][k], res[2][k], rtol=1e-13, atol=1e-300)
        out, shift, post = res[0]
        x = L0[3:290].reshape(-1, N, nm) + logw
        with np.errstate(divide="ignore", invalid="ignore"):
            ll = np.log(np.exp(x - x.max(axis=2, keepdims=True)).sum(axis=2)) + x.max(axis=2)
        ll[np.isnan(ll)] = -np.inf
        with np.errstate(divide="ignore"):
            got = np.log(out) + shift[:, None] if scaled else out
        np.testing.assert_allclose(got, ll, rtol=1e-13)
        assert (got[2, 1] == -np.inf) and (got[6] == -np.inf).all()
        assert (post[2, 4:8] == 0).all() and (post[6] == 0).all()
        np.testing.assert_allclose(post.reshape(-1, N, nm)[[0, 1, 3]].sum(axis=2), 1.0)


def test_gaussian_feature_check_without_a_mask():
    """check_features sums X first and only then looks elementwise: an inf or NaN anywhere is
    still found and named, and finite features whose sum overflows are accepted."""
    from fasthw6.hmm.gaussian import check_features
    for bad, r, c in ((np.inf, 3, 1), (-np.inf, 0, 0), (np.nan, 5, 1)):
        X = np.ones((6, 2))
        X[r, c] = bad
        with pytest.raises(ValueError, match=rf"X\[{r}, {c}\] is {bad}"):
            check_features(X)
    X = np.array([[1e308, 1e308], [1e308, -1.0]])  # sum overflows, every value finite
    np.testing.assert_array_equal(check_features(X), X)
    X = np.array([[np.inf, -np.inf]])  # sums to NaN
    with pytest.raises(ValueError, match=r"X\[0, 0\] is inf"):
        check_features(X)


def test_sequence_sums_and_shared_symbols():
    """_seq_sums over ragged sequences with empty ones among them (first, middle, last) equals
    the plain per-sequence sums; _iota is arange whatever the order of the sizes asked."""
    from fasthw6.hmm import frames as F
    rng = np.random.default_rng(3)
    lengths = np.array([0, 3, 0, 0, 5, 1, 0])
    off = np.concatenate(([0], np.cumsum(lengths)))
    v = rng.normal(size=off[-1])
    want = [v[a:b].sum() for a, b in zip(off[:-1], off[1:])]
    np.testing.assert_allclose(F._seq_sums(v, off), want, rtol=1e-15, atol=0)
    assert F._seq_sums(v[:0], np.zeros(3, np.int64)).tolist() == [0.0, 0.0]
    for n in (5, 100, 3, 0, F._IOTA_MAX + 1, 7):
        np.testing.assert_array_equal(F._iota(n), np.arange(n))


def _continuous_models(N, D, backend):
    """A GaussianHMM of each covariance type and a GMMHMM, parameters set, on ``backend``."""
    from fasthw6.hmm import GMMHMM
    rng = np.random.default_rng(N)
    sp, tm = rng.dirichlet(np.ones(N)), rng.dirichlet(np.ones(N), size=N)
    out = []
    for kind in ("diag", "spherical", "full", "tied"):
        m = GaussianHMM(N, kind, init_params="", backend=backend)
        m.startprob_, m.transmat_, m.means_ = sp, tm, rng.normal(size=(N, D))
        m.covars_ = {"diag": np.ones((N, D)), "spherical": np.ones(N),
                     "full": np.tile(np.eye(D), (N, 1, 1)), "tied": np.eye(D)}[kind]
        out.append(m)
    g = GMMHMM(N, 2, "diag", init_params="", backend=backend)
    g.startprob_, g.transmat_ = sp, tm
    g.weights_, g.means_ = np.full((N, 2), 0.5), rng.normal(size=(N, 2, D))
    g.covars_ = np.ones((N, 2, D))
    return out + [g]


@pytest.mark.parametrize("N", [3, 12])
def test_non_finite_features_found_after_the_run(backend, N):
    """The continuous models check X's values only when a result is not finite
    (``_evaluate``): a NaN or infinite feature at the first, a middle or the last frame of a
    sequence, through every operation, every covariance type, the table (N=3) and in-kernel
    (N=12, diag) scoring, still raises the ValueError naming the entry; finite data whose
    diagonal densities underflow to 0 (-inf scores) is checked, found finite and answered."""
    D = 3
    ops = {"score": lambda m, X, L: m.score(X, L),
           "score_sequences": lambda m, X, L: m.score_sequences(X, L),
           "score_samples": lambda m, X, L: m.score_samples(X, L),
           "viterbi": lambda m, X, L: m.decode(X, L),
           "map": lambda m, X, L: m.decode(X, L, algorithm="map"),
           "predict_proba": lambda m, X, L: m.predict_proba(X, L)}
    rng = np.random.default_rng(1)
    X0, L = rng.normal(size=(24, D)), [7, 9, 8]
    for m in _continuous_models(N, D, backend):
        for name, op in ops.items():
            for bad, r, c in ((np.nan, 7, 0), (np.inf, 11, 2), (-np.inf, 23, 1)):
                X = X0.copy()
                X[r, c] = bad
                with pytest.raises(ValueError, match=rf"X\[{r}, {c}\] is {bad}"):
                    op(m, X, L)
            op(m, X0, L)  # finite: no error
    for m in _continuous_models(N, D, backend):  # finite, but their squares overflow
        if m.covariance_type not in ("diag", "spherical"):
            continue  # full matrices: inf - inf in the quadratic form, the engine's NaN error
        ll = m.score_sequences(X0 * 1e200, L)
        assert (ll == -np.inf).all(), type(m).__name__


@pytest.mark.parametrize("kind", ["diag", "full"])
def test_chunked_estep_adds_up_to_the_whole_batch(kind):
    """GaussianHMM's E-step runs in chunks of whole sequences (``_estep_chunk_frames``): the
    summed statistics equal the whole batch's to rounding, whatever the cut (chunks of one
    sequence, empty sequences at the cuts, a sequence longer than a chunk), at one thread and
    at the machine's thread count; numba and Cython give the same bits."""
    from fasthw6._backend import single_threaded

    lengths = [0, 1, 150, 0, 99, 230, 0, 120, 0]
    base = gaussian_model(kind, N=4, D=2, seed=3)
    X, _ = base.sample(sum(lengths), random_state=4)
    off = np.concatenate([[0], np.cumsum(lengths)])
    sums = {}
    for backend in ("numba", "cython"):
        m = gaussian_model(kind, N=4, D=2, seed=3, backend=backend)
        sp, tm = m._start_em(1)
        assert m._estep_chunk_frames(4) >= len(X)  # so this is the batch in one piece
        whole = m._estep(X, off, sp, tm)
        for per in (1, 100, 200, 10 ** 6):
            m._estep_chunk_frames = lambda n, per=per: per
            got = m._estep(X, off, sp, tm)
            with single_threaded():
                one = m._estep(X, off, sp, tm)
            assert got.keys() == whole.keys() == one.keys()
            for k in whole:
                np.testing.assert_allclose(got[k], whole[k], rtol=1e-12, err_msg=k)
                np.testing.assert_allclose(one[k], whole[k], rtol=1e-12, err_msg=k)
            sums[backend, per] = got
    for per in (1, 100, 200, 10 ** 6):
        for k in sums["numba", per]:
            np.testing.assert_array_equal(sums["numba", per][k], sums["cython", per][k])
    assert sums["numba", 1]["n_sequences"] == len(lengths)
    assert sums["numba", 1]["n_frames"] == len(X)


@pytest.mark.parametrize("kind,N", [("diag", 3), ("full", 3), ("full", 12), ("spherical", 5)])
def test_chunked_runs_match_the_whole_batch(kind, N):
    """Scores, Viterbi paths and the E-step through a table of frames run in chunks of whole
    sequences (``BaseHMM._chunk_cuts``): cut as the frames fall (chunks of about 300
    sequences) and in whole multiples of 64 sequences (chunks of few); the same per-sequence
    bits as the whole batch up to SMALL_MAX_N states (beyond, the lockstep GEMM's rounding
    moves with a sequence's block), the same paths, numba's and Cython's bits alike."""
    from fasthw6._backend import single_threaded
    from fasthw6.hmm._base import CHUNK_SEQS

    rng = np.random.default_rng(N)
    lengths = rng.integers(0, 9, 700)  # about 2800 frames, empty sequences among them
    lengths[64:192] = 0  # whole chunks of empty sequences where chunks are blocks of 64
    base = gaussian_model(kind, N=N, D=3, seed=5)
    X, _ = base.sample(int(lengths.sum()), random_state=6)
    off = np.concatenate([[0], np.cumsum(lengths)])
    exact = N <= 8
    runs = {}
    for backend in ("numba", "cython"):
        m = gaussian_model(kind, N=N, D=3, seed=5, backend=backend)
        assert m._chunk_cuts(off, N) is None  # so this is the batch in one piece
        whole = (m.score_sequences(X, lengths), m.decode(X, lengths))
        for per in (1200, 100):  # ~300 sequences a chunk: as cut; ~25: whole blocks of 64
            m._estep_chunk_frames = lambda n, per=per: per
            cuts = m._chunk_cuts(off, N, True)
            assert len(cuts) > 2
            assert (np.diff(cuts) % CHUNK_SEQS != 0).any() if per == 1200 else \
                (cuts[:-1] % CHUNK_SEQS == 0).all()
            got = (m.score_sequences(X, lengths), m.decode(X, lengths))
            with single_threaded():
                one = (m.score_sequences(X, lengths), m.decode(X, lengths))
            for r in (got, one):
                if exact:
                    np.testing.assert_array_equal(r[0], whole[0])
                    assert r[1][0] == whole[1][0]
                else:
                    np.testing.assert_allclose(r[0], whole[0], rtol=1e-12)
                    np.testing.assert_allclose(r[1][0], whole[1][0], rtol=1e-12)
                np.testing.assert_array_equal(r[1][1], whole[1][1])
            np.testing.assert_array_equal(got[0], one[0])
            sp, tm = m._start_em(1)
            stats = m._estep(X, off, sp, tm)
            m._estep_chunk_frames = lambda n: None
            ref = m._estep(X, off, sp, tm)
            for k in ref:
                np.testing.assert_allclose(stats[k], ref[k], rtol=1e-12, err_msg=k)
            runs[backend, per] = got
            m._estep_chunk_frames = lambda n, per=per: per
            bad = X.copy()
            bad[len(X) - 5, 1] = np.nan  # in the last chunk
            for op in (m.score_sequences, m.decode, m.fit):
                with pytest.raises(ValueError, match=rf"X\[{len(X) - 5}, 1\] is nan"):
                    op(bad, lengths)
    for per in (1200, 100):
        np.testing.assert_array_equal(runs["numba", per][0], runs["cython", per][0])
        np.testing.assert_array_equal(runs["numba", per][1][1], runs["cython", per][1][1])


@pytest.mark.parametrize("K,D", [(1, 1), (3, 4), (5, 7), (8, 3)])
def test_full_moments_kernel_and_blas_agree(K, D):
    """Full M-step sums: the fused kernel (K < 6) and ``frame_pairs`` with BLAS (from 6)
    against a direct evaluation, every backend, pieces and blocks not dividing n; numba's and
    Cython's kernels give the same bits, and the kernel agrees with the BLAS path."""
    from fasthw6.hmm import _cython, _gaussian, _numba, reference

    rng = np.random.default_rng(K * 10 + D)
    n = 70_001
    X = rng.normal(size=(n, D)) * 3 + 10
    w = rng.uniform(size=(n, K))
    ctr = rng.normal(size=D) + 10
    y = X - ctr
    want = np.einsum("nk,ni,nj->kij", w, y, y)
    res = {}
    for be in ("numba", "cython", "numpy"):
        post, obs, sq = res[be] = _gaussian.moments(X, w, "full", ctr, be)
        np.testing.assert_allclose(post, w.sum(axis=0), rtol=1e-12)
        np.testing.assert_allclose(obs, w.T @ y, rtol=1e-10, atol=1e-8)
        np.testing.assert_allclose(sq, want, rtol=1e-10, atol=1e-8)
        assert (sq == sq.transpose(0, 2, 1)).all()
    for a, b in zip(res["numba"], res["cython"]):
        np.testing.assert_array_equal(a, b)
    P = D * (D + 1) // 2  # the kernels themselves, on a ragged range
    got = []
    for mod in (_numba, _cython, reference):
        post, obs, sq = np.zeros(K), np.zeros((K, D)), np.zeros((K, P))
        mod.full_moments(X, ctr, w, 3, 1000, post, obs, sq)
        got.append((post, obs, sq))
    for a, b in zip(got[0], got[1]):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(got[0], got[2]):
        np.testing.assert_allclose(a, b, rtol=1e-11)
    old = _gaussian._FULL_MOMENTS_MAX_K
    _gaussian._FULL_MOMENTS_MAX_K = 0 if old > K else 100
    try:
        other = _gaussian.moments(X, w, "full", ctr, "numba")
    finally:
        _gaussian._FULL_MOMENTS_MAX_K = old
    for a, b in zip(res["numba"], other):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-9)


def _table_room(family, backend):
    """A model of each room that runs through a table of frames (besides GaussianHMM)."""
    from test_hmm_counts import ours
    from test_hmm_gmm import gmm_model

    if family == "gmm":
        return gmm_model("diag", N=3, nm=2, D=2, seed=7, backend=backend)
    return ours(family, N=3, D=4, seed=7, backend=backend)


@pytest.mark.parametrize("family", ["poisson", "multinomial", "gmm"])
def test_every_table_room_runs_in_chunks(family):
    """PoissonHMM, MultinomialHMM and GMMHMM cut their batches into chunks as GaussianHMM does
    (``BaseHMM._estep_chunk_frames``; a mixture's chunks hold fewer frames, by its components'
    posteriors): per-sequence scores and paths keep their bits, the E-step sums agree with the
    whole batch's to rounding, numba's and Cython's bits alike; the counts models' factorials
    are computed once per fitted batch, not once per chunk or iteration."""
    from fasthw6.hmm._base import CHUNK_BYTES, CHUNK_MIN_FRAMES

    lengths = np.random.default_rng(11).integers(0, 30, 300)
    off = np.concatenate([[0], np.cumsum(lengths)])
    X, _ = _table_room(family, "numba").sample(int(off[-1]), random_state=12)
    runs = {}
    for backend in ("numba", "cython"):
        m = _table_room(family, backend)
        values = 3 * (m.n_mix + 1 if family == "gmm" else 1)
        assert m._estep_chunk_frames(3) == max(CHUNK_MIN_FRAMES, CHUNK_BYTES // (8 * values))
        assert m._chunk_cuts(off, 3) is None  # so this is the batch in one piece
        whole = (m.score_sequences(X, lengths), m.decode(X, lengths))
        data, _ = m._data(X, lengths)
        sp, tm = m._start_em(1)
        ref = m._estep(data, off, sp, tm)
        m._estep_chunk_frames = lambda n: 500  # about 35 sequences a chunk
        assert len(m._chunk_cuts(off, 3)) > 8
        got = (m.score_sequences(X, lengths), m.decode(X, lengths))
        np.testing.assert_array_equal(got[0], whole[0])
        assert got[1][0] == whole[1][0]
        np.testing.assert_array_equal(got[1][1], whole[1][1])
        stats = m._estep(data, off, sp, tm)
        assert stats.keys() == ref.keys()
        for k in ref:
            np.testing.assert_allclose(stats[k], ref[k], rtol=1e-12, atol=1e-12, err_msg=k)
        if family != "gmm":  # the factorials: once for the batch, whatever the chunks
            calls = []
            coefficients = m._coefficients
            m._coefficients = lambda x, terms: calls.append(len(x)) or coefficients(x, terms)
            m.set_params(n_iter=3, tol=-np.inf).fit(X, lengths)
            assert calls == [len(X)]
        runs[backend] = got, stats
    np.testing.assert_array_equal(runs["numba"][0][0], runs["cython"][0][0])
    for k in runs["numba"][1]:
        np.testing.assert_array_equal(runs["numba"][1][k], runs["cython"][1][k])


@pytest.mark.parametrize("family", ["poisson", "multinomial", "gmm", "gaussian"])
def test_table_rooms_hold_no_table_of_the_batch(family):
    """What a fit iteration, a score and a decode allocate grows with the batch by its data
    alone (the counts' float copy and factorials, the paths), not by a table of N values a
    frame: every table lives in a chunk (``BaseHMM._chunk_cuts``).  Traced peaks of a batch and
    of one twice its size, 32 states, one thread (so the chunks in flight do not vary); a table
    of the batch would add 256 bytes a frame each."""
    import tracemalloc
    from fasthw6._backend import single_threaded
    from test_hmm_counts import ours
    from test_hmm_gmm import gmm_model

    N = 32
    if family == "gmm":
        m = gmm_model("diag", N=N, nm=2, D=2, seed=1)
    elif family == "gaussian":
        m = gaussian_model("full", N=N, D=2, seed=1)
    else:
        m = ours(family, N=N, D=2, seed=1, n_trials=10)
    m.set_params(n_iter=1, tol=-np.inf)
    X, _ = m.sample(120_000, random_state=0)
    peaks = {}
    for n in (60_000, 120_000):
        lengths = np.full(n // 100, 100)
        for op in ("fit", "score", "decode"):
            getattr(m, op)(X[:n], lengths)  # compiled and warm
            tracemalloc.start()
            try:
                with single_threaded():
                    getattr(m, op)(X[:n], lengths)
                peaks[op, n] = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
    for op in ("fit", "score", "decode"):
        per_frame = (peaks[op, 120_000] - peaks[op, 60_000]) / 60_000
        assert per_frame < 100, (op, per_frame)
