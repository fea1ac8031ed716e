"""The source document's own code and data, kept once: the demo shows them and the tests check
the library against them.

The HMM functions (question 4) are copied faithfully from the document with only their syntax
repaired (names with spaces, ``0`` typed for ``O``): their defects -- the unscaled forward that
underflows, the backward's emission index, γ summed from ξ (so its last step is 0), the
column-wise argmax called "decode", and the NaN that training reaches -- are the point.  They are
not part of the library's API.
"""
from __future__ import annotations

import warnings

import numpy as np

# the urn example of question 4 and the convolution example of question 5
URN_A = [[1 / 3, 1 / 3, 1 / 3], [1 / 3, 1 / 3, 1 / 3], [1 / 3, 1 / 3, 1 / 3]]
URN_PI = [1 / 3, 1 / 3, 1 / 3]
URN_B = [[4 / 6, 2 / 6], [2 / 6, 4 / 6], [3 / 6, 3 / 6]]
URN_O = [0, 0, 1, 0, 1]  # 0 = red, 1 = blue
CONV_A = [[6, 0, -4, 0, 1], [4, 4, 0, 2, 1], [3, -7, 1, 4, 2], [-2, 2, 1, -4, 2], [5, 1, 2, 4, -1]]
CONV_K = [[3, -1, 2], [-2, 1, -3], [-2, 0, 3]]


def _doc_evaluation_forward(A, B, PI, O, alpha):
    alpha[:, 0] = np.multiply(PI, B[:, O[0]])
    for t in range(1, O.shape[0]):
        for j in range(A.shape[0]):
            alpha[j, t] = np.sum(np.multiply(alpha[:, t - 1], A[:, j])) * B[j, O[t]]
    return alpha


def _doc_evaluation_backward(A, B, PI, O, beta):
    beta[:, -1] = np.ones((A.shape[0]), dtype=np.float64)
    for t in range(O.shape[0] - 2, -1, -1):
        for i in range(A.shape[0]):
            beta[i, t] = np.sum(np.multiply(np.multiply(A[i, :], B[:, O[t]]), beta[:, t + 1]))
    return beta


def _doc_decode(A, B, PI, O, delta):
    delta[:, 0] = np.multiply(PI, B[:, O[0]])
    for t in range(1, O.shape[0]):
        for j in range(A.shape[0]):
            delta[j, t] = np.amax(np.multiply(delta[:, t - 1], A[:, j])) * B[j, O[t]]
    path = np.argmax(delta, axis=0) + 1
    return delta, path


def _doc_learn(A, B, PI, O, V, alpha, beta, XI, gamma):
    alpha = _doc_evaluation_forward(A, B, PI, O, alpha)
    beta = _doc_evaluation_backward(A, B, PI, O, beta)
    p = np.sum(np.multiply(alpha, beta), axis=0)
    for t in range(O.shape[0] - 1):
        for i in range(A.shape[0]):
            for j in range(A.shape[0]):
                XI[i, j, t] = (alpha[i, t] * beta[j, t + 1] * A[i, j] * B[j, O[t + 1]]) / p[t]
    for t in range(O.shape[0]):
        for i in range(A.shape[0]):
            gamma[i, t] = np.sum(XI[i, :, t])
    for i in range(A.shape[0]):
        for j in range(B.shape[0]):
            A[i, j] = np.sum(XI[i, j, :]) / np.sum(gamma[i])
    for i in range(A.shape[0]):
        PI[i] = gamma[i, 0]
    for j in range(A.shape[0]):
        for k in range(V.shape[0]):
            B[j, k] = np.sum(np.multiply(gamma[j], (O == V[k]).astype(np.float64))) / np.sum(gamma[j])
    return A, B, PI, gamma, XI, alpha, beta


def document_hmm_run(n_iter: int = 100):
    """Run the document's training loop on the urn example: per-iteration decoded paths (the
    document's 1-based states), per-iteration NaN flags, and the last γ."""
    A = np.array(URN_A, dtype=np.float64)
    PI = np.array(URN_PI, dtype=np.float64)
    B = np.array(URN_B, dtype=np.float64)
    O = np.array(URN_O, dtype=np.int32)
    V = np.array([0, 1], dtype=np.int32)
    shape = (B.shape[0], O.shape[0])
    alpha, beta, delta, gamma = (np.zeros(shape) for _ in range(4))
    XI = np.zeros((B.shape[0], B.shape[0], O.shape[0]))
    paths, nans = [], []
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for _ in range(n_iter):
            A, B, PI, gamma, XI, alpha, beta = _doc_learn(A, B, PI, O, V, alpha, beta, XI, gamma)
            delta, path = _doc_decode(A, B, PI, O, delta)
            paths.append(path.tolist())
            nans.append(bool(np.isnan(np.linalg.norm(A)) or np.isnan(np.linalg.norm(B))
                             or np.isnan(np.linalg.norm(PI))))
    return paths, nans, gamma
