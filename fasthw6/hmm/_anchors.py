"""hmmlearn as the anchor of the HMM batch functions (used by tests and benchmarks).

Each adapter has the signature of the public function (minus ``backend=``) and loops over the
sequences the way a hmmlearn user has to: ``score`` only sums, so per-sequence scores need one
call per sequence.  Its ``implementation`` is ``"scaling"`` or ``"log"`` (its default).
"""
from __future__ import annotations

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


def _scorer(implementation):
    def score_sequences(X, lengths, startprob, transmat, emissionprob, *, dtype=None):
        m = hmmlearn_model(startprob, transmat, emissionprob, implementation)
        return np.array([m.score(x) for x in _split(X, lengths)])

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
        parts = [m.decode(x) for x in _split(X, lengths)]
        return np.array([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    return viterbi


@register_anchor("posteriors", "hmmlearn")
def _posteriors():
    import hmmlearn  # noqa: F401,PLC0415

    def posteriors(X, lengths, startprob, transmat, emissionprob, *, dtype=None):
        m = hmmlearn_model(startprob, transmat, emissionprob, "log")
        parts = [m.score_samples(x) for x in _split(X, lengths)]
        return np.array([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    return posteriors
