"""The Gaussian HMMs of the other libraries a hmmlearn user would weigh against ``GaussianHMM``,
registered as anchors of "GaussianHMM" beside hmmlearn's class (``_anchors``): ``dynamax``'s
``DiagonalGaussianHMM`` and ``GaussianHMM`` (JAX, float64; score, Viterbi and EM jitted once per
shape, each over a ``vmap`` of the sequences of one length) and ``pomegranate``'s ``DenseHMM`` of
``Normal`` distributions (PyTorch, float64, a batch per length; ``ends`` all 1, so a sequence may
end in any state, as in hmmlearn).

Each sits behind the part of hmmlearn's ``GaussianHMM`` interface that the registry's tests and
benchmarks use (``_GaussianPeer``): the constructor's ``n_components``, ``covariance_type``
("diag" or "full"), ``init_params=""`` (parameters set on the object), ``n_iter``;
``startprob_``, ``transmat_``, ``means_`` and ``covars_`` in hmmlearn's compact shapes;
``score``, ``score_sequences``, ``decode`` and, where the library's update can be checked,
``fit``.  Neither library returns the log-probability of a Viterbi path: ``decode`` computes it
in NumPy from the path (``path_logprob``, 0.05-0.2 s per 10^6 frames), as their users must, and
``decode_path`` gives the path alone, which is what the benchmarks time (the peers' fastest
form of the answer, so a ratio against them is a lower bound).

dynamax's M-step is a posterior mode under its conjugate priors (normal-inverse-gamma or
-Wishart on the emissions; the Dirichlet concentrations are set to 1, so the chain's update is
the maximum-likelihood one).  ``expected_update`` gives the parameters one iteration must reach:
dynamax's own emission M-step applied to the sufficient statistics of fasthw6's posteriors,
which checks its E-step against ours.  pomegranate learns end probabilities with the chain, so its
update is not hmmlearn's and it offers no ``fit`` here.
"""
from __future__ import annotations

import functools

import numpy as np

from .._backend import register_anchor

PEER_KINDS = ("diag", "full")


def _groups(X, lengths):
    """[(indices, (k, T, D) float64 array)]: the sequences grouped by length (a view when all
    have one length)."""
    X = np.asarray(X, np.float64)
    lens = np.array([X.shape[0]] if lengths is None else lengths, np.int64)
    if lens.size and (lens == lens[0]).all():
        return [(np.arange(lens.size), X.reshape(lens.size, int(lens[0]), X.shape[1]))]
    starts = np.concatenate([[0], np.cumsum(lens)])
    by = {}
    for i, T in enumerate(lens.tolist()):
        by.setdefault(T, []).append(i)
    return [(np.array(idx), np.stack([X[starts[i]:starts[i] + T] for i in idx]))
            for T, idx in by.items()]


def _frame_logdens(X, states, means, covars, kind):
    """log N(x_t | means[s_t], covars[s_t]) of every frame, float64, in NumPy: diag by gathering
    each frame's state's parameters, full by one triangular solve per state."""
    D = X.shape[1]
    if kind == "diag":
        y = X - np.take(means, states, axis=0)  # np.take: 7x faster than means[states]
        y *= y
        y /= np.take(covars, states, axis=0)
        const = -0.5 * (D * np.log(2 * np.pi) + np.log(covars).sum(axis=1))
        return np.take(const, states) - 0.5 * y.sum(axis=1)
    import scipy.linalg  # noqa: PLC0415  (not at import: fasthw6 loads without scipy.linalg)

    out = np.empty(X.shape[0])
    for k in range(means.shape[0]):
        rows = np.flatnonzero(states == k)
        if rows.size == 0:
            continue
        L = np.linalg.cholesky(covars[k])
        z = scipy.linalg.solve_triangular(L, (np.take(X, rows, axis=0) - means[k]).T, lower=True)
        out[rows] = -0.5 * (D * np.log(2 * np.pi) + (z * z).sum(axis=0)) \
            - np.log(np.diag(L)).sum()
    return out


def path_logprob(X, lengths, states, startprob, transmat, means, covars, kind):
    """Σ over the sequences of log P(path, x), float64, for libraries whose Viterbi gives only the
    path (what hmmlearn's ``decode`` returns beside it)."""
    X = np.asarray(X, np.float64)
    lens = np.array([X.shape[0]] if lengths is None else lengths, np.int64)
    starts = np.concatenate([[0], np.cumsum(lens)[:-1]])[lens > 0]
    N = len(startprob)
    with np.errstate(divide="ignore"):
        lsp, ltm = np.log(startprob), np.log(transmat).ravel()
    # every step (t-1, t) of the concatenation, those that cross into a new sequence zeroed
    steps = np.take(ltm, states[:-1] * N + states[1:])
    steps[starts[1:] - 1] = 0.0
    chain = np.take(lsp, states[starts]).sum() + steps.sum()
    return float(chain + _frame_logdens(X, states, means, covars, kind).sum())


class _GaussianPeer:
    """hmmlearn's ``GaussianHMM`` interface over another library (see the module docstring).
    Subclasses give ``_scores(batch)`` and ``_paths(batch)`` on a (k, T, D) batch, and
    ``_iteration(batch)`` (one EM iteration from the parameters set) where they fit."""

    fits = True

    def __init__(self, n_components=1, covariance_type="diag", init_params="", n_iter=10,
                 tol=None):
        if init_params:
            raise ValueError(f"{type(self).__name__} works from the parameters set on it: "
                             f"pass init_params=''")
        if covariance_type not in PEER_KINDS:
            raise ValueError(f"{type(self).__name__} covers covariance_type 'diag' and 'full', "
                             f"got {covariance_type!r}")
        self.n_components, self.covariance_type, self.n_iter = n_components, covariance_type, n_iter

    @property
    def covars_(self):
        return self._covars_

    @covars_.setter
    def covars_(self, value):
        self._covars_ = np.asarray(value, np.float64)

    def _params(self):
        return (np.asarray(self.startprob_, np.float64), np.asarray(self.transmat_, np.float64),
                np.asarray(self.means_, np.float64), self._covars_)

    def score_sequences(self, X, lengths=None):
        groups = _groups(X, lengths)
        out = np.empty(sum(len(idx) for idx, _ in groups))
        for idx, batch in groups:
            out[idx] = self._scores(batch)
        return out

    def score(self, X, lengths=None):
        return float(self.score_sequences(X, lengths).sum())

    def decode_path(self, X, lengths=None):
        """The Viterbi states of every frame (int64), all the library computes."""
        groups = _groups(X, lengths)
        if len(groups) == 1:
            return np.asarray(self._paths(groups[0][1]), np.int64).ravel()
        paths = [None] * sum(len(idx) for idx, _ in groups)
        for idx, batch in groups:
            for i, p in zip(idx, np.asarray(self._paths(batch))):
                paths[i] = p
        return np.concatenate(paths).astype(np.int64)

    def decode(self, X, lengths=None):
        """hmmlearn's (Σ log P(path, x), states): ``decode_path``, then the paths'
        log-probability in NumPy (``path_logprob``)."""
        states = self.decode_path(X, lengths)
        return path_logprob(X, lengths, states, *self._params(), self.covariance_type), states

    def fit(self, X, lengths=None):
        if not self.fits:
            raise NotImplementedError(f"{type(self).__name__} has no fit (see "
                                      f"fasthw6.hmm._anchors_gaussian)")
        groups = _groups(X, lengths)
        if len(groups) != 1:
            raise ValueError(f"{type(self).__name__} fits sequences of one length only")
        for _ in range(self.n_iter):
            self._iteration(groups[0][1])
        return self


# ------------------------------------------------------------------------------------ dynamax
@functools.lru_cache(maxsize=None)
def _dynamax_model(kind, n, D):
    """A dynamax Gaussian HMM of n states over D features, its props and its score, Viterbi and
    EM iteration, jitted once (parameters are arguments: a new model of the same shape does not
    compile again, so JIT warm-up stays out of a timed call, as for numba)."""
    import jax  # noqa: PLC0415  (optional dependency)

    jax.config.update("jax_enable_x64", True)
    from dynamax.hidden_markov_model import DiagonalGaussianHMM, GaussianHMM  # noqa: PLC0415

    cls = DiagonalGaussianHMM if kind == "diag" else GaussianHMM
    m = cls(n, D, initial_probs_concentration=1.0, transition_matrix_concentration=1.0)
    _, props = m.initialize(jax.random.PRNGKey(0))
    score = jax.jit(jax.vmap(m.marginal_log_prob, in_axes=(None, 0)))
    decode = jax.jit(jax.vmap(m.most_likely_states, in_axes=(None, 0)))
    em = jax.jit(lambda params, batch: m.fit_em(params, props, batch, num_iters=1,
                                                verbose=False)[0])
    return m, props, score, decode, em


class DynamaxGaussianHMM(_GaussianPeer):
    """dynamax's ``DiagonalGaussianHMM`` ("diag") or ``GaussianHMM`` ("full")."""

    def _model(self):
        import jax  # noqa: PLC0415
        import jax.numpy as jnp  # noqa: PLC0415

        sp, tm, means, cv = self._params()
        n, D = means.shape
        kind = self.covariance_type
        m, props, score, decode, em = _dynamax_model(kind, n, D)
        emission = (dict(emission_scale_diags=jnp.sqrt(jnp.asarray(cv))) if kind == "diag" else
                    dict(emission_covariances=jnp.asarray(cv)))
        params, _ = m.initialize(jax.random.PRNGKey(0), initial_probs=jnp.asarray(sp),
                                 transition_matrix=jnp.asarray(tm),
                                 emission_means=jnp.asarray(means), **emission)
        return jnp, m, props, params, score, decode, em

    def _scores(self, batch):
        jnp, _, _, params, score, _, _ = self._model()
        return np.asarray(score(params, jnp.asarray(batch)))

    def _paths(self, batch):
        jnp, _, _, params, _, decode, _ = self._model()
        return np.asarray(decode(params, jnp.asarray(batch)))

    def _iteration(self, batch):
        jnp, _, _, params, _, _, em = self._model()
        self._set(em(params, jnp.asarray(batch)))

    def _set(self, params):
        self.startprob_ = np.asarray(params.initial.probs, np.float64)
        self.transmat_ = np.asarray(params.transitions.transition_matrix, np.float64)
        self.means_ = np.asarray(params.emissions.means, np.float64)
        self._covars_ = (np.asarray(params.emissions.scale_diags, np.float64) ** 2
                         if self.covariance_type == "diag" else
                         np.asarray(params.emissions.covs, np.float64))

    @classmethod
    def expected_update(cls, X, lengths, startprob, transmat, means, covars, kind):
        """(startprob, transmat, means, covars) after one EM iteration from the given
        parameters, as dynamax must compute them: its emission M-step on the sufficient
        statistics (Σγ, Σγx, Σγx² or Σγxxᵀ per state) of fasthw6's posteriors, and the chain's
        maximum-likelihood update from fasthw6's E-step (Dirichlet concentrations 1)."""
        from .gaussian import GaussianHMM  # noqa: PLC0415  (gaussian imports the registry)

        X = np.asarray(X, np.float64)
        ours = GaussianHMM(len(startprob), kind, init_params="", params="st", n_iter=1,
                           tol=-np.inf, backend="cython")
        ours.startprob_, ours.transmat_, ours.means_, ours.covars_ = (startprob, transmat,
                                                                      means, covars)
        gamma = ours.predict_proba(X, lengths)
        ours.fit(X, lengths)
        sums = dict(sum_w=gamma.sum(axis=0), sum_x=gamma.T @ X)
        if kind == "diag":
            sums["sum_xsq"] = gamma.T @ (X * X)
        else:
            sums["sum_xxT"] = np.stack([(X * g[:, None]).T @ X for g in gamma.T])
        peer = cls(len(startprob), kind, init_params="")
        peer.startprob_, peer.transmat_, peer.means_, peer.covars_ = (startprob, transmat,
                                                                      means, covars)
        jnp, m, props, params, _, _, _ = peer._model()
        stats = {k: jnp.asarray(v)[None] for k, v in sums.items()}  # a batch of one
        emissions, _ = m.emission_component.m_step(params.emissions, props.emissions, stats, None)
        peer._set(params._replace(emissions=emissions))
        return ours.startprob_, ours.transmat_, peer.means_, peer._covars_


# -------------------------------------------------------------------------------- pomegranate
class PomegranateGaussianHMM(_GaussianPeer):
    """pomegranate's ``DenseHMM`` of ``Normal`` distributions, float64."""

    fits = False

    def _model(self):
        import torch  # noqa: PLC0415  (optional dependency)
        from pomegranate.distributions import Normal  # noqa: PLC0415
        from pomegranate.hmm import DenseHMM  # noqa: PLC0415

        sp, tm, means, cv = self._params()
        n = means.shape[0]
        dists = [Normal(torch.tensor(means[k]), torch.tensor(cv[k]),
                        covariance_type=self.covariance_type) for k in range(n)]
        m = DenseHMM(dists, edges=torch.tensor(tm), starts=torch.tensor(sp),
                     ends=torch.ones(n, dtype=torch.float64))
        return torch, m.double()

    def _scores(self, batch):
        torch, m = self._model()
        with torch.no_grad():
            return m.log_probability(torch.from_numpy(batch)).numpy()

    def _paths(self, batch):
        torch, m = self._model()
        with torch.no_grad():
            return m.viterbi(torch.from_numpy(batch)).numpy()


@register_anchor("GaussianHMM", "dynamax")
def _gaussian_dynamax():
    import dynamax  # noqa: F401,PLC0415

    return DynamaxGaussianHMM


@register_anchor("GaussianHMM", "pomegranate")
def _gaussian_pomegranate():
    import pomegranate  # noqa: F401,PLC0415

    return PomegranateGaussianHMM
