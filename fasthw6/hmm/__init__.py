"""Hidden Markov models (question 4 of the source document): one engine of batched, parallel
forward/backward/Viterbi/Baum-Welch kernels (``api`` on symbols, ``frames`` on any emission
model's per-frame log-likelihoods) and hmmlearn drop-ins for each emission model."""
from ._checks import NotFittedError, check_parameters
from .api import em_statistics, posteriors, score_sequences, viterbi
from .estimator import CategoricalHMM, ConvergenceMonitor
from .counts import MultinomialHMM, PoissonHMM
from .gaussian import GaussianHMM
from .gmm import GMMHMM
from .frames import frames_statistics, posteriors_frames, score_frames, viterbi_frames
from .io import load_model
from .multi import predict_model, score_models

# model file ``type`` -> class (``load_model``, the CLI)
MODEL_TYPES = {"categorical": CategoricalHMM, "gaussian": GaussianHMM, "gmm": GMMHMM,
               "multinomial": MultinomialHMM, "poisson": PoissonHMM}

__all__ = [
    "CategoricalHMM",
    "ConvergenceMonitor",
    "GMMHMM",
    "GaussianHMM",
    "MultinomialHMM",
    "PoissonHMM",
    "MODEL_TYPES",
    "NotFittedError",
    "check_parameters",
    "em_statistics",
    "frames_statistics",
    "load_model",
    "posteriors",
    "posteriors_frames",
    "predict_model",
    "score_frames",
    "score_models",
    "score_sequences",
    "viterbi",
    "viterbi_frames",
]
