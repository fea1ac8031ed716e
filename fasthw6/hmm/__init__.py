"""Discrete hidden Markov models (question 4 of the source document): batched, parallel
forward/backward/Viterbi/Baum-Welch kernels and a drop-in ``CategoricalHMM``."""
from .api import (
    CategoricalHMM,
    ConvergenceMonitor,
    NotFittedError,
    check_parameters,
    em_statistics,
    posteriors,
    score_sequences,
    viterbi,
)

__all__ = [
    "CategoricalHMM",
    "ConvergenceMonitor",
    "NotFittedError",
    "check_parameters",
    "em_statistics",
    "posteriors",
    "score_sequences",
    "viterbi",
]
