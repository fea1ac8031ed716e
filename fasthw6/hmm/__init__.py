"""Discrete hidden Markov models (question 4 of the source document): batched, parallel
forward/backward/Viterbi/Baum-Welch kernels and a drop-in ``CategoricalHMM``."""
from ._checks import NotFittedError, check_parameters
from .api import em_statistics, posteriors, score_sequences, viterbi
from .estimator import CategoricalHMM, ConvergenceMonitor

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
