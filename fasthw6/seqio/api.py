"""Reading SEQS inputs: many symbol sequences, streamed in bounded memory.

A SEQS input is

- a text file, one sequence per line, whitespace-separated tokens: integers in ``[0, M)`` or the
  model's ``symbols``; blank lines are skipped (they hold no sequence); ``.gz`` is decompressed;
- ``"-"``: the same text on standard input;
- a ``.npz`` file with the arrays ``X`` (the concatenated symbols, hmmlearn's convention) and
  ``lengths``.

Text is read in blocks of about ``chunk_bytes`` bytes cut at a line end; each block is tokenised
by one compiled call (``_numba.tokenize``; named symbols ``tokenize_names``, a hash table of the
names) into an ``int32`` array of symbols plus lengths, so memory stays bounded by a few blocks whatever the size of the input.  Every error names the
input and the 1-based line (or, for ``.npz``, the array and sequence).
"""
from __future__ import annotations

import gzip
import io
import os
import re
import sys
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, Callable, Iterator, Sequence

import numpy as np

from . import _anchors  # noqa: F401  (registers the anchors of these functions)
from .._backend import get_kernel
from ..hmm._checks import check_lengths, check_symbols

DEFAULT_CHUNK_BYTES = 16 << 20
_DIGITS = re.compile(rb"[0-9]+\Z")
_NO_LIMIT = 1 << 31  # symbols are stored as int32: every one lies in [0, 2**31)


class SeqsError(ValueError):
    """A SEQS input that cannot be read: ``str()`` is ``"<source>:<line>: <message>"``.

    ``line`` is the 1-based line of a text input, or None when the problem is not on one line.
    """

    def __init__(self, source: str, line: int | None, message: str):
        self.source, self.line, self.message = source, line, message
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")


@dataclass
class Chunk:
    """A batch of consecutive sequences from a SEQS input.

    ``X`` (int32) holds the symbols of every sequence end to end, ``lengths`` (int64) their
    lengths, ``lines`` the 1-based source line of each sequence (None for ``.npz``), ``start`` the
    index of the first sequence in the whole input, ``nbytes`` the input bytes consumed and
    ``parse_seconds`` the time spent reading and tokenising them.
    """

    X: np.ndarray
    lengths: np.ndarray
    start: int
    lines: np.ndarray | None = None
    nbytes: int = 0
    parse_seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.lengths.shape[0])


def _tokenizer(backend):
    return get_kernel("seqio", "tokenize", backend)


def _source_name(source) -> str:
    if isinstance(source, (str, os.PathLike)):
        return "<stdin>" if str(source) == "-" else os.fspath(source)
    return getattr(source, "name", "<stream>")


def _symbol_table(symbols, n_symbols):
    """bytes -> index for symbol tokens; None when integer tokens already mean the same thing."""
    if symbols is None:
        return None, True
    lut = {}
    numeric_ok = True
    for i, s in enumerate(symbols):
        key = str(s).encode()
        if key in lut:
            raise ValueError(f"symbols must be distinct, {s!r} appears twice")
        lut[key] = i
        if _DIGITS.match(key) and int(key) != i:
            numeric_ok = False  # a symbol "3" naming index 1: tokens must go through the table
    return lut, numeric_ok


_MASK64 = (1 << 64) - 1
_NAME_MUL = 0x9E3779B97F4A7C15  # as the kernels' NAME_MUL (there a signed 64-bit value)


def name_word(key: bytes) -> int:
    """A token's word in ``tokenize_names``: its first 8 bytes as a little-endian integer
    (zero-padded), xor its last 8 when it is longer, as a signed 64-bit int."""
    w = int.from_bytes(key[:8], "little")
    if len(key) > 8:
        w ^= int.from_bytes(key[-8:], "little")
    return w - (1 << 64) if w >= 1 << 63 else w


def name_slot(key: bytes, bits: int) -> int:
    """The slot of a token in a table of 2^bits slots: the top bits of (word ^ length) * mul."""
    w = (name_word(key) ^ len(key)) & _MASK64
    return ((w * _NAME_MUL) & _MASK64) >> (64 - bits)


_NAME_TABLE_MAX_BYTES = 32 << 10  # a table grown to seat the names at home stays in L1


def _name_table(lut: dict, n_first: int | None = None):
    """(keys, koff, table): the operands of ``tokenize_names`` for a {name bytes: symbol}
    table; ``table`` an open-addressing hash table at most half full.

    A name away from its home slot costs the kernel a probe loop and, as its share of the
    tokens, a mispredicted branch.  So the table takes the smallest size (up to 16 times the
    least, while it fits in ``_NAME_TABLE_MAX_BYTES``) at which the fewest of the first
    ``n_first`` names (the model's own; the integers come after) and then of all names sit
    away from home.  A size one bit larger splits each pair of colliding names with
    probability 1/2 (the slot is the top bits of one product), so a few bits seat most
    small vocabularies whole."""
    items = list(lut.items())
    koff = np.zeros(len(items) + 1, np.int64)
    koff[1:] = np.cumsum([len(k) for k, _ in items])
    keys = np.frombuffer(b"".join(k for k, _ in items) or b"\0", np.uint8).copy()
    n_first = len(items) if n_first is None else n_first
    least = max(4, (2 * len(items)).bit_length())
    best = None
    for bits in range(least, least + 5):
        if bits > least and (32 << bits) > _NAME_TABLE_MAX_BYTES:
            break
        size = 1 << bits
        table = np.full((size, 4), -1, np.int64)
        away = [0, 0]
        for e, (k, v) in enumerate(items):
            j = home = name_slot(k, bits)
            while table[j, 3] >= 0:
                j = (j + 1) & (size - 1)
            table[j] = (name_word(k), len(k), v, e)
            if j != home:
                away[e >= n_first] += 1
        if best is None or away < best[0]:
            best = (away, table)
        if away == [0, 0]:
            break
    return keys, koff, best[1]


def _token_at(block: bytes, pos: int) -> str:
    end = pos
    while end < len(block) and block[end] not in b" \t\r\n\x0b\x0c":
        end += 1
    start = pos
    while start > 0 and block[start - 1] not in b" \t\r\n\x0b\x0c":
        start -= 1
    tok = block[start:end].decode("utf-8", "replace")
    return tok if len(tok) <= 40 else tok[:37] + "..."


def _limit(n_symbols) -> int:
    """The alphabet size checked: ``n_symbols``, or every int32 symbol when None."""
    if n_symbols is None:
        return _NO_LIMIT
    if isinstance(n_symbols, (bool, np.bool_)) or not isinstance(n_symbols, (int, np.integer)):
        raise TypeError(f"n_symbols must be an int, got {type(n_symbols).__name__}")
    if not 1 <= n_symbols <= _NO_LIMIT:
        raise ValueError(f"n_symbols must lie in [1, 2**31] (symbols are stored as int32), "
                         f"got {n_symbols}")
    return int(n_symbols)


def _alphabet(n_symbols, symbols) -> str:
    if n_symbols >= _NO_LIMIT:
        return "a non-negative integer below 2**31 (symbols are stored as int32)"
    if symbols is not None:
        shown = ", ".join(map(str, symbols[:8])) + (", ..." if len(symbols) > 8 else "")
        return f"a symbol of the model ({shown}) or an integer in [0, {n_symbols})"
    return f"an integer in [0, {n_symbols})"


class _BlockParser:
    def __init__(self, name, n_symbols, symbols, backend):
        self.name = name
        self.n_symbols = _limit(n_symbols)
        self.symbols = list(symbols) if symbols is not None else None
        self.lut, self.numeric_ok = _symbol_table(self.symbols, self.n_symbols)
        if self.lut is not None:
            for i in range(min(self.n_symbols, 1 << 16)):  # integers are accepted as well
                self.lut.setdefault(str(i).encode(), i)
            self.names = _name_table(self.lut, len(self.symbols))
            self.tokenize_names = get_kernel("seqio", "tokenize_names", backend)
        self.tokenize = _tokenizer(backend)
        # load (or compile) the kernel now, so that the first block's timing is parsing only
        t0 = time.perf_counter()
        self.tokenize(np.frombuffer(b"0\n", np.uint8), 1, np.empty(2, np.int32),
                      np.empty(2, np.int64), np.empty(2, np.int64))
        self.load_seconds = time.perf_counter() - t0

    def parse(self, block: bytes, first_line: int):
        """(X, lengths, lines, newlines) of a block of whole lines starting at 1-based
        ``first_line``; ``newlines`` the block's count of line ends."""
        buf = np.frombuffer(block, dtype=np.uint8)
        X = np.empty(len(block) // 2 + 1, dtype=np.int32)
        newlines = int(np.count_nonzero(buf == 10))  # NumPy: ~3x bytes.count
        n_lines = newlines + 1
        lengths = np.empty(n_lines, dtype=np.int64)
        lines = np.empty(n_lines, dtype=np.int64)
        if self.lut is None or self.numeric_ok:
            nt, ns, err, kind = self.tokenize(buf, self.n_symbols, X, lengths, lines)
            if kind == 0:
                return X[:nt], lengths[:ns], lines[:ns] + first_line, newlines
            if kind == 2 or self.lut is None:
                self._fail(block, err, first_line)
        # names: one compiled pass with a hash table of the names (and integers)
        nt, ns, err, kind = self.tokenize_names(buf, *self.names, X, lengths, lines)
        if kind:
            self._fail(block, err, first_line)
        return X[:nt], lengths[:ns], lines[:ns] + first_line, newlines

    def _fail(self, block, pos, first_line):
        line = first_line + block.count(b"\n", 0, pos)
        tok = _token_at(block, pos)
        raise SeqsError(self.name, line,
                        f"token {tok!r} is not {_alphabet(self.n_symbols, self.symbols)}")


def _open_text(source) -> tuple[BinaryIO, bool, int | None]:
    """(binary stream, whether we own it, its size in bytes when known)."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if path == "-":
            return sys.stdin.buffer, False, None
        try:
            size = os.path.getsize(path)
            f = gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb", buffering=0)
        except FileNotFoundError:
            raise SeqsError(path, None, "no such file") from None
        except IsADirectoryError:
            raise SeqsError(path, None, "is a directory, expected a SEQS file") from None
        except PermissionError:
            raise SeqsError(path, None, "permission denied") from None
        return f, True, (None if path.endswith(".gz") else size)
    if isinstance(source, (bytes, bytearray)):
        raise TypeError("source must be a path (str or os.PathLike), '-' or a binary stream, got "
                        "bytes (for a path, pass source.decode(); for data, io.BytesIO(source))")
    if isinstance(source, io.TextIOBase):
        raise TypeError("source must be a binary stream, got a text stream (open the file "
                        "with 'rb', or pass its path)")
    if not callable(getattr(source, "read", None)):
        raise TypeError(f"source must be a path (str or os.PathLike), '-' or a binary stream, "
                        f"got {type(source).__name__}")
    return source, False, None


_BOM = b"\xef\xbb\xbf"  # UTF-8 byte-order mark (editors on Windows write one)


def _read_block(f, n: int) -> bytes:
    if isinstance(f, io.RawIOBase):
        return f.read(n) or b""
    return f.read(n)


def iter_text_chunks(source, n_symbols=None, symbols=None, chunk_bytes=DEFAULT_CHUNK_BYTES,
                     backend=None, on_bytes: Callable[[int], None] | None = None) -> Iterator[Chunk]:
    """Stream a text SEQS input as :class:`Chunk` objects of about ``chunk_bytes`` each."""
    name = _source_name(source)
    parser = _BlockParser(name, n_symbols, symbols, backend)
    f, own, size = _open_text(source)
    if size is not None:  # a small file with a huge chunk size: read no more than it holds
        chunk_bytes = max(1, min(chunk_bytes, size + 1))
    try:
        parts: list[bytes] = []  # the unfinished last line so far (joined once: linear time)
        line = 1
        start = 0
        eof = False
        bom_checked = False
        while not eof:
            t0 = time.perf_counter()
            try:
                data = _read_block(f, chunk_bytes)
            except (OSError, EOFError) as exc:  # e.g. a truncated .gz
                raise SeqsError(name, line, f"cannot read: {exc}") from None
            eof = not data
            if not bom_checked:
                if not eof and sum(map(len, parts)) + len(data) < 3:
                    parts.append(data)
                    continue
                data, parts, bom_checked = b"".join(parts) + data, [], True
                if data[:3] == _BOM:  # a UTF-8 byte-order mark is not part of the first token
                    data = data[3:]
                eof = eof and not data
            if eof:
                block, parts = b"".join(parts), []
            else:
                cut = data.rfind(b"\n") + 1  # only the new bytes are searched
                if cut == 0:  # a line longer than a block: keep reading until it ends
                    parts.append(data)
                    continue
                block = b"".join(parts) + data[:cut] if parts else data[:cut]
                parts = [data[cut:]] if cut < len(data) else []
            if not block:
                continue
            X, lengths, lines, newlines = parser.parse(block, line)
            dt = time.perf_counter() - t0
            line += newlines
            if on_bytes is not None:
                on_bytes(len(block))
            if len(lengths):
                yield Chunk(X, lengths, start, lines, len(block), dt)
                start += len(lengths)
    finally:
        if own:
            f.close()


# what np.load raises for a damaged file: a truncated or corrupt zip archive (BadZipFile), a
# corrupt compressed member (zlib.error), a bad header (ValueError), a short read (EOFError)
_NPZ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error)


def _npz_arrays(path):
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in ("X", "lengths") if k not in z.files]
            if missing:
                raise SeqsError(path, None, f"missing array(s) {', '.join(missing)}; "
                                f"an .npz SEQS file holds X and lengths (found {', '.join(z.files) or 'none'})")
            return z["X"], z["lengths"]
    except FileNotFoundError:
        raise SeqsError(path, None, "no such file") from None
    except SeqsError:
        raise
    except _NPZ_ERRORS as exc:
        raise SeqsError(path, None, f"not a readable .npz file ({exc})") from None


def iter_npz_chunks(path, n_symbols=None, chunk_bytes=DEFAULT_CHUNK_BYTES) -> Iterator[Chunk]:
    """Stream an ``.npz`` SEQS file (arrays ``X``, ``lengths``) as chunks of whole sequences."""
    limit = _limit(n_symbols)
    t0 = time.perf_counter()
    X, lengths = _npz_arrays(path)
    X = np.asarray(X)
    if X.ndim == 2 and X.shape[1] == 1:
        X = X[:, 0]
    if X.ndim != 1:
        raise SeqsError(path, None, f"X must be 1-D or (n, 1), got shape {X.shape}")
    if not np.issubdtype(X.dtype, np.integer):
        raise SeqsError(path, None, f"X must hold integer symbols, got {X.dtype}")
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or not np.issubdtype(lengths.dtype, np.integer):
        raise SeqsError(path, None, f"lengths must be a 1-D integer array, got {lengths.dtype} "
                        f"shape {lengths.shape}")
    try:
        lengths = check_lengths(lengths, X.shape[0])
    except ValueError as exc:
        raise SeqsError(path, None, str(exc)) from None
    if X.size:
        bad = (X < 0) | (X >= limit)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            seq = int(np.searchsorted(np.cumsum(lengths), k, side="right"))
            raise SeqsError(path, None, f"X[{k}] = {X[k]} (sequence {seq}) is not "
                            f"{_alphabet(limit, None)}")
    X = X.astype(np.int32, copy=False)
    parse_s = time.perf_counter() - t0
    ends = np.cumsum(lengths)
    per = max(1, chunk_bytes // 2)  # about as many symbols as a text chunk of that size holds
    first = 0
    while first < len(lengths):
        base = ends[first - 1] if first else 0
        last = int(np.searchsorted(ends, base + per, side="right"))
        last = max(last, first + 1)
        a, b = int(base), int(ends[last - 1])
        yield Chunk(X[a:b], lengths[first:last], first, None, 4 * (b - a), parse_s)
        parse_s = 0.0
        first = last


def is_npz(source) -> bool:
    return isinstance(source, (str, os.PathLike)) and os.fspath(source).endswith(".npz")


def iter_chunks(source, n_symbols=None, symbols=None, chunk_bytes=DEFAULT_CHUNK_BYTES,
                backend=None, on_bytes=None) -> Iterator[Chunk]:
    """Stream a SEQS input (text path, ``"-"``, binary stream or ``.npz``) in bounded chunks.

    Parameters
    ----------
    source : str, os.PathLike or binary file object
        ``"-"`` reads standard input; a name ending in ``.npz`` is read as arrays ``X``,
        ``lengths``; ``.gz`` text is decompressed.
    n_symbols : int, optional
        The alphabet size M: every integer token must lie in ``[0, M)``.  None accepts any
        non-negative int32.
    symbols : sequence of str, optional
        The model's symbol names; token ``symbols[i]`` means symbol ``i``.
    chunk_bytes : int
        About how many input bytes make one chunk (default 16 MiB).
    backend : str, optional
        ``"numpy"`` selects the plain-Python tokeniser; anything else the compiled one.
    on_bytes : callable, optional
        Called with the number of bytes of each block parsed (progress bars).

    Yields
    ------
    Chunk
        ``X`` int32, ``lengths`` int64, ``start`` (index of its first sequence), ``lines``.

    Raises
    ------
    SeqsError
        A missing or unreadable input or a bad token, naming the input and line.

    Examples
    --------
    >>> import io
    >>> [c.lengths.tolist() for c in iter_chunks(io.BytesIO(b"0 1 1\\n\\n2 0\\n"), n_symbols=3)]
    [[3, 2]]
    """
    if not isinstance(chunk_bytes, (int, np.integer)) or chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be a positive int, got {chunk_bytes!r}")
    _limit(n_symbols)  # raises here, not at the first next()
    if is_npz(source):
        if symbols is not None:
            pass  # X already holds indices
        return iter_npz_chunks(source, n_symbols, int(chunk_bytes))
    return iter_text_chunks(source, n_symbols, symbols, int(chunk_bytes), backend, on_bytes)


def read_sequences(source, n_symbols=None, symbols=None, backend=None) -> tuple[np.ndarray, np.ndarray]:
    """Read a whole SEQS input: ``(X, lengths)`` with X int32 of shape (n_symbols_total,).

    Examples
    --------
    >>> import io
    >>> X, lengths = read_sequences(io.BytesIO(b"0 1\\n1 1 0\\n"), n_symbols=2)
    >>> X.tolist(), lengths.tolist()
    ([0, 1, 1, 1, 0], [2, 3])
    """
    Xs, Ls = [], []
    for c in iter_chunks(source, n_symbols, symbols, backend=backend):
        Xs.append(c.X)
        Ls.append(c.lengths)
    if not Xs:
        return np.empty(0, np.int32), np.empty(0, np.int64)
    return np.concatenate(Xs), np.concatenate(Ls)


def format_sequences(X: np.ndarray, lengths: Sequence[int], symbols=None) -> str:
    """The text SEQS form of ``(X, lengths)``: one line per sequence (symbol names if given).

    Raises
    ------
    TypeError
        X does not hold integers.
    ValueError
        A negative symbol, a symbol without a name in ``symbols``, lengths negative or not
        summing to ``len(X)``, or names that would not read back (see ``check_symbols``).

    Examples
    --------
    >>> format_sequences(np.array([0, 1, 1]), [1, 2], symbols=["a", "b"])
    'a\\nb b\\n'
    """
    X = np.asarray(X)
    if X.ndim == 2 and X.shape[1] == 1:
        X = X[:, 0]
    if X.ndim != 1:
        raise ValueError(f"X must have shape (n,) or (n, 1), got {X.shape}")
    if X.size and (X.dtype == np.bool_ or not np.issubdtype(X.dtype, np.integer)):
        hint = " (use X.astype(int))" if np.issubdtype(X.dtype, np.number) else ""
        raise TypeError(f"X must hold integer symbols, got {X.dtype}{hint}")
    lengths = check_lengths(lengths, X.shape[0])
    names = None
    if symbols is not None:
        names = np.asarray(check_symbols([str(s) for s in symbols]), dtype=object)
    if X.size:
        lo, hi = int(X.min()), int(X.max())
        if lo < 0:
            k = int(np.argmax(X < 0))
            raise ValueError(f"X[{k}] = {X[k]} is negative; symbols are non-negative integers")
        if names is not None and hi >= len(names):
            k = int(np.argmax(X >= len(names)))
            raise ValueError(f"X[{k}] = {X[k]} has no name in symbols ({len(names)} names)")
    out = []
    pos = 0
    for n in lengths.tolist():
        seg = X[pos:pos + n]
        pos += n
        toks = names[seg] if names is not None else seg.tolist()
        out.append(" ".join(map(str, toks)))
    return "\n".join(out) + ("\n" if out else "")
