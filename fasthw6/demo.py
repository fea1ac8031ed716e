"""``fasthw6 demo``: the source document's five questions, run end to end on their own data.

Each ``q*`` function computes its question with the library, checks the result against what the
document states, and returns ``(lines, ok)``: the text to print and whether every check held.
The document's own HMM code (question 4, ``fasthw6._document``) runs beside the library's
training, so that its NaN can be shown next to the library's, which has none.
"""
from __future__ import annotations

import logging
import time
import warnings

import numpy as np

from ._document import CONV_A, CONV_K, URN_A, URN_B, URN_O, URN_PI, document_hmm_run


def _fmt(a, digits=6) -> str:
    return np.array2string(np.asarray(a, dtype=np.float64), precision=digits, suppress_small=True,
                           separator=", ", max_line_width=100)


def _mark(ok: bool) -> str:
    return "ok" if ok else "MISMATCH"


# --------------------------------------------------------------------------- questions
def q1():
    """Batch normalization forward/backward on a toy batch, with a finite-difference check."""
    from fasthw6.nn import batchnorm_backward, batchnorm_forward

    rng = np.random.default_rng(1)
    z = rng.normal(3.0, 2.0, size=(8, 4))  # a mini-batch of linear outputs z_j^[i], m=8, 4 neurons
    gamma, beta = np.array([1.0, 0.5, 2.0, 1.5]), np.array([0.0, 1.0, -1.0, 0.5])
    y, cache = batchnorm_forward(z, gamma, beta, eps=1e-5)
    # the document's minibatch statistics, written out
    mu = z.mean(axis=0)
    var = ((z - mu) ** 2).mean(axis=0)
    expect = gamma * (z - mu) / np.sqrt(var + 1e-5) + beta
    fwd_err = float(np.abs(y - expect).max())
    w = rng.standard_normal(y.shape)  # loss = sum(w * y), so dL/dy = w
    dx, dgamma, dbeta = batchnorm_backward(w, cache)

    def loss(zz, gg, bb):
        return float(np.sum(w * batchnorm_forward(zz, gg, bb, eps=1e-5)[0]))

    h = 1e-6
    num = {}
    for name, arr in (("dx", z), ("dgamma", gamma), ("dbeta", beta)):
        g = np.zeros_like(arr)
        for idx in np.ndindex(arr.shape):
            p, m = arr.copy(), arr.copy()
            p[idx] += h
            m[idx] -= h
            args = {"dx": (p, gamma, beta), "dgamma": (z, p, beta), "dbeta": (z, gamma, p)}[name]
            argm = {"dx": (m, gamma, beta), "dgamma": (z, m, beta), "dbeta": (z, gamma, m)}[name]
            g[idx] = (loss(*args) - loss(*argm)) / (2 * h)
        num[name] = g
    errs = {k: float(np.abs(v - num[k]).max() / max(1.0, np.abs(num[k]).max()))
            for k, v in (("dx", dx), ("dgamma", dgamma), ("dbeta", dbeta))}
    xhat = (y - beta) / gamma
    ok = fwd_err < 1e-10 and max(errs.values()) < 1e-6
    lines = [
        "Q1  Batch normalization between the linear map and the activation (m=8, 4 neurons)",
        f"    minibatch mean mu_B   = {_fmt(mu, 4)}",
        f"    minibatch var sigma2_B = {_fmt(var, 4)}  (biased, 1/m, as the document writes)",
        f"    normalised x_hat: mean {_fmt(xhat.mean(axis=0), 3)}, var {_fmt(xhat.var(axis=0), 3)}"
        "  (zero mean, unit variance)",
        f"    y = gamma*x_hat + beta equals the document's formula: max |diff| = {fwd_err:.1e}  {_mark(fwd_err < 1e-10)}",
        f"    dL/dgamma = {_fmt(dgamma, 4)}",
        f"    dL/dbeta  = {_fmt(dbeta, 4)}",
        "    gradient check vs central differences (h=1e-6), max relative error: "
        + ", ".join(f"{k} {v:.1e}" for k, v in errs.items()) + f"  {_mark(max(errs.values()) < 1e-6)}",
        "    -> gamma and beta are learnt by backpropagation, as the document says.",
    ]
    return lines, ok


def q2():
    """KL divergence to N(0, I) and the reparameterization z = mu + sigma * eps."""
    from fasthw6.vae import kl_divergence, reparameterize

    mu = np.array([[0.0, 1.0, -0.5], [0.0, 0.0, 0.0]])
    sigma = np.array([[1.0, 0.5, 2.0], [1.0, 1.0, 1.0]])
    logvar = np.log(sigma ** 2)
    kl = np.asarray(kl_divergence(mu, logvar))
    doc = 0.5 * np.sum(mu ** 2 + sigma ** 2 - np.log(sigma ** 2) - 1, axis=1)  # the document's formula
    kl_err = float(np.abs(kl - doc).max())
    rng = np.random.default_rng(2)
    n = 200_000
    eps = rng.standard_normal((n, 3))
    m1 = np.broadcast_to(mu[:1], (n, 3))
    lv1 = np.broadcast_to(logvar[:1], (n, 3))
    z = np.asarray(reparameterize(np.ascontiguousarray(m1), np.ascontiguousarray(lv1), eps))
    zm, zs = z.mean(axis=0), z.std(axis=0)
    stat_ok = bool(np.all(np.abs(zm - mu[0]) < 0.02) and np.all(np.abs(zs / sigma[0] - 1) < 0.01))
    ok = kl_err < 1e-12 and abs(kl[1]) < 1e-15 and stat_ok
    return [
        "Q2  VAE: KL loss and reparameterized sampling of the continuous latent space",
        f"    mu = {_fmt(mu[0], 3)}, sigma = {_fmt(sigma[0], 3)}",
        f"    KL = {kl[0]:.6f}; the document's 1/2 sum(mu^2 + sigma^2 - log sigma^2 - 1) = {doc[0]:.6f}"
        f"  {_mark(kl_err < 1e-12)}",
        f"    KL at mu=0, sigma=1 (already N(0,1)): {kl[1]:.1f}  {_mark(abs(kl[1]) < 1e-15)}",
        f"    z = mu + sigma*eps over {n} draws: mean {_fmt(zm, 3)}, std {_fmt(zs, 3)}  {_mark(stat_ok)}",
    ], ok


def q3():
    """The hard-margin SVM of the document's two points."""
    from fasthw6.svm import HardMarginSVC

    X = np.array([[1.0, -1.0], [-1.0, -1.0]])
    y = np.array([1, -1])
    clf = HardMarginSVC().fit(X, y)
    w, b, lam = np.ravel(clf.coef_), float(np.ravel(clf.intercept_)[0]), np.ravel(clf.alphas_)
    ok_w = np.allclose(w, [1, 0], atol=1e-8)
    ok_b = abs(b) < 1e-8
    ok_l = np.allclose(lam, [0.5, 0.5], atol=1e-8)
    margins = y * (X @ w + b)
    return [
        "Q3  Hard-margin SVM on x1=[1,-1] (y=+1), x2=[-1,-1] (y=-1), solved in the dual",
        f"    W = {_fmt(w, 6)}   document: [1, 0]    {_mark(ok_w)}",
        f"    b = {b:.6f}           document: 0         {_mark(ok_b)}",
        f"    lambda = {_fmt(lam, 6)}   document: [1/2, 1/2]  {_mark(ok_l)}",
        f"    y_i (W x_i + b) = {_fmt(margins, 6)} (both support vectors on the margin), "
        f"margin 2/||W|| = {2 / np.linalg.norm(w):.6f}",
    ], bool(ok_w and ok_b and ok_l)


def q4(n_iter: int = 100):
    """The urn HMM trained n_iter EM iterations: no NaN, log-likelihood per iteration, Viterbi."""
    from fasthw6.hmm import CategoricalHMM

    O = np.array(URN_O)
    X = O.reshape(-1, 1)
    model = CategoricalHMM(n_components=3, n_iter=1, init_params="", tol=-np.inf)
    model.startprob_ = np.array(URN_PI)
    model.transmat_ = np.array(URN_A)
    model.emissionprob_ = np.array(URN_B)
    lls = [float(model.score(X))]
    with warnings.catch_warnings():  # 11 free parameters for 5 symbols: degenerate, on purpose
        warnings.simplefilter("ignore")
        quiet = [logging.getLogger(n) for n in ("fasthw6", "hmmlearn")]
        levels = [lg.level for lg in quiet]
        for lg in quiet:
            lg.setLevel(logging.ERROR)
        try:
            for _ in range(n_iter):
                model.fit(X)
                lls.append(float(model.score(X)))
        finally:
            for lg, lv in zip(quiet, levels):
                lg.setLevel(lv)
    params_finite = bool(np.isfinite(model.startprob_).all() and np.isfinite(model.transmat_).all()
                         and np.isfinite(model.emissionprob_).all())
    logprob, states = model.decode(X)
    states = np.asarray(states)
    # the true Viterbi path, by enumerating all 3^5 paths of the trained model
    best, best_lp = None, -np.inf
    with np.errstate(divide="ignore"):
        lA, lB, lpi = np.log(model.transmat_), np.log(model.emissionprob_), np.log(model.startprob_)
    for path in np.ndindex(*(3,) * len(O)):
        lp = lpi[path[0]] + lB[path[0], O[0]] + sum(lA[path[t - 1], path[t]] + lB[path[t], O[t]]
                                                   for t in range(1, len(O)))
        if lp > best_lp + 1e-12:
            best, best_lp = path, lp
    viterbi_ok = list(states) == list(best) and abs(float(logprob) - best_lp) < 1e-9
    monotone = all(b >= a - 1e-9 for a, b in zip(lls, lls[1:]))
    doc_paths, doc_nans, _ = document_hmm_run(n_iter)
    first_nan = next((i + 1 for i, v in enumerate(doc_nans) if v), None)
    lines = [
        "Q4  Urn HMM (3 urns, red=0/blue=1), O = [0, 0, 1, 0, 1], the document's start A, B, PI",
        f"    log P(O) per EM iteration (iteration 0 = the start, {n_iter} iterations):",
    ]
    for i in range(0, len(lls), 10):
        lines.append("      " + " ".join(f"{i + j:3d}:{v:<10.4g}" for j, v in enumerate(lls[i:i + 10])))
    lines += [
        f"    log-likelihood never decreases: {_mark(monotone)}; parameters finite after {n_iter} "
        f"iterations, no NaN: {_mark(params_finite)}",
        f"    Viterbi path (states 1-based as in the document): {(states + 1).tolist()}, "
        f"log-prob {float(logprob):.6f}",
        f"    all 3^5 paths enumerated, best: {(np.array(best) + 1).tolist()}  {_mark(viterbi_ok)}",
        "    the document's code, run as written (backward uses B[:, O[t]] instead of B[:, O[t+1]],",
        "    gamma summed from XI, argmax of delta per column instead of backtracking):",
        "      paths it prints around the failure: " + "; ".join(
            f"{i}: {doc_paths[i - 1]}{' NaN' if doc_nans[i - 1] else ''}"
            for i in range(max(1, (first_nan or n_iter) - 2), min(n_iter, (first_nan or n_iter) + 1) + 1)),
        (f"      NaN first occurs at iteration {first_nan} and stays in {sum(doc_nans)} of "
         f"{n_iter} iterations (the document reports it at the 96th)" if first_nan is not None else
         "      no NaN within these iterations"),
        f"      fasthw6 over the same {n_iter} iterations: {'no NaN' if params_finite else 'NaN!'}",
    ]
    ok = params_finite and viterbi_ok and monotone and first_nan is not None
    return lines, ok


def q5():
    """Sub-pixel (transposed) convolution of the document's 5x5 image and 3x3 kernel, then ReLU."""
    from fasthw6.conv import subpixel_conv2d
    from fasthw6.conv.reference import doc_subpixel_convolution

    A = np.array(CONV_A, dtype=np.float32)
    K = np.array(CONV_K, dtype=np.float32)
    t0 = time.perf_counter()
    out = subpixel_conv2d(A, K, stride=2, activation="relu")
    doc = doc_subpixel_convolution(A, K)
    same = bool(np.array_equal(out, doc))
    lines = ["Q5  Sub-pixel convolution: zero-interpolate 5x5 -> 9x9, pad 2, 3x3 kernel, ReLU -> 11x11"]
    for row in out.astype(np.int64).tolist():
        lines.append("    " + " ".join(f"{v:3d}" for v in row))
    lines.append(f"    equal to the document's method run as written: {_mark(same)} "
                 f"({(time.perf_counter() - t0) * 1e3:.1f} ms, shape {out.shape}, {out.dtype})")
    return lines, same


QUESTIONS = (("Q1", q1), ("Q2", q2), ("Q3", q3), ("Q4", q4), ("Q5", q5))


def run(which=None, out=print) -> bool:
    """Run the questions (all, or the names in ``which``), print them, return whether all held.

    Examples
    --------
    >>> run(["Q5"], out=lambda s: None)
    True
    """
    all_ok = True
    for name, fn in QUESTIONS:
        if which and name not in which:
            continue
        lines, ok = fn()
        for line in lines:
            out(line)
        out("")
        all_ok &= bool(ok)
    return all_ok
