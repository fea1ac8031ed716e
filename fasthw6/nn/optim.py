"""Optimizers that update parameter arrays in place from gradient arrays written by backward.

Each takes a model (anything with ``params()`` and ``grads()``, e.g. a
:class:`~fasthw6.nn.Sequential`) or an explicit list of ``(param, grad)`` pairs, keeps
references to both, and on :meth:`step` reads the gradients the last backward pass wrote.  The
update rules are torch.optim's (same order of operations), so the same gradients give the same
parameters.  State arrays have the parameters' dtype.
"""
from __future__ import annotations

import numpy as np

from .layers import _real

__all__ = ["Optimizer", "SGD", "Adam"]


def _pairs(model):
    if hasattr(model, "params") and hasattr(model, "grads"):
        ps, gs = list(model.params()), list(model.grads())
        if len(ps) != len(gs):
            raise ValueError(f"model.params() gives {len(ps)} arrays but model.grads() {len(gs)}")
        pairs = list(zip(ps, gs))
    else:
        try:
            pairs = [tuple(pg) for pg in model]
        except TypeError:
            raise TypeError(f"expected a model with params()/grads() or a list of (param, grad) "
                            f"pairs, got {type(model).__name__}") from None
    if not pairs:
        raise ValueError("the optimizer got no parameters")
    seen = set()
    for i, pg in enumerate(pairs):
        if len(pg) != 2:
            raise ValueError(f"entry {i} must be a (param, grad) pair, got {len(pg)} items")
        p, g = pg
        for a, name in ((p, "param"), (g, "grad")):
            if not isinstance(a, np.ndarray) or a.dtype not in (np.float32, np.float64):
                what = type(a).__name__ + (f" {a.dtype}" if isinstance(a, np.ndarray) else "")
                raise TypeError(f"{name} {i} must be a float32/float64 ndarray (updated or read "
                                f"in place), got {what}")
        if g.shape != p.shape or g.dtype != p.dtype:
            raise ValueError(f"grad {i} must match its param: param {p.shape} {p.dtype}, grad "
                             f"{g.shape} {g.dtype}")
        if not p.flags.writeable:
            raise ValueError(f"param {i} must be writeable (it is updated in place)")
        if id(p) in seen:
            raise ValueError(f"param {i} appears more than once")
        seen.add(id(p))
    return pairs


class Optimizer:
    """Base class: holds the (param, grad) pairs; subclasses implement :meth:`step`.

    Examples
    --------
    >>> p, g = np.ones(2), np.full(2, 0.5)
    >>> SGD([(p, g)], lr=0.1).step()
    >>> p.tolist()
    [0.95, 0.95]
    """

    def __init__(self, model):
        self.pairs = _pairs(model)
        self.steps = 0

    def step(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_grads(self):
        """ValueError before any parameter changes when a gradient holds NaN/inf.

        g . g (one BLAS read of g, about a quarter of a plain SGD step, a few percent of Adam's)
        is non-finite when g holds a NaN/inf; an overflow of the dot product itself is told
        apart by an exact check of that one array.
        """
        for i, (_, g) in enumerate(self.pairs):
            gf = g.reshape(-1)
            with np.errstate(over="ignore", invalid="ignore"):  # the overflow is what is tested
                gg = np.dot(gf, gf)
            if not np.isfinite(gg) and not np.isfinite(g).all():
                j = int(np.argmin(np.isfinite(gf)))
                raise ValueError(f"grad {i} holds {gf[j]} at flat index {j}: the step would make "
                                 f"param {i} non-finite (no parameter was updated)")


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and weight decay (torch.optim.SGD).

    g = grad + weight_decay * p; with momentum, b = g at the first step, then
    b = momentum * b + g; p -= lr * b (or lr * g without momentum).

    Parameters
    ----------
    model : object with params()/grads(), or list of (param, grad) pairs
    lr : float > 0
    momentum : float in [0, 1)
    weight_decay : float >= 0

    Examples
    --------
    >>> from fasthw6.nn import MLP, softmax_cross_entropy
    >>> net = MLP([4, 8, 3], rng=0)
    >>> opt = SGD(net, lr=0.1, momentum=0.9)
    >>> x, y = np.random.default_rng(0).standard_normal((16, 4)), np.arange(16) % 3
    >>> loss, g = softmax_cross_entropy(net.forward(x), y)
    >>> _ = net.backward(g); opt.step()
    >>> softmax_cross_entropy(net.forward(x), y)[0] < loss
    True
    """

    def __init__(self, model, lr=0.01, momentum=0.0, weight_decay=0.0):
        super().__init__(model)
        self.lr = _real(lr, "lr", 0.0, lo_open=True)
        self.momentum = _real(momentum, "momentum", 0.0, 1.0, hi_open=True)
        self.weight_decay = _real(weight_decay, "weight_decay", 0.0)
        self._buf = [None] * len(self.pairs) if self.momentum else None

    def step(self):
        """One update of every parameter from its current gradient (ValueError, and no update,
        when a gradient holds NaN/inf)."""
        self._check_grads()
        for i, (p, g) in enumerate(self.pairs):
            d = g + p.dtype.type(self.weight_decay) * p if self.weight_decay else g
            if self._buf is not None:
                buf = self._buf[i]
                if buf is None:
                    self._buf[i] = buf = d.copy()
                else:
                    buf *= p.dtype.type(self.momentum)
                    buf += d
                d = buf
            p -= p.dtype.type(self.lr) * d
        self.steps += 1


class Adam(Optimizer):
    """Adam (Kingma and Ba), as torch.optim.Adam with amsgrad off.

    m = beta1 m + (1 - beta1) g, v = beta2 v + (1 - beta2) g^2,
    p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).

    Parameters
    ----------
    model : object with params()/grads(), or list of (param, grad) pairs
    lr : float > 0
    betas : (float, float), each in [0, 1)
    eps : float > 0
    weight_decay : float >= 0
        L2 penalty added to the gradient (not AdamW's decoupled decay).

    Examples
    --------
    >>> p, g = np.zeros(2), np.array([1.0, -3.0])
    >>> Adam([(p, g)], lr=0.1).step()
    >>> p.round(6).tolist()
    [-0.1, 0.1]
    """

    def __init__(self, model, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(model)
        self.lr = _real(lr, "lr", 0.0, lo_open=True)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair of floats, got {betas!r}")
        self.betas = (_real(betas[0], "betas[0]", 0.0, 1.0, hi_open=True),
                      _real(betas[1], "betas[1]", 0.0, 1.0, hi_open=True))
        self.eps = _real(eps, "eps", 0.0, lo_open=True)
        self.weight_decay = _real(weight_decay, "weight_decay", 0.0)
        self._m = [np.zeros_like(p) for p, _ in self.pairs]
        self._v = [np.zeros_like(p) for p, _ in self.pairs]

    def step(self):
        """One update of every parameter from its current gradient (ValueError, and no update,
        when a gradient holds NaN/inf)."""
        self._check_grads()
        self.steps += 1
        b1, b2 = self.betas
        bc1 = 1.0 - b1 ** self.steps
        bc2_sqrt = (1.0 - b2 ** self.steps) ** 0.5
        for (p, g), m, v in zip(self.pairs, self._m, self._v):
            f = p.dtype.type
            if self.weight_decay:
                g = g + f(self.weight_decay) * p
            m += f(1.0 - b1) * (g - m)
            v *= f(b2)
            v += f(1.0 - b2) * g * g
            denom = np.sqrt(v)
            denom /= f(bc2_sqrt)
            denom += f(self.eps)
            p -= f(self.lr / bc1) * m / denom
