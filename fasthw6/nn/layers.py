"""A small layer library around the batch-norm kernels: enough to show what question 1 says.

The design is explicit rather than automatic: every layer's ``forward(x)`` keeps what its
``backward(dy)`` needs, ``backward`` returns dx and writes the parameter gradients *in place*
into arrays allocated once, and ``params()`` / ``grads()`` list those arrays in matching order,
so an optimizer (:mod:`fasthw6.nn.optim`) holds references to both and updates the parameters
in place.  ``backward`` overwrites the gradients (no accumulation, so no ``zero_grad``).

Parameters follow the ``dtype`` a layer is built with (float32 or float64); inputs of another
float dtype are refused rather than silently converted (integers are converted).  Weights are
drawn in float64 and rounded, so the same seed gives the same network in both dtypes.
"""
from __future__ import annotations

import numbers

import numpy as np

from .._backend import resolve_backend
from .._validate import as_float_array, as_int, check_dtype_arg
from .api import batchnorm_backward, batchnorm_forward
from .losses import expit

__all__ = ["Layer", "Linear", "BatchNorm", "ReLU", "Sigmoid", "Sequential", "MLP"]

_INITS = ("he", "xavier")
_ACTIVATIONS = ("relu", "sigmoid")


def _as_input(a, name, owner, dtype, finite=True):
    """``a`` as a C-contiguous float array of ``dtype`` (any float32/float64 when None)."""
    arr = np.asarray(a)
    if dtype is not None and arr.dtype.kind == "f" and arr.dtype != dtype:
        raise TypeError(
            f"{name} of {owner!r} must be {dtype} like its parameters, got {arr.dtype} "
            f"(use {name}.astype(np.{dtype}), or build the layer with dtype=np.{arr.dtype})"
        )
    return as_float_array(arr, f"{name} of {owner!r}", dtype=dtype, finite=finite)


def _real(v, name, lo, hi=None, lo_open=False, hi_open=False):
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(v).__name__} {v!r}")
    v = float(v)
    bad = (not np.isfinite(v) or (v <= lo if lo_open else v < lo)
           or (hi is not None and (v >= hi if hi_open else v > hi)))
    if bad:
        rng = f"{'(' if lo_open else '['}{lo}, {'inf' if hi is None else hi}{')' if hi_open or hi is None else ']'}"
        raise ValueError(f"{name} must be in {rng}, got {v}")
    return v


def _bool(v, name):
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(v).__name__} {v!r}")
    return bool(v)


class Layer:
    """Base class: ``forward``/``backward``, ``params``/``grads``, ``train``/``eval``.

    Subclasses set ``self._cache`` in ``forward`` and read it through :meth:`_saved` in
    ``backward``, which raises a clear error when no forward pass came first.

    Examples
    --------
    >>> layer = ReLU()
    >>> layer.eval().training, layer.train().training
    (False, True)
    """

    def __init__(self):
        self.training = True
        self._cache = None

    def __call__(self, x):
        return self.forward(x)

    def forward(self, x):  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, dy):  # pragma: no cover - abstract
        raise NotImplementedError

    def params(self) -> list:
        """The learned arrays (updated in place by optimizers); empty for parameter-free layers."""
        return []

    def grads(self) -> list:
        """Gradient arrays matching :meth:`params` one for one, written by :meth:`backward`."""
        return []

    def train(self, mode=True):
        """Switch to training mode (``mode=False``: evaluation mode); returns self."""
        self.training = _bool(mode, "mode")
        return self

    def eval(self):
        """Switch to evaluation mode (batch norm then uses its running statistics); returns self."""
        return self.train(False)

    def _saved(self):
        if self._cache is None:
            raise RuntimeError(f"{self!r}: backward called before forward (run forward(x) first)")
        return self._cache

    def _check_dy(self, dy, shape, dtype):
        dy = _as_input(dy, "dy", self, dtype)
        if dy.shape != shape:
            raise ValueError(f"dy of {self!r} must have the shape of the forward output, {shape}, "
                             f"got {dy.shape}")
        return dy


class Linear(Layer):
    """Affine map y = x @ weight + bias, the document's z_j = sum_n x_n w_{n,j} + b_j.

    ``weight`` has shape (in_features, out_features), the document's w_{n,j} (torch stores the
    transpose).

    Parameters
    ----------
    in_features, out_features : int
    bias : bool
        False drops b (as before a batch norm, whose beta takes its place).
    init : {"he", "xavier"}
        "he": normal with std sqrt(2 / in_features), for ReLU networks; "xavier": uniform on
        +-sqrt(6 / (in_features + out_features)), for sigmoid networks.  The bias starts at 0.
    rng : int, numpy.random.Generator or None
        Seed or generator for the initial weights.
    dtype : float32 or float64

    Attributes
    ----------
    weight, bias : ndarray
        Parameters (``bias`` is None when ``bias=False``).
    grad_weight, grad_bias : ndarray
        Their gradients after :meth:`backward`.

    Examples
    --------
    >>> lin = Linear(3, 2, rng=0)
    >>> y = lin.forward(np.ones((4, 3)))
    >>> dx = lin.backward(np.ones_like(y))
    >>> y.shape, dx.shape, lin.grad_weight.shape
    ((4, 2), (4, 3), (3, 2))
    """

    def __init__(self, in_features, out_features, *, bias=True, init="he", rng=None,
                 dtype=np.float64):
        super().__init__()
        self.in_features = as_int(in_features, "in_features", 1)
        self.out_features = as_int(out_features, "out_features", 1)
        self.dtype = check_dtype_arg(dtype)
        if init not in _INITS:
            raise ValueError(f"init must be one of {_INITS}, got {init!r}")
        self.init = init
        gen = np.random.default_rng(rng)
        fi, fo = self.in_features, self.out_features
        if init == "he":
            w = gen.standard_normal((fi, fo)) * np.sqrt(2.0 / fi)
        else:
            lim = np.sqrt(6.0 / (fi + fo))
            w = gen.uniform(-lim, lim, (fi, fo))
        self.weight = np.ascontiguousarray(w, dtype=self.dtype)
        self.grad_weight = np.zeros_like(self.weight)
        has_bias = _bool(bias, "bias")
        self.bias = np.zeros(fo, dtype=self.dtype) if has_bias else None
        self.grad_bias = np.zeros(fo, dtype=self.dtype) if has_bias else None

    def __repr__(self):
        extra = "" if self.bias is not None else ", bias=False"
        return f"Linear({self.in_features}, {self.out_features}{extra})"

    def forward(self, x):
        """y = x @ weight + bias for x of shape (N, in_features)."""
        x = _as_input(x, "x", self, self.dtype)
        if x.ndim != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"x of {self!r} must have shape (N, {self.in_features}), got {x.shape}")
        y = x @ self.weight
        if self.bias is not None:
            y += self.bias
        self._cache = x
        return y

    def backward(self, dy):
        """Store dL/dweight = x.T @ dy and dL/dbias = sum(dy, 0); return dL/dx = dy @ weight.T."""
        x = self._saved()
        dy = self._check_dy(dy, (x.shape[0], self.out_features), self.dtype)
        np.matmul(x.T, dy, out=self.grad_weight)
        if self.bias is not None:
            np.sum(dy, axis=0, out=self.grad_bias)
        return dy @ self.weight.T

    def params(self):
        return [self.weight] if self.bias is None else [self.weight, self.bias]

    def grads(self):
        return [self.grad_weight] if self.bias is None else [self.grad_weight, self.grad_bias]


class BatchNorm(Layer):
    """Batch normalisation with learned gamma, beta and running statistics (question 1).

    Wraps :func:`~fasthw6.nn.batchnorm_forward` / :func:`~fasthw6.nn.batchnorm_backward`, so it
    behaves as ``torch.nn.BatchNorm1d`` on (N, C) input and ``BatchNorm2d`` on (N, C, H, W): in
    training mode it normalises with the batch mean and biased variance and updates the running
    statistics (variance unbiased); in evaluation mode the running statistics normalise.
    gamma and beta are learned by backpropagation, as the document says, not computed.

    Parameters
    ----------
    num_features : int
        C, the size of axis 1.
    eps : float > 0
    momentum : float in [0, 1]
        Running statistics: ``(1 - momentum) * running + momentum * batch``.
    dtype : float32 or float64
    backend : str, optional
        Kernel backend for the batch-norm functions (default: the library's choice).

    Attributes
    ----------
    gamma, beta, running_mean, running_var : ndarray (C,)
    grad_gamma, grad_beta : ndarray (C,)

    Examples
    --------
    >>> bn = BatchNorm(2)
    >>> y = bn.forward(np.array([[1.0, 10.0], [3.0, 30.0]]))
    >>> y.round(4).tolist(), bn.running_mean.tolist()
    ([[-1.0, -1.0], [1.0, 1.0]], [0.2, 2.0])
    """

    def __init__(self, num_features, *, eps=1e-5, momentum=0.1, dtype=np.float64, backend=None):
        super().__init__()
        self.num_features = as_int(num_features, "num_features", 1)
        self.eps = _real(eps, "eps", 0.0, lo_open=True)
        self.momentum = _real(momentum, "momentum", 0.0, 1.0)
        self.dtype = check_dtype_arg(dtype)
        if backend is not None:
            resolve_backend(backend)
        self.backend = backend
        C = self.num_features
        self.gamma = np.ones(C, dtype=self.dtype)
        self.beta = np.zeros(C, dtype=self.dtype)
        self.grad_gamma = np.zeros(C, dtype=self.dtype)
        self.grad_beta = np.zeros(C, dtype=self.dtype)
        self.running_mean = np.zeros(C, dtype=self.dtype)
        self.running_var = np.ones(C, dtype=self.dtype)

    def __repr__(self):
        return f"BatchNorm({self.num_features})"

    def forward(self, x):
        """Normalise x of shape (N, C) per feature or (N, C, H, W) per channel."""
        # batchnorm_forward checks finiteness itself, without a separate pass over x
        x = _as_input(x, "x", self, self.dtype, finite=False)
        C = self.num_features
        if x.ndim not in (2, 4) or x.shape[1] != C:
            raise ValueError(f"x of {self!r} must have shape (N, {C}) or (N, {C}, H, W), got {x.shape}")
        y, cache = batchnorm_forward(x, self.gamma, self.beta, self.eps, self.training,
                                     self.running_mean, self.running_var, self.momentum,
                                     backend=self.backend)
        self._cache = cache
        return y

    def backward(self, dy):
        """Store dL/dgamma and dL/dbeta; return dL/dx (through the batch statistics in training mode)."""
        cache = self._saved()
        dy = self._check_dy(dy, cache.shape, self.dtype)
        dx, dgamma, dbeta = batchnorm_backward(dy, cache)
        self.grad_gamma[...] = dgamma
        self.grad_beta[...] = dbeta
        return dx

    def params(self):
        return [self.gamma, self.beta]

    def grads(self):
        return [self.grad_gamma, self.grad_beta]


class ReLU(Layer):
    """max(x, 0), elementwise; the gradient at 0 is taken as 0 (torch's choice).

    Examples
    --------
    >>> r = ReLU()
    >>> r.forward(np.array([-1.0, 2.0])).tolist(), r.backward(np.array([5.0, 5.0])).tolist()
    ([0.0, 2.0], [0.0, 5.0])
    """

    def __repr__(self):
        return "ReLU()"

    def forward(self, x):
        x = _as_input(x, "x", self, None)
        mask = x > 0
        self._cache = (mask, x.dtype)
        return np.where(mask, x, x.dtype.type(0))

    def backward(self, dy):
        mask, dt = self._saved()
        dy = self._check_dy(dy, mask.shape, dt)
        return np.where(mask, dy, dt.type(0))


class Sigmoid(Layer):
    """1 / (1 + exp(-x)), elementwise, without overflow for large |x| (scipy's expit).

    Examples
    --------
    >>> s = Sigmoid()
    >>> s.forward(np.array([0.0, 1000.0, -1000.0])).tolist(), s.backward(np.ones(3)).tolist()
    ([0.5, 1.0, 0.0], [0.25, 0.0, 0.0])
    """

    def __repr__(self):
        return "Sigmoid()"

    def forward(self, x):
        x = _as_input(x, "x", self, None)
        y = expit(x)
        self._cache = y
        return y

    def backward(self, dy):
        y = self._saved()
        dy = self._check_dy(dy, y.shape, y.dtype)
        return dy * y * (1 - y)


class Sequential(Layer):
    """Layers applied in order; backward runs them in reverse.

    Parameters
    ----------
    *layers : Layer

    Examples
    --------
    >>> net = Sequential(Linear(4, 3, rng=0), BatchNorm(3), ReLU(), Linear(3, 2, rng=1))
    >>> y = net.forward(np.random.default_rng(0).standard_normal((8, 4)))
    >>> dx = net.backward(np.ones_like(y))
    >>> y.shape, dx.shape, len(net.params()) == len(net.grads()) == 6
    ((8, 2), (8, 4), True)
    """

    def __init__(self, *layers):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        if not layers:
            raise ValueError("Sequential needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(f"layer {i} must be a fasthw6.nn Layer, got {type(layer).__name__}")
        self.layers = list(layers)

    def __repr__(self):
        inner = ",\n  ".join(repr(layer) for layer in self.layers)
        return f"{type(self).__name__}(\n  {inner}\n)"

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __iter__(self):
        return iter(self.layers)

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        self._cache = True
        return x

    def backward(self, dy):
        self._saved()
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def params(self):
        return [p for layer in self.layers for p in layer.params()]

    def grads(self):
        return [g for layer in self.layers for g in layer.grads()]

    def train(self, mode=True):
        super().train(mode)
        for layer in self.layers:
            layer.train(mode)
        return self


class MLP(Sequential):
    """Multi-layer perceptron: Linear -> [BatchNorm] -> activation per hidden layer, then Linear.

    With ``batchnorm=True`` each hidden layer is the document's z = xW (+ b), BN(z), f(BN(z)):
    the batch norm sits between the linear map and the activation, and the linear map drops its
    bias (the mean subtraction would remove it; beta takes its place).  The last layer is a
    plain Linear giving logits (pair it with :func:`~fasthw6.nn.softmax_cross_entropy`).
    The weights depend only on ``rng``, ``sizes`` and ``init``, so the same seed gives the same
    initial linear maps with and without batch norm.

    Parameters
    ----------
    sizes : sequence of int
        Input size, hidden sizes..., output size (at least two entries).
    batchnorm : bool
    activation : {"relu", "sigmoid"}
    init : {"he", "xavier"}, optional
        Default "he" for ReLU, "xavier" for sigmoid.
    rng : int, numpy.random.Generator or None
    dtype : float32 or float64
    eps, momentum, backend
        Passed to each :class:`BatchNorm`.

    Examples
    --------
    >>> net = MLP([64, 32, 10], batchnorm=True, rng=0)
    >>> net
    MLP(
      Linear(64, 32, bias=False),
      BatchNorm(32),
      ReLU(),
      Linear(32, 10)
    )
    """

    def __init__(self, sizes, *, batchnorm=False, activation="relu", init=None, rng=None,
                 dtype=np.float64, eps=1e-5, momentum=0.1, backend=None):
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__len__"):
            raise TypeError(f"sizes must be a sequence of ints, got {type(sizes).__name__}")
        sizes = [as_int(s, "sizes entry", 1) for s in sizes]
        if len(sizes) < 2:
            raise ValueError(f"sizes must hold at least an input and an output size, got {sizes}")
        batchnorm = _bool(batchnorm, "batchnorm")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
        init = ("he" if activation == "relu" else "xavier") if init is None else init
        gen = np.random.default_rng(rng)
        act = ReLU if activation == "relu" else Sigmoid
        layers = []
        for fi, fo in zip(sizes[:-2], sizes[1:-1]):
            layers.append(Linear(fi, fo, bias=not batchnorm, init=init, rng=gen, dtype=dtype))
            if batchnorm:
                layers.append(BatchNorm(fo, eps=eps, momentum=momentum, dtype=dtype, backend=backend))
            layers.append(act())
        layers.append(Linear(sizes[-2], sizes[-1], init=init, rng=gen, dtype=dtype))
        super().__init__(*layers)
        self.sizes = sizes
        self.batchnorm = batchnorm
        self.activation = activation
        self.dtype = np.dtype(dtype)
