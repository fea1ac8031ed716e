"""Reading and writing FRAMES inputs: sequences of feature vectors for the continuous and count
HMMs (``GaussianHMM``, ``GMMHMM``, ``PoissonHMM``, ``MultinomialHMM``).

A FRAMES input is

- a ``.npy`` file: one 2-D array, one row per frame, one column per feature (a 1-D array is one
  feature).  The sequence lengths come from a lengths file (``lengths=``, the CLI's
  ``--lengths``), else from the companion array ``NAME.lengths.npy`` beside ``NAME.npy`` when
  there is one, else the whole array is one sequence;
- a ``.npz`` file with the array ``X`` (as above) and optionally ``lengths`` (hmmlearn's
  convention: the frames of every sequence end to end, and their lengths);
- text (any other name, ``.gz`` decompressed, or ``"-"`` for standard input): one frame per
  line, its features separated by commas or by whitespace; a blank line separates sequences
  (several blank lines separate them once, so text cannot hold an empty sequence).

A lengths file is a ``.npy`` 1-D integer array, or text holding non-negative integers separated
by whitespace or commas.

Two kinds of values are read: ``"float"`` (float64, finite: the Gaussian models) and ``"count"``
(int64, non-negative whole numbers: the count models; ``3.0`` reads as 3).  The input is read
whole; :func:`iter_frame_chunks` then hands it out in batches of whole sequences, as
:func:`fasthw6.seqio.iter_chunks` does for SEQS inputs.  Every error is a :class:`SeqsError`
naming the input and the 1-based line (text), or the array and row (``.npy``/``.npz``).
"""
from __future__ import annotations

import os
import time
from typing import Iterator, Sequence

import numpy as np

from ..hmm._checks import check_lengths
from .api import _NPZ_ERRORS, Chunk, SeqsError, _open_text, _source_name

KINDS = ("float", "count")
LENGTHS_SUFFIX = ".lengths.npy"
_INT64_MAX = np.iinfo(np.int64).max


def _check_kind(kind):
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(map(repr, KINDS))}, got {kind!r}")
    return kind


def is_npy(source) -> bool:
    """Whether ``source`` names a ``.npy`` file."""
    return isinstance(source, (str, os.PathLike)) and os.fspath(source).endswith(".npy")


def companion_lengths_path(path) -> str:
    """The companion lengths array of a ``.npy`` FRAMES file: ``x.npy`` -> ``x.lengths.npy``.

    Examples
    --------
    >>> companion_lengths_path("data/x.npy")
    'data/x.lengths.npy'
    """
    path = os.fspath(path)
    return (path[:-4] if path.endswith(".npy") else path) + LENGTHS_SUFFIX


# --------------------------------------------------------------------------- arrays
def _describe(value) -> str:
    return repr(value.item()) if hasattr(value, "item") else repr(value)


def check_frames_array(arr, kind="float", source="X", name="X") -> np.ndarray:
    """``arr`` as a C-contiguous 2-D float64 (``kind="float"``) or int64 (``"count"``) array.

    A 1-D array is one feature per frame.  Raises SeqsError naming ``source`` and the first bad
    element: not numbers, not 1-D/2-D, NaN or infinite, or (counts) negative or fractional.
    """
    _check_kind(kind)
    arr = np.asarray(arr)
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.floating)
                                     or np.issubdtype(arr.dtype, np.integer)):
        raise SeqsError(source, None, f"{name} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise SeqsError(source, None, f"{name} must be 2-D (one row per frame, one column per "
                        f"feature), got shape {arr.shape}")
    if kind == "float":
        out = np.ascontiguousarray(arr, dtype=np.float64)
        bad = ~np.isfinite(out)
        if bad.any():
            r, c = (int(i) for i in np.argwhere(bad)[0])
            raise SeqsError(source, None, f"{name}[{r}, {c}] is {out[r, c]}: features must be "
                            f"finite")
        return out
    if np.issubdtype(arr.dtype, np.integer):
        bad = arr < 0
        if np.issubdtype(arr.dtype, np.unsignedinteger) and arr.dtype.itemsize == 8:
            bad = arr > _INT64_MAX
        ok = None
    else:
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(arr) & (arr >= 0) & (arr < 2.0 ** 63) & (arr == np.floor(arr))
        bad = ~ok
    if bad.any():
        r, c = (int(i) for i in np.argwhere(bad)[0])
        raise SeqsError(source, None, f"{name}[{r}, {c}] = {_describe(arr[r, c])} is not a "
                        f"count (a non-negative integer)")
    return np.ascontiguousarray(arr, dtype=np.int64)


def _lengths_for(lengths, n_frames, source, lengths_source):
    try:
        return check_lengths(lengths, n_frames)
    except ValueError as exc:
        msg = str(exc).replace(" symbols", " frames")
        if lengths_source != source:
            msg = f"{msg} of {source}"
        raise SeqsError(lengths_source, None, msg) from None


def read_lengths(source) -> np.ndarray:
    """A lengths file: a ``.npy`` 1-D integer array, or text of non-negative integers separated
    by whitespace or commas.  Returns int64 (S,); the sum is checked by the caller.

    Raises
    ------
    SeqsError
        A missing or unreadable file, a token that is not a non-negative integer (naming its
        line), or an array that is not 1-D integers.
    """
    name = _source_name(source)
    if is_npy(source):
        arr = _load_array(source, "lengths")
        if arr.ndim != 1 or arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
            raise SeqsError(name, None, f"lengths must be a 1-D integer array, got dtype "
                            f"{arr.dtype} shape {arr.shape}")
        if arr.size and (arr < 0).any():
            k = int(np.argmax(arr < 0))
            raise SeqsError(name, None, f"lengths[{k}] = {arr[k]} is negative")
        return arr
    text = _read_text(source, name)
    out = []
    for i, line in enumerate(text.split("\n"), 1):
        for tok in line.replace(",", " ").split():
            if not tok.isdigit():
                raise SeqsError(name, i, f"{tok!r} is not a sequence length (a non-negative "
                                f"integer)")
            out.append(int(tok))
    try:
        return np.array(out, dtype=np.int64)
    except OverflowError:
        big = next(v for v in out if v > _INT64_MAX)
        raise SeqsError(name, None, f"sequence length {big} is too large") from None


def _load_array(path, what):
    path = os.fspath(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise SeqsError(path, None, "no such file") from None
    except IsADirectoryError:
        raise SeqsError(path, None, f"is a directory, expected a .npy {what} file") from None
    except PermissionError:
        raise SeqsError(path, None, "permission denied") from None
    except _NPZ_ERRORS as exc:
        raise SeqsError(path, None, f"not a readable .npy file ({exc})") from None
    if not isinstance(arr, np.ndarray):  # an .npz archive under a .npy name
        arr.close()
        raise SeqsError(path, None, "not a .npy array (an .npz archive? name it .npz)")
    return arr


def _load_npz(path):
    try:
        with np.load(path, allow_pickle=False) as z:
            if "X" not in z.files:
                raise SeqsError(path, None, f"missing array X; an .npz FRAMES file holds X and "
                                f"optionally lengths (found {', '.join(z.files) or 'none'})")
            return z["X"], (z["lengths"] if "lengths" in z.files else None)
    except FileNotFoundError:
        raise SeqsError(path, None, "no such file") from None
    except IsADirectoryError:
        raise SeqsError(path, None, "is a directory, expected an .npz FRAMES file") from None
    except PermissionError:
        raise SeqsError(path, None, "permission denied") from None
    except SeqsError:
        raise
    except (*_NPZ_ERRORS, AttributeError) as exc:
        raise SeqsError(path, None, f"not a readable .npz file ({exc})") from None


# --------------------------------------------------------------------------- text
def _read_text(source, name) -> str:
    f, own, _ = _open_text(source)
    try:
        data = f.read()
    except (OSError, EOFError) as exc:  # e.g. a truncated .gz
        raise SeqsError(name, None, f"cannot read: {exc}") from None
    finally:
        if own:
            f.close()
    try:
        return data.decode("utf-8-sig")  # a leading byte-order mark is dropped
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise SeqsError(name, line, f"not UTF-8 text ({exc.reason}); binary arrays must be "
                        f"named .npy or .npz") from None


def parse_frames_text(text: str, kind="float", name="<text>") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(X, lengths, lines)`` of FRAMES text: X (n_frames, n_features), the sequence lengths
    and the 1-based line of each sequence's first frame.

    Raises
    ------
    SeqsError
        An empty field, a field that is not a number (a count, for ``kind="count"``), a NaN or
        infinite value, or a line whose number of fields differs from the first frame's; the
        message names ``name``, the line and the field.

    Examples
    --------
    >>> X, lengths, lines = parse_frames_text("1, 2\\n3 4\\n\\n5,6\\n")
    >>> X.tolist(), lengths.tolist(), lines.tolist()
    ([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], [2, 1], [1, 4])
    """
    _check_kind(kind)
    tokens: list[str] = []
    frame_lines: list[int] = []
    lengths: list[int] = []
    starts: list[int] = []
    width = width_line = None
    cur = 0
    for i, raw in enumerate(text.split("\n"), 1):
        line = raw.strip()
        if not line:
            if cur:
                lengths.append(cur)
                cur = 0
            continue
        if "," in line:
            fields = [f.strip() for f in line.split(",")]
            if "" in fields:
                raise SeqsError(name, i, f"field {fields.index('') + 1} is empty")
        else:
            fields = line.split()
        if width is None:
            width, width_line = len(fields), i
        elif len(fields) != width:
            raise SeqsError(name, i, f"{len(fields)} field{'s' if len(fields) != 1 else ''}, but "
                            f"line {width_line} has {width} (every frame needs the same "
                            f"number of features)")
        if not cur:
            starts.append(i)
        tokens.extend(fields)
        frame_lines.append(i)
        cur += 1
    if cur:
        lengths.append(cur)
    if width is None:
        return (np.empty((0, 0), np.float64 if kind == "float" else np.int64),
                np.zeros(0, np.int64), np.zeros(0, np.int64))

    def where(k):
        return frame_lines[k // width], k % width + 1

    X = _convert(tokens, kind, name, where)
    return X.reshape(-1, width), np.array(lengths, np.int64), np.array(starts, np.int64)


def _first_bad(tokens, ok):
    for k, tok in enumerate(tokens):
        if not ok(tok):
            return k
    return None


def _is_float(tok):
    try:
        float(tok)
    except ValueError:
        return False
    return True


def _convert(tokens, kind, name, where):
    def fail(k, what):
        if k is None:  # numpy and Python disagree on a spelling: no line to name
            raise SeqsError(name, None, f"a field is not {what}")
        line, field = where(k)
        raise SeqsError(name, line, f"field {field} {tokens[k]!r} is not {what}")

    if any("_" in t for t in tokens):  # int() and float() take 1_000, which no CSV writer means
        fail(_first_bad(tokens, lambda t: "_" not in t), "a number")
    if kind == "count":
        try:
            X = np.array(tokens, dtype=np.int64)
        except (ValueError, OverflowError):
            pass  # 3.0, 1e3, or a real error: read as floats and look
        else:
            if X.size and X.min() < 0:
                fail(int(np.argmax(X < 0)), "a count (a non-negative integer)")
            return X
    try:
        X = np.array(tokens, dtype=np.float64)
    except ValueError:
        fail(_first_bad(tokens, _is_float), "a number")
    if kind == "float":
        bad = ~np.isfinite(X)
        if bad.any():
            k = int(np.argmax(bad))
            line, field = where(k)
            raise SeqsError(name, line, f"field {field} is {tokens[k]!r}: features must be finite")
        return X
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(X) & (X >= 0) & (X < 2.0 ** 63) & (X == np.floor(X)))
    if bad.any():
        fail(int(np.argmax(bad)), "a count (a non-negative integer)")
    return X.astype(np.int64)


# --------------------------------------------------------------------------- reading
def read_frames(source, kind="float", lengths=None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Read a whole FRAMES input: ``(X, lengths, lines)``.

    Parameters
    ----------
    source : str, os.PathLike or binary file object
        ``.npy``, ``.npz``, text (``.gz`` decompressed) or ``"-"`` for standard input.
    kind : {"float", "count"}
        float64 finite features, or int64 non-negative counts.
    lengths : str, os.PathLike, array_like or None
        Sequence lengths for a ``.npy`` input or an ``.npz`` without ``lengths``: a lengths file
        (see the module docstring) or the array itself.  None: the companion
        ``NAME.lengths.npy`` of a ``.npy`` input if it exists, else one sequence.  Text inputs
        and ``.npz`` files with ``lengths`` carry their own and refuse another.

    Returns
    -------
    X : ndarray, float64 or int64, shape (n_frames, n_features)
    lengths : ndarray, int64, shape (n_sequences,)
    lines : ndarray of int64 or None
        The 1-based line of each sequence's first frame (text inputs only).

    Raises
    ------
    SeqsError
        Any problem with the input or the lengths, naming the file and the line or row.

    Examples
    --------
    >>> import io
    >>> X, lengths, _ = read_frames(io.BytesIO(b"0 1\\n2 3\\n\\n4 5\\n"), kind="count")
    >>> X.tolist(), lengths.tolist()
    ([[0, 1], [2, 3], [4, 5]], [2, 1])
    """
    _check_kind(kind)
    name = _source_name(source)
    lengths_name = _source_name(lengths) if isinstance(lengths, (str, os.PathLike)) else name
    if is_npy(source) or (isinstance(source, (str, os.PathLike))
                          and os.fspath(source).endswith(".npz")):
        if is_npy(source):
            X = _load_array(source, "FRAMES")
            own = None
        else:
            X, own = _load_npz(os.fspath(source))
        X = check_frames_array(X, kind, name)
        if own is not None and lengths is not None:
            raise SeqsError(name, None, "holds its own lengths array; give no other lengths "
                            "(--lengths)")
        if own is not None:
            lens = np.asarray(own)
            if lens.ndim != 1 or lens.dtype == np.bool_ or not np.issubdtype(lens.dtype, np.integer):
                raise SeqsError(name, None, f"lengths must be a 1-D integer array, got dtype "
                                f"{lens.dtype} shape {lens.shape}")
        elif lengths is None:
            companion = companion_lengths_path(source) if is_npy(source) else None
            if companion is not None and os.path.isfile(companion):
                lens, lengths_name = read_lengths(companion), companion
            else:
                lens = np.array([X.shape[0]], np.int64)
        elif isinstance(lengths, (str, os.PathLike)):
            lens = read_lengths(lengths)
        else:
            lens = lengths
        return X, _lengths_for(lens, X.shape[0], name, lengths_name), None
    if lengths is not None:
        raise SeqsError(name, None, "--lengths applies to .npy and .npz inputs; in text, a "
                        "blank line separates sequences")
    X, lens, lines = parse_frames_text(_read_text(source, name), kind, name)
    return X, lens, lines


def iter_frame_chunks(source, kind="float", lengths=None, chunk_bytes=16 << 20,
                      on_bytes=None, on_total=None) -> Iterator[Chunk]:
    """A FRAMES input (see :func:`read_frames`) as :class:`~fasthw6.seqio.Chunk` batches of
    whole sequences with about ``chunk_bytes`` bytes of frames each (``X`` 2-D here); the file
    is read whole first.  ``on_total`` is called once, when it has been read, with the bytes of
    all its frames; ``on_bytes`` with the bytes of each batch."""
    t0 = time.perf_counter()
    X, lens, lines = read_frames(source, kind, lengths)
    parse_s = time.perf_counter() - t0
    row_bytes = max(1, X.shape[1]) * X.itemsize
    if on_total is not None:
        on_total(X.shape[0] * row_bytes)
    per = max(1, int(chunk_bytes) // row_bytes)
    ends = np.cumsum(lens)
    first = 0
    while first < len(lens):
        base = int(ends[first - 1]) if first else 0
        last = max(int(np.searchsorted(ends, base + per, side="right")), first + 1)
        b = int(ends[last - 1])
        nbytes = (b - base) * row_bytes
        if on_bytes is not None:
            on_bytes(nbytes)
        yield Chunk(X[base:b], lens[first:last], first,
                    None if lines is None else lines[first:last], nbytes, parse_s)
        parse_s = 0.0
        first = last


# --------------------------------------------------------------------------- writing
def format_frames(X, lengths: Sequence[int]) -> str:
    """FRAMES text of ``(X, lengths)``: one frame per line, features separated by commas (each
    float written so that it reads back exactly), a blank line between sequences.

    Examples
    --------
    >>> format_frames(np.array([[0.5, 1.0], [2.0, 3.0], [4.0, 5.0]]), [2, 1])
    '0.5,1.0\\n2.0,3.0\\n\\n4.0,5.0\\n'
    """
    X = np.asarray(X)
    if X.ndim == 1:
        X = X.reshape(-1, 1)
    if X.ndim != 2:
        raise ValueError(f"X must have shape (n_frames, n_features), got {X.shape}")
    lengths = check_lengths(lengths, X.shape[0])
    fmt = str if np.issubdtype(X.dtype, np.integer) else repr
    rows = [",".join(map(fmt, r)) for r in X.tolist()]
    out = []
    pos = 0
    for n in lengths.tolist():
        if out:
            out.append("\n")
        out.extend(r + "\n" for r in rows[pos:pos + n])
        pos += n
    return "".join(out)
