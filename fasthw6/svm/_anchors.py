"""scikit-learn's SVC as the anchor of ``HardMarginSVC`` (used by tests and benchmarks).

The anchor is a class taking ``HardMarginSVC``'s constructor arguments where they exist (``tol``)
and fitted the same way: a linear kernel with C so large (1e10) that no margin violation is
worth paying for, i.e. the hard-margin problem on separable data.
"""
from __future__ import annotations

from .._backend import register_anchor


@register_anchor("HardMarginSVC", "sklearn SVC")
def _svc():
    from sklearn.svm import SVC  # noqa: PLC0415  (optional dependency)

    def svc(tol=1e-6):
        return SVC(kernel="linear", C=1e10, tol=tol)

    return svc
