"""fasthw6: fast, correct compiled kernels for batch normalization, VAE losses, the hard-margin
SVM, discrete hidden Markov models and transposed convolution.

Each system lives in its own subpackage (``fasthw6.conv``, ``fasthw6.hmm``, ``fasthw6.nn``,
``fasthw6.vae``, ``fasthw6.svm``) with numba, Cython and NumPy-reference kernels behind one
dispatch point (:mod:`fasthw6._backend`).
"""
from ._backend import available_backends, get_backend, set_backend, single_threaded, use_backend
from ._jit import CompileWarning, cache_dir, jit_status
from .conv import conv2d, conv_transpose2d, relu, subpixel_conv2d, zero_interpolate
from .hmm import (GMMHMM, CategoricalHMM, GaussianHMM, MultinomialHMM, PoissonHMM, predict_model,
                  score_models)
from .nn import (MLP, SGD, Adam, BatchNorm, Linear, ReLU, Sequential, Sigmoid, batchnorm_backward,
                 batchnorm_forward)
from .svm import HardMarginSVC, NotSeparableError
from .vae import (VAE, kl_divergence, kl_divergence_grad, latent_backward, latent_forward,
                  reparameterize, reparameterize_backward)

__version__ = "0.1.0"

__all__ = [
    "available_backends",
    "get_backend",
    "set_backend",
    "use_backend",
    "single_threaded",
    "cache_dir",
    "CompileWarning",
    "jit_status",
    "conv2d",
    "conv_transpose2d",
    "relu",
    "subpixel_conv2d",
    "zero_interpolate",
    "CategoricalHMM",
    "GaussianHMM",
    "GMMHMM",
    "PoissonHMM",
    "MultinomialHMM",
    "score_models",
    "predict_model",
    "batchnorm_forward",
    "batchnorm_backward",
    "Linear",
    "BatchNorm",
    "ReLU",
    "Sigmoid",
    "Sequential",
    "MLP",
    "SGD",
    "Adam",
    "HardMarginSVC",
    "NotSeparableError",
    "kl_divergence",
    "kl_divergence_grad",
    "reparameterize",
    "reparameterize_backward",
    "latent_forward",
    "latent_backward",
    "VAE",
]


def __getattr__(name):
    """``fasthw6.distributed`` on first use (it imports Dask, an optional extra)."""
    if name == "distributed":
        import importlib

        return importlib.import_module(".distributed", __name__)
    raise AttributeError(f"module 'fasthw6' has no attribute {name!r}")
