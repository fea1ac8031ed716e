"""hmmlearn as the anchor of the HMM batch functions and of ``CategoricalHMM`` (used by tests and
benchmarks).

Each adapter has the signature of the public function (minus ``backend=``) and answers the same
question through hmmlearn's public API, the way a hmmlearn user has to: ``score`` only sums, so
per-sequence scores take one call per sequence.  A name means one thing everywhere:
``hmmlearn-scaling`` / ``hmmlearn-log`` is hmmlearn with ``implementation="scaling"`` / ``"log"``
(its default), and plain ``hmmlearn`` is the log implementation where hmmlearn has only one
(``decode``, ``score_samples``).  The ``CategoricalHMM`` anchors are hmmlearn's class with the
implementation fixed, taking the same constructor arguments as ours.

The other HMM libraries a user would pick, each the way its documentation has it used:
``hmmkay`` (numba, float32 inside: an adapter carries ``rtol``, the precision to compare it
at), ``dynamax`` (JAX, float64, ``jit`` of a ``vmap`` over the sequences of each length) and
``pomegranate`` (PyTorch, ``DenseHMM`` in float64, a batch per length; ``ends`` all 1, so a
sequence may end in any state, as in the others).
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


def _hmmlearn_class(name, implementation="scaling"):
    import hmmlearn.hmm  # noqa: PLC0415  (optional dependency)

    return functools.partial(getattr(hmmlearn.hmm, name), implementation=implementation)


# the continuous and count models: hmmlearn's classes, scaling implementation (its faster one)
for _name in ("GaussianHMM", "GMMHMM", "PoissonHMM", "MultinomialHMM"):
    register_anchor(_name, "hmmlearn")(functools.partial(_hmmlearn_class, _name))


def _sequences(X, lengths):
    """The sequences as 1-D arrays, for libraries that take a list of them."""
    return [x.ravel() for x in _split(X, lengths)]


def _by_length(X, lengths):
    """The sequences grouped by length: [(indices, (k, T) array)], for libraries that take a
    rectangular batch."""
    parts = _sequences(X, lengths)
    groups = {}
    for i, x in enumerate(parts):
        groups.setdefault(x.shape[0], []).append(i)
    # int64: PyTorch would take a uint8 tensor for a boolean mask, not indices
    return [(np.array(idx), np.stack([parts[i] for i in idx]).astype(np.int64))
            for idx in groups.values()]


def _scores_by_length(X, lengths, score_batch):
    """Per-sequence scores from ``score_batch((k, T) int64 array) -> (k,)``, one call per
    length."""
    out = np.empty(len(_split(X, lengths)))
    for idx, batch in _by_length(X, lengths):
        out[idx] = score_batch(batch)
    return out


def _paths_by_length(X, lengths, decode_batch, startprob, transmat, emissionprob):
    """(log P(path, x), states) from ``decode_batch((k, T) int64 array) -> (k, T) paths``, one
    call per length; the log-probability of each path taken in float64."""
    parts = _sequences(X, lengths)
    paths = [None] * len(parts)
    for idx, batch in _by_length(X, lengths):
        for i, p in zip(idx, decode_batch(batch)):
            paths[i] = np.asarray(p)
    logprob = [_path_logprob(x, p, startprob, transmat, emissionprob) for x, p in zip(parts, paths)]
    return np.array(logprob), np.concatenate(paths).astype(np.int64)


def _path_logprob(x, path, startprob, transmat, emissionprob):
    """log P(path, x) in float64, for libraries whose Viterbi returns only the path."""
    with np.errstate(divide="ignore"):
        return float(np.log(startprob[path[0]]) + np.log(transmat[path[:-1], path[1:]]).sum()
                     + np.log(emissionprob[path, x]).sum())


def _hmmkay(startprob, transmat, emissionprob):
    from hmmkay import HMM  # noqa: PLC0415  (optional dependency)

    return HMM(np.asarray(startprob, np.float64), np.asarray(transmat, np.float64),
               np.asarray(emissionprob, np.float64))


@register_anchor("score_sequences", "hmmkay")
def _score_hmmkay():
    from hmmkay.utils import check_sequences  # noqa: PLC0415

    def score_sequences(X, lengths, startprob, transmat, emissionprob, *, dtype=None):
        # as its log_likelihood, which sums: sequences checked once, one _forward each
        m = _hmmkay(startprob, transmat, emissionprob)
        seqs, longest = check_sequences(_sequences(X, lengths), return_longest_length=True)
        log_alpha = np.empty((m.n_hidden_states, longest), np.float32)
        return np.array([m._forward(x, log_alpha) for x in seqs], np.float64)

    score_sequences.rtol = 1e-5
    return score_sequences


@register_anchor("viterbi", "hmmkay")
def _viterbi_hmmkay():
    import hmmkay  # noqa: F401,PLC0415

    def viterbi(X, lengths, startprob, transmat, emissionprob):
        m = _hmmkay(startprob, transmat, emissionprob)
        paths, logprob = m.decode(_sequences(X, lengths), return_log_probas=True)
        return np.asarray(logprob, np.float64), np.concatenate(paths).astype(np.int64)

    viterbi.rtol = 1e-5
    return viterbi


@functools.lru_cache(maxsize=None)
def _dynamax_model(n, n_symbols, mle):
    """A dynamax ``CategoricalHMM`` for n states and n_symbols symbols, with its score, decode
    and EM iteration jitted once (params are arguments, so a new model of the same shape does
    not compile again: JIT warm-up stays out of a timed call, as for numba).  ``mle``: Dirichlet
    priors of concentration 1, so its M-step is the maximum-likelihood one of the others."""
    import jax  # noqa: PLC0415  (optional dependency)

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp  # noqa: PLC0415
    from dynamax.hidden_markov_model import CategoricalHMM  # noqa: PLC0415

    priors = dict(initial_probs_concentration=1.0, transition_matrix_concentration=1.0,
                  emission_prior_concentration=1.0) if mle else {}
    m = CategoricalHMM(n, 1, n_symbols, **priors)
    _, props = m.initialize(jax.random.PRNGKey(0))
    score = jax.jit(jax.vmap(m.marginal_log_prob, in_axes=(None, 0)))
    decode = jax.jit(jax.vmap(m.most_likely_states, in_axes=(None, 0)))
    em = jax.jit(lambda params, batch: m.fit_em(params, props, batch, num_iters=1,
                                                verbose=False)[0])
    return jnp, m, score, decode, em


def _dynamax(startprob, transmat, emissionprob, mle=False):
    """jax.numpy, the jitted score, decode and EM iteration, and the parameters as dynamax's."""
    import jax  # noqa: PLC0415

    em = np.asarray(emissionprob, np.float64)
    jnp, m, score, decode, step = _dynamax_model(em.shape[0], em.shape[1], mle)
    params, _ = m.initialize(jax.random.PRNGKey(0), initial_probs=jnp.asarray(startprob),
                             transition_matrix=jnp.asarray(transmat),
                             emission_probs=jnp.asarray(em)[:, None, :])
    return jnp, score, decode, step, params


@register_anchor("score_sequences", "dynamax")
def _score_dynamax():
    import dynamax  # noqa: F401,PLC0415

    def score_sequences(X, lengths, startprob, transmat, emissionprob, *, dtype=None):
        jnp, score, _, _, params = _dynamax(startprob, transmat, emissionprob)
        return _scores_by_length(
            X, lengths, lambda b: np.asarray(score(params, jnp.asarray(b[:, :, None]))))

    return score_sequences


@register_anchor("viterbi", "dynamax")
def _viterbi_dynamax():
    import dynamax  # noqa: F401,PLC0415

    def viterbi(X, lengths, startprob, transmat, emissionprob):
        jnp, _, decode, _, params = _dynamax(startprob, transmat, emissionprob)
        return _paths_by_length(
            X, lengths, lambda b: np.asarray(decode(params, jnp.asarray(b[:, :, None]))),
            startprob, transmat, emissionprob)

    return viterbi


def _pomegranate(startprob, transmat, emissionprob):
    import torch  # noqa: PLC0415  (optional dependency)
    from pomegranate.distributions import Categorical  # noqa: PLC0415
    from pomegranate.hmm import DenseHMM  # noqa: PLC0415

    em = torch.tensor(np.asarray(emissionprob, np.float64))
    n = em.shape[0]
    m = DenseHMM([Categorical(em[i:i + 1]) for i in range(n)],
                 edges=torch.tensor(np.asarray(transmat, np.float64)),
                 starts=torch.tensor(np.asarray(startprob, np.float64)),
                 ends=torch.ones(n, dtype=torch.float64))
    return torch, m.double()


@register_anchor("score_sequences", "pomegranate")
def _score_pomegranate():
    import pomegranate  # noqa: F401,PLC0415

    def score_sequences(X, lengths, startprob, transmat, emissionprob, *, dtype=None):
        torch, m = _pomegranate(startprob, transmat, emissionprob)
        with torch.no_grad():
            return _scores_by_length(
                X, lengths, lambda b: m.log_probability(torch.tensor(b[:, :, None])).numpy())

    return score_sequences


@register_anchor("viterbi", "pomegranate")
def _viterbi_pomegranate():
    import pomegranate  # noqa: F401,PLC0415

    def viterbi(X, lengths, startprob, transmat, emissionprob):
        torch, m = _pomegranate(startprob, transmat, emissionprob)
        with torch.no_grad():
            return _paths_by_length(X, lengths,
                                    lambda b: m.viterbi(torch.tensor(b[:, :, None])).numpy(),
                                    startprob, transmat, emissionprob)

    return viterbi


class _History:
    """``monitor_`` of a peer's fit: ``history`` holds the log-likelihood of the parameters
    each iteration started from (what hmmlearn records), computed when first read, so that a
    timed fit does only the peer's own work."""

    def __init__(self, X, lengths, starts):
        self._X, self._lengths, self._starts, self._history = X, lengths, starts, None

    @property
    def history(self):
        if self._history is None:
            from .api import score_sequences  # noqa: PLC0415  (api imports this module)

            self._history = [float(np.sum(score_sequences(self._X, self._lengths, *p)))
                             for p in self._starts]
        return self._history


class _PeerEstimator:
    """hmmlearn's ``CategoricalHMM`` interface over another library's Baum-Welch, for the
    registry: the constructor arguments the registry's estimators share, ``fit(X, lengths)``
    from the parameters set on it (``init_params=""``), ``startprob_``, ``transmat_``,
    ``emissionprob_`` and ``monitor_.history``.  It runs exactly ``n_iter`` iterations, one
    call of the library each (``tol`` is not supported); ``_prepare`` puts the sequences in the
    library's form once, ``_iteration`` runs one."""

    def __init__(self, n_components, n_features=None, init_params="", n_iter=10, tol=None):
        if init_params:
            raise ValueError(f"{type(self).__name__} fits from the parameters set on it: "
                             f"pass init_params=''")
        self.n_components, self.n_features, self.n_iter = n_components, n_features, n_iter

    def fit(self, X, lengths=None):
        X = np.asarray(X).reshape(-1)
        data = self._prepare(X, lengths)
        params = (np.asarray(self.startprob_, np.float64), np.asarray(self.transmat_, np.float64),
                  np.asarray(self.emissionprob_, np.float64))
        starts = []
        for _ in range(self.n_iter):
            starts.append(params)
            params = self._iteration(data, *params)
        self.startprob_, self.transmat_, self.emissionprob_ = params
        self.monitor_ = _History(X, lengths, starts)
        return self


class _HmmkayHMM(_PeerEstimator):
    def _prepare(self, X, lengths):
        return _sequences(X, lengths)

    def _iteration(self, seqs, sp, tm, em):
        m = _hmmkay(sp, tm, em)
        m.n_iter = 1
        m.fit(seqs)
        return np.asarray(m.pi, np.float64), np.asarray(m.A, np.float64), np.asarray(m.B, np.float64)


class _DynamaxHMM(_PeerEstimator):
    """dynamax's ``fit_em`` (jitted once per shape) takes a batch of sequences of one length."""

    def _prepare(self, X, lengths):
        groups = _by_length(X, lengths)
        if len(groups) != 1:
            raise ValueError("dynamax fits sequences of one length only")
        return groups[0][1][:, :, None]

    def _iteration(self, batch, sp, tm, em):
        jnp, _, _, step, params = _dynamax(sp, tm, em, mle=True)
        params = step(params, jnp.asarray(batch))
        return (np.asarray(params.initial.probs), np.asarray(params.transitions.transition_matrix),
                np.asarray(params.emissions.probs)[:, 0, :])


@register_anchor("CategoricalHMM", "hmmkay")
def _estimator_hmmkay():
    import hmmkay  # noqa: F401,PLC0415

    return _HmmkayHMM


@register_anchor("CategoricalHMM", "dynamax")
def _estimator_dynamax():
    import dynamax  # noqa: F401,PLC0415

    return _DynamaxHMM


from . import _anchors_gaussian  # noqa: E402,F401  (registers dynamax's and pomegranate's GaussianHMMs)
