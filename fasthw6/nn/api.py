"""Public batch-normalisation functions: validation, running statistics and dispatch.

Semantics follow ``torch.nn.functional.batch_norm``: in training mode the batch is normalised
with its biased variance and the running statistics (when given) are updated in place with the
unbiased one; with ``training=False`` the running statistics normalise.  The kernels in
``_numba`` / ``_cython`` / ``reference`` check nothing: everything is checked here.

Large outputs (y, dx; 4 MiB and up) are views of blocks that ``_outputs`` hands out again once
the caller has dropped every array using them (see ``_OutputRecycler``): their ``base`` is that
block.
"""
from __future__ import annotations

import numbers
import sys
import threading
from dataclasses import dataclass

import numpy as np

from .._backend import get_kernel, kernel_threads
from .._validate import as_float_array
from . import _anchors  # noqa: F401  (registers torch as the anchor of these functions)

# Rows per statistics chunk of the (N, D) forward kernel (sums about one of its own rows, merged
# by Chan's update): larger chunks merge less often (docs/design/batchnorm.md).
_STATS_ROWS = 256


# Columns below which a slice of an (N, D) batch is not worth a thread of its own.
_MIN_SLICE = 256


def _slices(backend, d: int) -> int:
    """Column slices of an (N, D) kernel: one per thread, none narrower than ``_MIN_SLICE``."""
    return int(max(1, min(kernel_threads("nn", backend), d // _MIN_SLICE)))


# Bytes of one channel's dy, x and dx above which the 4-D backward streams dx past the caches
# (ordinary dx stores then evict the dy and x the sweep re-reads; docs/design/batchnorm.md).
_STREAM_BUDGET = 768 << 10


# Output bytes from which the forward writes y, and the (N, D) backward dx, with streaming
# stores: smaller outputs stay in cache for the next pass (docs/design/batchnorm.md).
_STREAM_OUTPUT = 16 << 20


def _stream_y(x) -> bool:
    """Whether the forward's y (and the (N, D) backward's dx) is written with streaming stores
    (outputs too big to stay cached)."""
    return bool(x.nbytes >= _STREAM_OUTPUT)


def _stream_dx(x) -> bool:
    """Whether the 4-D backward writes dx with streaming stores: when one channel's dy, x and dx
    together outgrow what L2 keeps for the dx sweep, ordinary dx stores evict the dy and x that
    sweep re-reads."""
    return bool(3 * (x.size // x.shape[1]) * x.itemsize > _STREAM_BUDGET)


class _OutputRecycler:
    """Memory of large outputs (y, dx), handed out again once nothing uses it any more.

    glibc gives a large freed block at the top of the heap back to the system (its trim threshold
    follows the largest block freed so far), so a caller that drops y and dx before the next call
    can get fresh pages every call, which the kernel zeroes on first touch: about 1000 page faults
    per float32 forward+backward at (1024, 4096) and (32, 64, 56, 56) in the benchmark process,
    measured 2-8 ms a call (as much as the kernels).  Whether it happens depends on what else the
    process allocated.  A block here is a uint8 array; an output is a view of it, so the block's
    reference count says whether any array (or view of one) still uses it.
    """

    def __init__(self, min_bytes: int, max_blocks: int):
        self.min_bytes = min_bytes
        self.max_blocks = max_blocks
        self._blocks: list[np.ndarray] = []
        self._lock = threading.Lock()
        self._free_refs = self._count_refs([np.empty(1, np.uint8)], 0)

    @staticmethod
    def _count_refs(blocks, i):
        # what the interpreter reports for blocks[i] held by the list alone (and this frame):
        # measured once on a probe rather than assumed, since interpreters count locals
        # differently
        blk = blocks[i]
        return sys.getrefcount(blk)

    def empty(self, shape, dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        if nbytes < self.min_bytes:
            return np.empty(shape, dtype)
        with self._lock:
            blocks = self._blocks
            for i in range(len(blocks)):
                # referenced by the list alone: no array uses it
                if blocks[i].nbytes == nbytes and self._count_refs(blocks, i) == self._free_refs:
                    blk = blocks.pop(i)
                    blocks.append(blk)
                    break
            else:
                blk = np.empty(nbytes, np.uint8)
                blocks.append(blk)
                if len(blocks) > self.max_blocks:
                    del blocks[0]  # no longer recycled; its users keep it alive
            return blk.view(dtype).reshape(shape)

    def clear(self) -> None:
        """Forget every block (memory in use stays with its users, the rest is freed)."""
        with self._lock:
            self._blocks.clear()


_outputs = _OutputRecycler(min_bytes=4 << 20, max_blocks=8)


@dataclass
class BatchNormCache:
    """What :func:`batchnorm_backward` needs from the forward pass.

    ``x`` is the (contiguous) input, ``mean``/``var`` the float64 statistics that normalised it
    (batch ones in training mode, running ones otherwise), ``eps`` and ``training`` as given.

    ``x`` is the caller's array itself when it was already C-contiguous and of the working
    dtype: it is not copied (a copy, or a checksum to detect changes, would cost a pass over x,
    a third of the forward's reads).  Do not modify x in place between the forward and the
    backward pass: the gradients would silently be those of the modified x (torch raises on
    this; here it is the caller's contract).
    """

    x: np.ndarray
    gamma: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float
    training: bool
    shape: tuple
    dtype: np.dtype
    backend: str | None


def _view(x):
    """(N, D) stays 2-D; (N, C, H, W) (or any (N, C, ...)) becomes (N, C, L)."""
    if x.ndim == 2:
        return x
    return x.reshape(x.shape[0], x.shape[1], -1)


def _float(v, name, lo=None, hi=None):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__} {v!r}")
    v = float(v)
    if not np.isfinite(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ValueError(f"{name} must be a finite number in [{lo}, {hi}], got {v}")
    return v


def _param(p, name, C, default):
    if p is None:
        return np.full(C, default, dtype=np.float64)
    p = as_float_array(p, name, dtype=np.float64, ndim=1)
    if p.shape[0] != C:
        raise ValueError(f"{name} must have {C} entries (one per channel), got {p.shape[0]}")
    return p


def _running(r, name, C, training):
    if r is None:
        return None
    if not isinstance(r, np.ndarray) or r.dtype not in (np.float32, np.float64):
        raise TypeError(
            f"{name} must be a float32/float64 ndarray (it is updated in place), got "
            f"{type(r).__name__}{'' if not isinstance(r, np.ndarray) else ' ' + str(r.dtype)}"
        )
    if r.shape != (C,):
        raise ValueError(f"{name} must have shape ({C},), got {r.shape}")
    if training and not r.flags.writeable:
        raise ValueError(f"{name} must be writeable (training mode updates it in place)")
    return r


def batchnorm_forward(x, gamma=None, beta=None, eps=1e-5, training=True, running_mean=None,
                      running_var=None, momentum=0.1, *, backend=None):
    """Batch normalisation forward pass: y = gamma * (x - mean) / sqrt(var + eps) + beta.

    Parameters
    ----------
    x : array_like, shape (N, D) or (N, C, ...), e.g. (N, C, L), (N, C, H, W), (N, C, D, H, W)
        Normalised per feature (2-D) or per channel over N and the trailing axes, as torch's
        ``batch_norm`` for BatchNorm1d/2d/3d input.
        float32 stays float32 (statistics accumulate in float64); integers give float64.
    gamma, beta : array_like, shape (C,), optional
        Learned scale and shift; default ones and zeros.
    eps : float
        Added to the variance, as in torch.
    training : bool
        True: normalise with the batch mean and biased batch variance (float64, stable: two
        passes per channel for 4-D x, shifted sums in row chunks merged by Chan's update for
        2-D x, never E[x**2] - E[x]**2), and
        update ``running_mean``/``running_var`` in place if given (the variance unbiased, with
        factor N/(N-1)).  False: normalise with the running statistics, which are then required.
    running_mean, running_var : ndarray, shape (C,), optional
        float32 or float64 arrays updated in place (``(1 - momentum) * r + momentum * batch``).
    momentum : float in [0, 1]
    backend : str, optional
        ``"numba"``, ``"cython"``, ``"numpy"`` or ``"auto"``.

    Returns
    -------
    y : ndarray, same shape and dtype as x
    cache : BatchNormCache
        Pass it to :func:`batchnorm_backward`.  It holds x without a copy: do not modify x in
        place before the backward pass (see :class:`BatchNormCache`).

    Raises
    ------
    TypeError
        Non-numeric input, running statistics that are not float ndarrays.
    ValueError
        Wrong ranks or sizes, NaN/inf, one value per channel in training mode, missing running
        statistics with ``training=False``, eps <= 0 or momentum outside [0, 1].

    Examples
    --------
    >>> y, cache = batchnorm_forward(np.array([[1.0, 10.0], [3.0, 30.0]]))
    >>> np.round(y, 4)
    array([[-1., -1.],
           [ 1.,  1.]])
    """
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"training must be a bool, got {type(training).__name__}")
    # In training mode a NaN/inf anywhere in a channel makes that channel's float64 mean
    # non-finite, so the C statistics are checked after the kernel instead of x before it:
    # one pass over x saved (a third of the forward's reads).
    x = as_float_array(x, "x", finite=not training)
    if x.ndim < 2:
        raise ValueError(f"x must be 2-D (N, D) or (N, C, ...) such as 4-D (N, C, H, W), got "
                         f"{x.ndim}-D with shape {x.shape}")
    if 0 in x.shape:
        raise ValueError(f"x must not be empty, got shape {x.shape}")
    C = x.shape[1]
    gamma = _param(gamma, "gamma", C, 1.0)
    beta = _param(beta, "beta", C, 0.0)
    eps = _float(eps, "eps", lo=0.0)
    if eps == 0.0:
        raise ValueError("eps must be > 0 (a constant channel would divide by zero), got 0.0")
    momentum = _float(momentum, "momentum", 0.0, 1.0)
    running_mean = _running(running_mean, "running_mean", C, training)
    running_var = _running(running_var, "running_var", C, training)
    # C values: checked in both modes, so a NaN cannot enter the running statistics silently
    for r, name in ((running_mean, "running_mean"), (running_var, "running_var")):
        if r is not None and not np.isfinite(r).all():
            raise ValueError(f"{name} must be finite, found NaN or inf at index "
                             f"{int(np.argmin(np.isfinite(r)))}")
    if running_var is not None and (running_var < 0).any():
        raise ValueError(f"running_var must be >= 0, got {running_var[np.argmax(running_var < 0)]} "
                         f"at index {int(np.argmax(running_var < 0))}")
    m = x.size // C
    xv = _view(x)
    y = _outputs.empty(x.shape, x.dtype)
    yv = _view(y)
    if training:
        if m < 2:
            raise ValueError(
                f"batch norm in training mode needs more than 1 value per channel, got x of "
                f"shape {x.shape}"
            )
        mean = np.empty(C)
        var = np.empty(C)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("training=False normalises with the running statistics: pass "
                             "running_mean and running_var")
        mean = running_mean.astype(np.float64)
        var = running_var.astype(np.float64)
    if x.ndim == 2:
        slices = _slices(backend, C)
        get_kernel("nn", "batchnorm_forward_2d", backend)(
            xv, gamma, beta, eps, training, mean, var, yv,
            _STATS_ROWS, slices, _stream_y(x))
    else:
        get_kernel("nn", "batchnorm_forward_4d", backend)(
            xv, gamma, beta, eps, training, mean, var, yv, _stream_y(x))
    if training:
        bad = ~(np.isfinite(mean) & np.isfinite(var))
        if bad.any():
            c = int(np.argmax(bad))
            if np.isfinite(xv[:, c]).all():  # error path only: one channel read
                raise ValueError(
                    f"x is finite but channel {c}'s {'variance' if np.isfinite(mean[c]) else 'mean'}"
                    f" overflows float64: values out of range (max |x| there "
                    f"{float(np.abs(xv[:, c]).max()):.3g}); rescale x")
            raise ValueError(f"x must be finite, found NaN or inf in channel {c}")
        if running_mean is not None:
            running_mean *= 1.0 - momentum
            running_mean += momentum * mean
        if running_var is not None:
            running_var *= 1.0 - momentum
            running_var += momentum * var * (m / (m - 1))
    cache = BatchNormCache(x, gamma, mean, var, eps, bool(training), x.shape, x.dtype, backend)
    return y, cache


def batchnorm_backward(dy, cache, *, backend=None):
    """Gradients of :func:`batchnorm_forward` with respect to x, gamma and beta.

    In training mode the batch statistics depend on x, so
    dx = gamma / sigma * (dy - mean(dy) - xhat * mean(dy * xhat)); one fused pass computes
    sum(dy) and sum(dy * xhat) in float64 per channel, a second writes dx.

    Parameters
    ----------
    dy : array_like, same shape as the forward input
        Gradient of the loss with respect to y.
    cache : BatchNormCache
        The second value returned by :func:`batchnorm_forward`.
    backend : str, optional
        Default: the backend the forward pass used.

    Returns
    -------
    dx : ndarray, shape and dtype of x
    dgamma, dbeta : ndarray, shape (C,), dtype of x

    Raises
    ------
    TypeError
        ``cache`` is not a BatchNormCache.
    ValueError
        ``dy`` has the wrong shape or holds NaN/inf.

    Examples
    --------
    >>> y, cache = batchnorm_forward(np.array([[1.0], [3.0]]))
    >>> dx, dgamma, dbeta = batchnorm_backward(np.array([[1.0], [0.0]]), cache)
    >>> float(dgamma[0]), float(dbeta[0])
    (-0.99999..., 1.0)
    """
    if not isinstance(cache, BatchNormCache):
        raise TypeError(f"cache must be the BatchNormCache returned by batchnorm_forward, got "
                        f"{type(cache).__name__}")
    # sum(dy) per channel is non-finite exactly when dy holds a NaN/inf there: checked after
    dy = as_float_array(dy, "dy", dtype=cache.dtype, finite=False)
    if dy.shape != cache.shape:
        raise ValueError(f"dy must have the shape of x, {cache.shape}, got {dy.shape}")
    backend = cache.backend if backend is None else backend
    C = cache.shape[1]
    dx = _outputs.empty(dy.shape, dy.dtype)
    dgamma = np.empty(C)
    dbeta = np.empty(C)
    x = cache.x
    if x.ndim == 2:
        get_kernel("nn", "batchnorm_backward_2d", backend)(
            dy, x, cache.gamma, cache.mean, cache.var, cache.eps, cache.training, dx, dgamma,
            dbeta, _slices(backend, C), _stream_y(x))
    else:
        get_kernel("nn", "batchnorm_backward_4d", backend)(
            _view(dy), _view(x), cache.gamma, cache.mean, cache.var, cache.eps, cache.training,
            _view(dx), dgamma, dbeta, _stream_dx(x))
    bad = ~np.isfinite(dbeta)
    if bad.any():
        raise ValueError(f"dy must be finite, found NaN or inf in channel {int(np.argmax(bad))}")
    return dx, dgamma.astype(cache.dtype), dbeta.astype(cache.dtype)


def batchnorm_forward_backward(x, gamma, beta, dy, eps=1e-5, *, backend=None):
    """Training-mode forward then backward in one call: ``(y, dx, dgamma, dbeta)``.

    The unit the benchmarks time against torch (``F.batch_norm`` + autograd backward).

    Examples
    --------
    >>> x = np.array([[1.0], [3.0]])
    >>> y, dx, dg, db = batchnorm_forward_backward(x, [1.0], [0.0], np.ones_like(x))
    >>> y.ravel().round(4).tolist(), dx.ravel().tolist()
    ([-1.0, 1.0], [0.0, 0.0])
    """
    y, cache = batchnorm_forward(x, gamma, beta, eps, True, backend=backend)
    dx, dgamma, dbeta = batchnorm_backward(dy, cache)
    return y, dx, dgamma, dbeta
