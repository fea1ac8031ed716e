"""The HMM's JSON file: ``startprob``, ``transmat``, ``emissionprob`` and optional ``symbols``
(one name per emission column), written by ``CategoricalHMM.save`` and read by ``load``."""
from __future__ import annotations

import json

from ._checks import check_parameters, check_symbols


def write_model(path, startprob, transmat, emissionprob, symbols=None):
    """Write checked parameters (arrays) and optional symbol names to ``path`` as JSON."""
    obj = dict(startprob=startprob.tolist(), transmat=transmat.tolist(),
               emissionprob=emissionprob.tolist())
    if symbols is not None:
        obj["symbols"] = check_symbols([str(s) for s in symbols], emissionprob.shape[1])
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


def read_model(path):
    """(startprob, transmat, emissionprob, symbols or None) from a JSON model file, checked.

    Raises
    ------
    ValueError
        Not a JSON object, missing keys, invalid probabilities (the message names the array and
        the row), or ``symbols`` not one distinct, non-empty, whitespace-free name per column.
    """
    with open(path, encoding="utf-8") as f:
        obj = json.load(f)
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object with startprob, transmat, "
                         f"emissionprob, got {type(obj).__name__}")
    missing = [k for k in ("startprob", "transmat", "emissionprob") if k not in obj]
    if missing:
        raise ValueError(f"{path}: missing key(s) {', '.join(missing)}")
    sp, tm, em = check_parameters(obj["startprob"], obj["transmat"], obj["emissionprob"])
    symbols = obj.get("symbols")
    return sp, tm, em, (None if symbols is None else check_symbols(symbols, em.shape[1]))
