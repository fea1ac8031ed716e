"""Loss functions with their gradients: each returns ``(loss, grad)``.

``grad`` is the gradient of the returned loss with respect to the first argument (of the sum of
the returned array when ``reduction="none"``), in that argument's dtype; scalar losses are
Python floats accumulated in float64.  Reductions: ``"mean"`` over every element, ``"sum"``,
``"batchmean"`` (the sum divided by the batch size N, axis 0: per-sample losses summed over
features and averaged over samples, as in the VAE objective) and ``"none"``.
"""
from __future__ import annotations

import numpy as np

from .._validate import as_float_array


def expit(x):
    """scipy.special.expit (1 / (1 + exp(-x)) without overflow), imported at the first call:
    scipy.special takes longer to import than the rest of fasthw6."""
    from scipy.special import expit as f

    return f(x)

__all__ = ["softmax_cross_entropy", "mse_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits"]

_REDUCTIONS = ("mean", "sum", "batchmean", "none")


def _reduction(reduction, allowed=_REDUCTIONS):
    if reduction not in allowed:
        raise ValueError(f"reduction must be one of {allowed}, got {reduction!r}")
    return reduction


def _pair(x, target, xname, tname):
    x = as_float_array(x, xname)
    if x.ndim == 0 or x.size == 0:
        raise ValueError(f"{xname} must be a non-empty array, got shape {x.shape}")
    t = as_float_array(target, tname, dtype=x.dtype)
    if t.shape != x.shape:
        raise ValueError(f"{tname} must have the shape of {xname}, {x.shape}, got {t.shape}")
    return x, t


def _reduce(elem, grad, reduction, n_batch):
    """Reduce elementwise losses; scale grad (in place) to match."""
    if reduction == "none":
        return elem, grad
    total = float(np.sum(elem, dtype=np.float64))
    if reduction == "sum":
        return total, grad
    div = elem.size if reduction == "mean" else n_batch
    grad *= grad.dtype.type(1.0 / div)
    return total / div, grad


def softmax_cross_entropy(logits, labels, *, reduction="mean"):
    """Cross-entropy of softmax(logits) against integer class labels, and its gradient.

    Computed from log-softmax with the row maximum subtracted, so no exp overflows and no log
    of 0 occurs; the gradient is softmax(logits) - onehot(labels), scaled by the reduction.

    Parameters
    ----------
    logits : array_like, shape (N, C)
    labels : array_like of int, shape (N,), values in [0, C)
    reduction : {"mean", "sum", "none"}
        "mean" averages over the N samples (as ``torch.nn.functional.cross_entropy``).

    Returns
    -------
    loss : float, or ndarray (N,) for "none"
    grad : ndarray (N, C), dtype of logits

    Raises
    ------
    TypeError
        Labels that are not integers.
    ValueError
        Wrong shapes, labels out of range, NaN/inf logits.

    Examples
    --------
    >>> loss, g = softmax_cross_entropy(np.array([[0.0, 0.0], [1000.0, 0.0]]), [0, 0])
    >>> round(loss, 6), g.round(3).tolist()
    (0.346574, [[-0.25, 0.25], [0.0, 0.0]])
    """
    reduction = _reduction(reduction, ("mean", "sum", "none"))
    z = as_float_array(logits, "logits", ndim=2)
    N, C = z.shape
    if N == 0 or C == 0:
        raise ValueError(f"logits must be non-empty, got shape {z.shape}")
    y = np.asarray(labels)
    if y.dtype.kind not in "iu":
        raise TypeError(f"labels must hold integer class indices, got dtype {y.dtype} "
                        f"(use labels.astype(int))")
    if y.shape != (N,):
        raise ValueError(f"labels must have shape ({N},) (one per row of logits), got {y.shape}")
    if N and (y.min() < 0 or y.max() >= C):
        bad = int(y[(y < 0) | (y >= C)][0])
        raise ValueError(f"labels must lie in [0, {C}) for {C} classes, found {bad}")
    rows = np.arange(N)
    shifted = z - z.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=1, keepdims=True)
    loss = np.log(s[:, 0].astype(np.float64)) - shifted[rows, y].astype(np.float64)
    grad = e / s
    grad[rows, y] -= 1
    if reduction == "none":
        return loss, grad
    return _reduce(loss, grad, "batchmean" if reduction == "mean" else "sum", N)


def mse_loss(pred, target, *, reduction="mean"):
    """Squared error (pred - target)^2 and its gradient 2 (pred - target), reduced.

    Examples
    --------
    >>> loss, g = mse_loss(np.array([1.0, 3.0]), np.array([0.0, 0.0]))
    >>> loss, g.tolist()
    (5.0, [1.0, 3.0])
    """
    reduction = _reduction(reduction)
    p, t = _pair(pred, target, "pred", "target")
    d = p - t
    return _reduce(d * d, 2 * d, reduction, p.shape[0])


def _check_unit(a, name):
    if not ((a >= 0).all() and (a <= 1).all()):
        raise ValueError(f"{name} must lie in [0, 1], found values in [{a.min()}, {a.max()}] "
                         f"(scale pixels to [0, 1], e.g. X / 16 for load_digits)")


def binary_cross_entropy(probs, target, *, reduction="mean"):
    """-(t log p + (1 - t) log(1 - p)) on probabilities, as ``torch``'s (each log clamped at -100).

    Prefer :func:`binary_cross_entropy_with_logits` when the probabilities come from a sigmoid:
    once p rounds to 0 or 1 the loss saturates here and the gradient (p - t) / (p (1 - p)) is
    clamped, while the logit form stays exact.

    Parameters
    ----------
    probs : array_like, values in [0, 1]
    target : array_like, same shape, values in [0, 1]
    reduction : {"mean", "sum", "batchmean", "none"}

    Returns
    -------
    loss : float, or ndarray for "none"
    grad : ndarray, dtype of probs

    Examples
    --------
    >>> loss, g = binary_cross_entropy(np.array([0.5, 0.5]), np.array([1.0, 0.0]))
    >>> round(loss, 6), g.tolist()
    (0.693147, [-1.0, 1.0])
    """
    reduction = _reduction(reduction)
    p, t = _pair(probs, target, "probs", "target")
    _check_unit(p, "probs")
    _check_unit(t, "target")
    with np.errstate(divide="ignore"):
        logp = np.maximum(np.log(p), -100)
        log1mp = np.maximum(np.log1p(-p), -100)
    elem = -(t * logp + (1 - t) * log1mp)
    # torch's backward clamps the denominator the same way
    grad = (p - t) / np.maximum(p * (1 - p), p.dtype.type(1e-12))
    return _reduce(elem, grad, reduction, p.shape[0])


def binary_cross_entropy_with_logits(logits, target, *, reduction="mean"):
    """Binary cross-entropy of sigmoid(logits) against targets in [0, 1], computed from logits.

    Uses max(x, 0) - x t + log(1 + exp(-|x|)), exact for any finite x (no log of 0, no
    overflow); the gradient is sigmoid(x) - t.

    Parameters
    ----------
    logits : array_like
    target : array_like, same shape, values in [0, 1]
    reduction : {"mean", "sum", "batchmean", "none"}

    Returns
    -------
    loss : float, or ndarray for "none"
    grad : ndarray, dtype of logits

    Examples
    --------
    >>> loss, g = binary_cross_entropy_with_logits(np.array([0.0, 800.0]), np.array([1.0, 1.0]))
    >>> round(loss, 6), g.tolist()
    (0.346574, [-0.25, 0.0])
    """
    reduction = _reduction(reduction)
    x, t = _pair(logits, target, "logits", "target")
    _check_unit(t, "target")
    elem = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
    grad = expit(x) - t
    return _reduce(elem, grad, reduction, x.shape[0])
