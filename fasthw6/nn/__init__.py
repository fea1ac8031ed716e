"""Batch normalisation (question 1) and the small layer library built around it."""
from .api import BatchNormCache, batchnorm_backward, batchnorm_forward, batchnorm_forward_backward

__all__ = ["BatchNormCache", "batchnorm_backward", "batchnorm_forward", "batchnorm_forward_backward"]
