"""EM progress reporting, as hmmlearn's ``ConvergenceMonitor`` (the estimator's ``monitor_``)."""
from __future__ import annotations

import logging
import sys
from collections import deque

import numpy as np

_log = logging.getLogger("fasthw6.hmm.estimator")


class ConvergenceMonitor:
    """EM progress: ``history`` of log-likelihoods, ``iter`` count and ``converged``, as hmmlearn.

    Examples
    --------
    >>> m = ConvergenceMonitor(tol=0.1, n_iter=10, verbose=False)
    >>> m.report(-10.0); m.report(-9.95); m.converged
    True
    """

    _template = "{iter:>10d} {log_prob:>16.8f} {delta:>+16.8f}"

    def __init__(self, tol, n_iter, verbose):
        self.tol = tol
        self.n_iter = n_iter
        self.verbose = verbose
        self.history = deque()
        self.iter = 0

    def __repr__(self):
        return (f"ConvergenceMonitor(history={list(self.history)}, iter={self.iter}, "
                f"n_iter={self.n_iter}, tol={self.tol}, verbose={self.verbose})")

    def _reset(self):
        self.iter = 0
        self.history.clear()

    def report(self, log_prob):
        if self.verbose:
            delta = log_prob - self.history[-1] if self.history else np.nan
            print(self._template.format(iter=self.iter + 1, log_prob=log_prob, delta=delta),
                  file=sys.stderr)
        precision = np.finfo(float).eps ** 0.5
        if self.history and (log_prob - self.history[-1]) < -precision:
            _log.warning("Model is not converging.  Current: %s is not greater than %s. Delta is %s",
                         log_prob, self.history[-1], log_prob - self.history[-1])
        self.history.append(log_prob)
        self.iter += 1

    @property
    def converged(self):
        return (self.iter == self.n_iter or
                (len(self.history) >= 2 and self.history[-1] - self.history[-2] < self.tol))
