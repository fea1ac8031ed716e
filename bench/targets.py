"""The performance targets the issues set, in one table that ``bench/report.py`` checks.

Each entry names a benchmark group, a case (substring; ``None`` for every case of the group), the
implementation, the yardstick it is compared with and the smallest acceptable ratio of their
throughputs (work per second; within a group the work is the same, so it is the time ratio).
The report prints measured ratio, target and whether it is met, so the README says plainly
which targets the last benchmark run reached.
"""
from __future__ import annotations

TARGETS = [
    # issue 2: transposed convolution + ReLU, float32, one thread
    ("conv_transpose2d+relu f32", "a:", "numba", "torch", 5.0),
    ("conv_transpose2d+relu f32", "b:", "numba", "torch", 1.0),
    ("conv_transpose2d+relu f32", "c:", "numba", "torch", 0.5),
    ("conv_transpose2d+relu f32", "a:", "numba", "numpy", 100.0),
    # issue 3: HMM, float64, one thread, M=8, 2000 x 500 (score and fit raised by issue 13)
    ("decode (Viterbi)", None, "numba", "hmmlearn", 5.0),
    ("score_sequences threads (numba)", None, "numba 2 thread(s)", "numba 1 thread(s)", 1.8),
    ("N=64 vs machine rate", None, "numba score_sequences", "numpy matmul", 0.4),
    # issue 13: the HMM targets raised, on AVX2 and AVX-512 machines alike, and the other peers
    ("score_sequences", None, "numba", "hmmlearn-scaling", 12.0),
    ("fit (one EM iteration)", None, "numba", "hmmlearn-scaling", 12.0),
    ("decode (Viterbi)", None, "numba", "hmmkay", 3.0),
    ("decode (Viterbi)", None, "cython", "hmmlearn", 1.0),
    ("score_sequences", None, "cython", "hmmlearn-scaling", 1.0),
    ("fit (one EM iteration)", None, "cython", "hmmlearn-scaling", 1.0),
    ("score_sequences", None, "numba", "hmmkay", 20.0),
    ("score_sequences", None, "numba", "dynamax", 20.0),
    ("score_sequences", None, "numba", "pomegranate", 20.0),
    ("decode (Viterbi)", None, "numba", "dynamax", 20.0),
    ("decode (Viterbi)", None, "numba", "pomegranate", 20.0),
    ("fit (one EM iteration)", None, "numba", "hmmkay", 20.0),
    ("fit (one EM iteration)", None, "numba", "dynamax", 20.0),
    ("decode (Viterbi) threads (numba)", None, "numba 2 thread(s)", "numba 1 thread(s)", 1.8),
    ("fit (one EM iteration) threads (numba)", None, "numba 2 thread(s)", "numba 1 thread(s)", 1.8),
    # issue 14: the emission models on the framewise engine, one thread, float64, 2000 x 500
    ("GaussianHMM score", None, "numba", "hmmlearn", 10.0),
    ("GaussianHMM decode (Viterbi)", None, "numba", "hmmlearn", 10.0),
    ("GaussianHMM fit (one EM iteration)", None, "numba", "hmmlearn", 10.0),
    ("PoissonHMM score", None, "numba", "hmmlearn", 5.0),
    ("PoissonHMM decode (Viterbi)", None, "numba", "hmmlearn", 5.0),
    ("PoissonHMM fit (one EM iteration)", None, "numba", "hmmlearn", 5.0),
    ("GMMHMM score", None, "numba", "hmmlearn", 5.0),
    ("GMMHMM decode (Viterbi)", None, "numba", "hmmlearn", 5.0),
    ("GMMHMM fit (one EM iteration)", None, "numba", "hmmlearn", 5.0),
    ("framewise vs categorical scoring (numba)", None, "score_frames", "score_sequences", 0.6),
    # issue 15: K models at once, per model-state-step: at K=64 at most 0.7x the separate calls
    ("score_models", "K=64", "numba score_models", "numba separate", 1 / 0.7),
    # issue 18: named symbols parsed within 2x of the same sequences as integers
    ("parse named symbols", None, "numba names", "numba integers", 0.5),
    ("parse named symbols", None, "cython names", "cython integers", 0.5),
    # issue 4: batch norm forward + backward float32, latent layer of the VAE
    ("batchnorm fwd+bwd f32", None, "numba", "torch", 2.0),
    ("batchnorm fwd+bwd f32", None, "numba", "numpy copy (bandwidth)", 0.5),
    ("KL + reparameterize + grads float32", None, "numba", "numpy expressions", 2.0),
    ("KL + reparameterize + grads float64", None, "numba", "numpy expressions", 2.0),
]

# The README's first screen: one headline row per system (group, case substring or None, the
# implementation, its yardstick); the full tables go to docs/benchmarks.md.
HEADLINE = [
    ("score_sequences", "N=16", "numba", "hmmlearn-scaling"),
    ("decode (Viterbi)", "N=64", "numba", "hmmlearn"),
    ("fit (one EM iteration)", "N=16", "numba", "hmmlearn-scaling"),
    ("score_sequences", "N=16", "numba", "pomegranate"),
    ("GaussianHMM fit (one EM iteration)", "full N=16 D=16", "numba", "hmmlearn"),
    ("GaussianHMM score", "diag N=16 D=4", "numba", "pomegranate"),
    ("conv_transpose2d+relu f32", "a:", "numba", "torch"),
    ("batchnorm fwd+bwd f32", None, "numba", "torch"),
    ("KL + reparameterize + grads float32", None, "numba", "numpy expressions"),
    ("hard-margin SVM fit", None, "numba", "sklearn SVC"),
]
