"""The categorical HMM's JSON file: ``format_version``, ``type``, ``startprob``, ``transmat``,
``emissionprob`` and optional ``symbols`` (one name per emission column), written by
``CategoricalHMM.save`` and read by ``load``; files from before ``format_version`` (no ``type``)
read as categorical.  ``load_model`` reads a file of any model type."""
from __future__ import annotations

from ._base import FORMAT_VERSION, read_json, write_json_atomic
from ._checks import check_parameters, check_symbols


def write_model(path, startprob, transmat, emissionprob, symbols=None):
    """Write checked parameters (arrays) and optional symbol names to ``path`` as JSON."""
    obj = dict(format_version=FORMAT_VERSION, type="categorical", startprob=startprob.tolist(),
               transmat=transmat.tolist(), emissionprob=emissionprob.tolist())
    if symbols is not None:
        obj["symbols"] = check_symbols([str(s) for s in symbols], emissionprob.shape[1])
    write_json_atomic(path, obj)


def read_model(path):
    """(startprob, transmat, emissionprob, symbols or None) from a JSON model file, checked.

    Raises
    ------
    ValueError
        Not a JSON object, missing keys, invalid probabilities (the message names the array and
        the row), or ``symbols`` not one distinct, non-empty, whitespace-free name per column.
    """
    obj = read_json(path)
    kind = obj.get("type", "categorical")
    if kind != "categorical":
        raise ValueError(f"{path}: holds a {kind!r} model, not a 'categorical' one")
    missing = [k for k in ("startprob", "transmat", "emissionprob") if k not in obj]
    if missing:
        raise ValueError(f"{path}: missing key(s) {', '.join(missing)}")
    sp, tm, em = check_parameters(obj["startprob"], obj["transmat"], obj["emissionprob"])
    symbols = obj.get("symbols")
    return sp, tm, em, (None if symbols is None else check_symbols(symbols, em.shape[1]))


def load_model(path, **kwargs):
    """The model of a JSON file of any type (``CategoricalHMM``, ``GaussianHMM``, ...), chosen by
    its ``type`` field; keyword arguments go to the class's constructor."""
    from . import MODEL_TYPES  # noqa: PLC0415  (the package imports this module)

    kind = read_json(path).get("type", "categorical")
    if kind not in MODEL_TYPES:
        raise ValueError(f"{path}: unknown model type {kind!r} (known: "
                         f"{', '.join(sorted(MODEL_TYPES))})")
    return MODEL_TYPES[kind].load(path, **kwargs)
