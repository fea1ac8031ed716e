"""The plain Python reader as the anchor of ``read_sequences`` (used by tests and benchmarks):
what one writes first -- split every line, ``int()`` every token, check the range."""
from __future__ import annotations

import numpy as np

from .._backend import register_anchor


def read_sequences(source, n_symbols=None, symbols=None):
    """Integer symbols in [0, n_symbols), one sequence per non-blank line of the file at
    ``source``: (X int32, lengths)."""
    if symbols is not None or n_symbols is None:
        raise ValueError("the Python reader takes integer symbols and n_symbols only")
    rows = []
    with open(source) as f:
        for line in f:
            r = [int(t) for t in line.split()]
            if r:
                if min(r) < 0 or max(r) >= n_symbols:
                    raise ValueError("symbol out of range")
                rows.append(r)
    X = np.fromiter((v for r in rows for v in r), dtype=np.int32)
    return X, np.array([len(r) for r in rows], dtype=np.int64)


@register_anchor("read_sequences", "python")
def _python():
    return read_sequences
