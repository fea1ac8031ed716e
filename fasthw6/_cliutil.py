"""Plumbing for the command line: user-facing errors, atomic outputs, model files, prefetching
and the argument types.

Kept apart from :mod:`fasthw6.cli` so that the argument parsing there reads as the interface.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import re
import shutil
import stat
import sys
import tempfile
import threading
from typing import IO, Iterable, Iterator

KEYS = ("startprob", "transmat", "emissionprob", "symbols")


class CLIError(Exception):
    """A problem with the user's input: printed as one line, exit status 2, no traceback."""


def stderr_line(text: str) -> None:
    """``text`` and its newline to stderr in one write: ``print`` writes the newline apart,
    and a signal (SIGINT, SIGTERM) handled between the two left the line open, so the
    "interrupted" message that follows was glued to it.  Every line the commands write to
    stderr goes through here."""
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


# --------------------------------------------------------------------------- outputs
def _stat(path: str | None) -> os.stat_result | None:
    """``os.stat`` of a named file (symlinks followed); None for stdin/stdout (``-``, None) and
    for a path that does not exist or cannot be reached (the command reports that itself)."""
    if path is None or path == "-":
        return None
    try:
        return os.stat(path)
    except (OSError, ValueError):  # ValueError: an embedded NUL byte
        return None


def refuse_overwrite(outputs: Iterable[tuple[str, str | None]],
                     inputs: Iterable[tuple[str, str | None]]) -> None:
    """Raise CLIError if an output is the same file as an input, before anything is read.

    ``outputs`` and ``inputs`` are ``(argument, path)`` pairs, e.g. ``("-o/--output", "x.csv")`` and
    ``("SEQS", "seqs.txt")``; a path None or ``-`` is skipped, except an input ``-`` whose
    standard input is redirected from a regular file (``< seqs.txt``): that file counts.  Files are
    compared by device and inode, as ``os.path.samefile`` does, so ``./x`` and ``x``, a symlink
    and its target, and two hard links of one file all match.  An output that does not exist yet
    cannot be an input.  An output that exists but is neither a regular file nor a directory (a
    device such as /dev/null, a FIFO) is written through, not replaced, so it is allowed even
    when an input names it too.
    """
    inputs = list(inputs)
    ins = [(arg, path, st) for arg, path in inputs if (st := _stat(path)) is not None]
    if any(path == "-" for _, path in inputs):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            st = os.fstat(sys.stdin.fileno())
            if stat.S_ISREG(st.st_mode):
                ins.append((next(a for a, p in inputs if p == "-"), "<standard input>", st))
    for out_arg, out_path in outputs:
        st = _stat(out_path)
        if st is None or not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
            continue
        for in_arg, in_path, in_st in ins:
            if os.path.samestat(st, in_st):
                kind = "directory" if stat.S_ISDIR(st.st_mode) else "file"
                raise CLIError(f"output {out_path!r} ({out_arg}) is the same {kind} as input "
                               f"{in_path!r} ({in_arg}); choose another output path")


def _destination(path: str) -> str:
    """The file the output replaces: a symlink's target (renaming onto the link itself would
    replace the link by a regular file and leave the target as it was)."""
    return os.path.realpath(os.path.abspath(path))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _temp_beside(target: str) -> tuple[int, str, int]:
    """(fd, path) of a temporary file in ``target``'s directory (so that the rename is atomic),
    and the mode the output should end with: the existing file's, or what ``open()`` gives a new
    file (mkstemp makes it 0600 whatever the umask)."""
    try:
        mode = os.stat(target).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(target), prefix=f".{os.path.basename(target)}.",
                               suffix=".part")
    return fd, tmp, mode


@contextlib.contextmanager
def atomic_output(path: str | None, mode: str = "w", stdout: IO | None = None) -> Iterator[IO]:
    """Write to a temporary file and rename it onto ``path`` only when the block succeeds.

    ``path`` None or ``"-"`` means standard output: the text is spooled to a temporary file and
    copied out at the end, so a failure half-way leaves no partial output there either.
    """
    binary = "b" in mode
    if path is None or path == "-":
        with tempfile.TemporaryFile(mode="w+b" if binary else "w+", encoding=None if binary else "utf-8") as f:
            yield f
            f.flush()
            f.seek(0)
            out = stdout or sys.stdout
            if binary:
                out = getattr(out, "buffer", out)
            shutil.copyfileobj(f, out, 1 << 20)
            out.flush()
        return
    st = _stat(path)
    if st is not None and not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        # a device or a pipe (/dev/null, /dev/stdout, a FIFO, bash's >(...)): nothing to rename
        # onto, write through.  Opened by the name given: the target of /dev/stdout or
        # /dev/fd/63 is a /proc "pipe:[...]" link that names no path
        with open(path, mode, **({} if binary else {"encoding": "utf-8"})) as f:
            yield f
        return
    target = _destination(path)
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise CLIError(f"{path}: cannot write output: directory {directory} does not exist")
    if os.path.isdir(target):
        raise CLIError(f"{path}: cannot write output: it is a directory")
    try:
        fd, tmp, perm = _temp_beside(target)
    except PermissionError:
        raise CLIError(f"{path}: cannot write output: permission denied") from None
    try:
        with os.fdopen(fd, mode, **({} if binary else {"encoding": "utf-8", "newline": "\n"})) as f:
            yield f
        os.chmod(tmp, perm)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def save_model_atomic(model, path: str, symbols=None, checkpoint: dict | None = None) -> None:
    """``model.save`` (with ``symbols``, which only the categorical model takes, when given) into
    a temporary file beside ``path``, then rename; written through to a device or a pipe."""
    st = _stat(path)
    if (checkpoint is None and st is not None
            and not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode))):
        model.save(path) if symbols is None else model.save(path, symbols=symbols)
        return
    what = "output" if checkpoint is None else "checkpoint"
    target = _destination(path)
    directory = os.path.dirname(target)
    if not os.path.isdir(directory):
        raise CLIError(f"{path}: cannot write {what}: directory {directory} does not exist")
    try:
        fd, tmp, perm = _temp_beside(target)
    except PermissionError:
        raise CLIError(f"{path}: cannot write {what}: permission denied") from None
    os.close(fd)
    try:
        if symbols is None:
            model.save(tmp)
        else:
            model.save(tmp, symbols=symbols)
        if checkpoint is not None:
            _add_checkpoint(tmp, checkpoint)
        os.chmod(tmp, perm)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _add_checkpoint(path: str, checkpoint: dict) -> None:
    import json

    with open(path, encoding="utf-8") as f:
        obj = json.load(f)
    obj["checkpoint"] = checkpoint
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
        f.write("\n")


def save_checkpoint_atomic(model, path: str, symbols, checkpoint: dict) -> None:
    """A fit checkpoint: the model file ``model.save`` writes (loadable as a model) with a
    ``checkpoint`` object added (iterations, log-likelihood history, fit options), written as
    :func:`save_model_atomic` writes, so a reader (or an interrupted write) never sees half a
    file."""
    save_model_atomic(model, path, symbols, checkpoint=checkpoint)


# --------------------------------------------------------------------------- model files
def _value_line(text: str, key: str, row: int | None) -> int | None:
    """1-based line of ``"key"`` in a JSON text, or of row ``row`` of its nested list."""
    m = re.search(r'"%s"\s*:' % re.escape(key), text)
    if m is None:
        return None
    pos = m.end()
    if row is not None:
        depth = 0
        r = -1
        for i in range(pos, len(text)):
            c = text[i]
            if c == "[":
                depth += 1
                if depth == 2:
                    r += 1
                    if r == row:
                        pos = i
                        break
            elif c == "]":
                depth -= 1
                if depth == 0:
                    break
    return text.count("\n", 0, pos) + 1


def key_line(text: str, key: str) -> int:
    """1-based line of ``"key"`` in a JSON text (1 when it is not there)."""
    return _value_line(text, key, None) or 1


def locate_error(text: str, message: str, keys: Iterable[str] = KEYS) -> int | None:
    """Best line for a model validation message: the first of ``keys`` it names, and the row
    (or state) if it names one."""
    for key in keys:
        if re.search(r"\b%s_?\b" % re.escape(key), message):
            row = re.search(r"\b(?:row|state) (\d+)", message)
            return _value_line(text, key, int(row.group(1)) if row else None)
    return None


def read_model_json(path: str) -> tuple[str, dict]:
    """The text and parsed object of a MODEL.json, with one-line errors naming file and line."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise CLIError(f"{path}: no such model file") from None
    except IsADirectoryError:
        raise CLIError(f"{path}: is a directory, expected a MODEL.json file") from None
    except UnicodeDecodeError as exc:
        raise CLIError(f"{path}: not a text file ({exc.reason})") from None
    except PermissionError:
        raise CLIError(f"{path}: permission denied") from None
    from .hmm._base import JSONTextError, parse_json

    try:
        obj = parse_json(text, path)
    except json.JSONDecodeError as exc:
        raise CLIError(f"{path}:{exc.lineno}: malformed JSON: {exc.msg} (column {exc.colno})") from None
    except JSONTextError as exc:
        raise CLIError(f"{path}:{exc.line}: {exc.message}") from None
    if not isinstance(obj, dict):
        raise CLIError(f"{path}:1: expected a JSON object with startprob, transmat, emissionprob, "
                       f"got a {type(obj).__name__}")
    kind = obj.get("type", "categorical")
    if kind == "categorical":
        missing = [k for k in KEYS[:3] if k not in obj]
        if missing:
            raise CLIError(f"{path}:1: missing key(s) {', '.join(missing)}; a model file holds "
                           f"startprob, transmat, emissionprob (and optionally symbols)")
    elif isinstance(kind, str):  # another model type: its class checks its emission keys
        missing = [k for k in KEYS[:2] if k not in obj]
        if missing:
            raise CLIError(f"{path}:1: missing key(s) {', '.join(missing)}; a {kind} model file "
                           f"holds type, startprob, transmat and its emission parameters")
    return text, obj


# --------------------------------------------------------------------------- prefetch
_DONE = object()


def prefetch(it: Iterable, depth: int = 2) -> Iterator:
    """Run iterator ``it`` in a background thread, ``depth`` items ahead of the consumer.

    The numba tokeniser and file reads release the GIL, so parsing the next chunk overlaps
    with scoring this one.  An exception in the producer is re-raised in the consumer, in order.
    """
    q: "queue.Queue" = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce():
        try:
            for item in it:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((_DONE, None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            q.put((_DONE, exc))

    t = threading.Thread(target=produce, name="fasthw6-prefetch", daemon=True)
    t.start()
    try:
        while True:
            item, exc = q.get()
            if item is _DONE:
                if exc is not None:
                    raise exc
                return
            yield item
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                q.get_nowait()
        t.join(timeout=5)


def parse_size(text: str) -> int:
    """``"4M"`` -> 4194304; plain integers are bytes; K, M, G suffixes are binary multiples."""
    m = re.fullmatch(r"\s*(\d+)\s*([kKmMgG]?)i?[bB]?\s*", text)
    if not m:
        raise ValueError(f"expected a size such as 4194304, 512K or 4M, got {text!r}")
    n = int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30}[m.group(2).lower()]
    if n < 1:
        raise ValueError(f"size must be positive, got {text!r}")
    return n


# argparse types: a bad value is a one-line usage error naming the option
MAX_CHUNK = 1 << 30  # a chunk is read into memory whole, with its int32 symbols beside it
MAX_LENGTH = (1 << 31) - 1  # one sampled sequence is drawn in memory at once


def chunk_size(text):
    try:
        n = parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if n > MAX_CHUNK:
        raise argparse.ArgumentTypeError(f"expected at most 1G, got {text!r}")
    return n


def int_parser(lo, hi, expected):
    """An argparse type: an integer in [lo, hi] (hi None: no upper bound), else a message
    saying it expected ``expected``."""
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if v < lo or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {v}")
        return v
    return parse


seed = int_parser(0, (1 << 32) - 1, "an integer in [0, 2**32 - 1]")
positive = int_parser(1, None, "a positive integer")
nonneg = int_parser(0, None, "an integer >= 0")


def sequence_length(text):
    v = positive(text)
    if v > MAX_LENGTH:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_LENGTH} symbols per sequence, got {v}")
    return v
