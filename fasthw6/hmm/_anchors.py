"""hmmlearn as the anchor of the HMM batch functions and of ``CategoricalHMM`` (used by tests and
benchmarks).

Each adapter has the signature of the public function (minus ``backend=``) and answers the same
question through hmmlearn's public API, the way a hmmlearn user has to: ``score`` only sums, so
per-sequence scores take one call per sequence.  A name means one thing everywhere:
``hmmlearn-scaling`` / ``hmmlearn-log`` is hmmlearn with ``implementation="scaling"`` / ``"log"``
(its default), and plain ``hmmlearn`` is the log implementation where hmmlearn has only one
(``decode``, ``score_samples``).  The ``CategoricalHMM`` anchors are hmmlearn's class with the
implementation fixed, taking the same constructor arguments as ours.
"""
from __future__ import annotations

import functools

import numpy as np

from .._backend import register_anchor


def hmmlearn_model(startprob, transmat, emissionprob, implementation="scaling"):
    """A ``hmmlearn.hmm.CategoricalHMM`` holding the given parameters (float64)."""
    from hmmlearn.hmm import CategoricalHMM  # noqa: PLC0415  (optional dependency)

    em = np.asarray(emissionprob, np.float64)
    m = CategoricalHMM(n_components=em.shape[0], n_features=em.shape[1], init_params="",
                       implementation=implementation)
    m.startprob_ = np.asarray(startprob, np.float64)
    m.transmat_ = np.asarray(transmat, np.float64)
    m.emissionprob_ = em
    return m


def _split(X, lengths):
    X = np.asarray(X).reshape(-1, 1)
    lens = [X.shape[0]] if lengths is None else [int(v) for v in lengths]
    cs = np.cumsum([0] + lens)
    return [X[cs[i]:cs[i + 1]] for i in range(len(lens))]


def _each(X, lengths, public, step):
    """``[answer(x) for x in sequences]`` at the cost of hmmlearn's own summed call.

    hmmlearn's ``score(X, lengths)`` / ``decode(X, lengths)`` validate the model and X once, then
    loop over the sequences with a per-sequence method, keeping only the sum.  Calling the public
    method once per sequence instead repeats the validation every time (about 0.3 ms a call,
    4x the work itself at N=16, T=500), which would make hmmlearn look slower than it is.  So:
    the public method validates on the first sequence, and ``step``, the per-sequence method its
    own loop runs (None when this hmmlearn lacks it: the public method then answers every one),
    answers the rest.
    """
    parts = _split(X, lengths)
    return [public(parts[0])] + [(step or public)(x) for x in parts[1:]]


def _scorer(implementation):
    def score_sequences(X, lengths, startprob, transmat, emissionprob, *, dtype=None):
        m = hmmlearn_model(startprob, transmat, emissionprob, implementation)
        inner = getattr(m, f"_score_{implementation}", None)
        step = None if inner is None else (lambda x: inner(x, compute_posteriors=False)[0])
        return np.array(_each(X, lengths, m.score, step))

    return score_sequences


@register_anchor("score_sequences", "hmmlearn-scaling")
def _score_scaling():
    import hmmlearn  # noqa: F401,PLC0415

    return _scorer("scaling")


@register_anchor("score_sequences", "hmmlearn-log")
def _score_log():
    import hmmlearn  # noqa: F401,PLC0415

    return _scorer("log")


@register_anchor("viterbi", "hmmlearn")
def _viterbi():
    import hmmlearn  # noqa: F401,PLC0415

    def viterbi(X, lengths, startprob, transmat, emissionprob):
        m = hmmlearn_model(startprob, transmat, emissionprob, "log")
        parts = _each(X, lengths, m.decode, getattr(m, "_decode_viterbi", None))
        return np.array([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    return viterbi


@register_anchor("posteriors", "hmmlearn")
def _posteriors():
    import hmmlearn  # noqa: F401,PLC0415

    def posteriors(X, lengths, startprob, transmat, emissionprob, *, dtype=None):
        m = hmmlearn_model(startprob, transmat, emissionprob, "log")
        inner = getattr(m, "_score_log", None)
        step = None if inner is None else (lambda x: inner(x, compute_posteriors=True))
        parts = _each(X, lengths, m.score_samples, step)
        return np.array([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    return posteriors


def _estimator(implementation):
    from hmmlearn.hmm import CategoricalHMM  # noqa: PLC0415  (optional dependency)

    return functools.partial(CategoricalHMM, implementation=implementation)


@register_anchor("CategoricalHMM", "hmmlearn-scaling")
def _estimator_scaling():
    return _estimator("scaling")


@register_anchor("CategoricalHMM", "hmmlearn-log")
def _estimator_log():
    return _estimator("log")
