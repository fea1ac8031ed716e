"""Batch normalisation (question 1) and the small layer library built around it.

Kernels: :func:`batchnorm_forward`, :func:`batchnorm_backward`.  Layers (:mod:`.layers`):
``Linear``, ``BatchNorm``, ``ReLU``, ``Sigmoid``, ``Sequential``, ``MLP``; optimizers
(:mod:`.optim`): ``SGD``, ``Adam``; losses with gradients (:mod:`.losses`).
"""
from .api import BatchNormCache, batchnorm_backward, batchnorm_forward, batchnorm_forward_backward
from .layers import MLP, BatchNorm, Layer, Linear, ReLU, Sequential, Sigmoid
from .losses import (binary_cross_entropy, binary_cross_entropy_with_logits, mse_loss,
                     softmax_cross_entropy)
from .optim import SGD, Adam, Optimizer

__all__ = ["BatchNormCache", "batchnorm_backward", "batchnorm_forward", "batchnorm_forward_backward",
           "Layer", "Linear", "BatchNorm", "ReLU", "Sigmoid", "Sequential", "MLP",
           "Optimizer", "SGD", "Adam",
           "softmax_cross_entropy", "mse_loss", "binary_cross_entropy",
           "binary_cross_entropy_with_logits"]
