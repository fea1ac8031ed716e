"""The ``fasthw6`` command line (also ``python -m fasthw6``).

    fasthw6 demo                                  the document's five questions, end to end
    fasthw6 score  -m MODEL.json SEQS [-o OUT.csv]  per-sequence log-likelihoods (-m repeatable)
    fasthw6 decode -m MODEL.json SEQS [-o OUT.csv]  per-sequence Viterbi log-probability and path
    fasthw6 fit    -n N_STATES SEQS -o MODEL.json   Baum-Welch training (--model TYPE)
    fasthw6 sample -m MODEL.json -n N -l LENGTH     random sequences (SEQS text, CSV, .npy, .npz)
    fasthw6 bench  [--quick] [--plot PATH]          benchmark suites and the README's table
    fasthw6 compile [SYSTEM ...]                    build numba's kernels into the cache now

A model file names its type (categorical, gaussian, ...: fasthw6.hmm.MODEL_TYPES); score, decode
and sample pick the class from it, fit trains the one --model names (default categorical).
SEQS is the data, in the form the model reads.  A categorical model reads symbol sequences: a
text file with one sequence per line (whitespace-separated integers in [0, M) or the model's
symbols), ``-`` for standard input, or an ``.npz`` file with arrays ``X`` and ``lengths``,
streamed in chunks of ``--chunk-size`` bytes.  The continuous and count models (gaussian, gmm,
poisson, multinomial) read FRAMES: a ``.npy`` 2-D array (one row per frame; sequence lengths
from ``--lengths FILE`` or the companion ``NAME.lengths.npy``, else one sequence), an ``.npz``
file with ``X`` and optionally ``lengths``, or text (``-`` for standard input) with one frame
per line, features separated by commas or whitespace, a blank line between sequences (count
models: non-negative integers).
Bad input gets one line on standard error naming the file and line, exit status 2, and no output
file (outputs are written to a temporary file and renamed into place only on success).  An
output that is the same file as an input (compared by device and inode, so a symlink or hard
link counts) is refused the same way, before anything is read.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import os
import sys
import time

import numpy as np

from ._clibench import cmd_bench
from ._cliutil import (KEYS, CLIError, atomic_output, chunk_size, key_line, locate_error, nonneg,
                       parse_size, positive, prefetch, read_model_json, refuse_overwrite,
                       save_checkpoint_atomic, save_model_atomic, seed, sequence_length,
                       stderr_line)

DEFAULT_CHUNK = "4M"


# --------------------------------------------------------------------------- helpers
def _progress_enabled(args) -> bool:
    """Progress bars (with an ETA where the total is known): on a terminal, or with
    --progress; never with -q."""
    if getattr(args, "quiet", False):
        return False
    return bool(getattr(args, "progress", False)) or sys.stderr.isatty()


def _bar(args, leave=True, **kw):
    """A tqdm bar on stderr; on a terminal it stays as a summary line when it closes."""
    from tqdm import tqdm

    return tqdm(disable=not _progress_enabled(args), file=sys.stderr, dynamic_ncols=True,
                leave=leave, **kw)


def _chunk_progress(args) -> None:
    """score/decode -v without a progress bar (stderr a pipe): one line per chunk, with the
    share of the input read and an ETA when its size is known."""
    if not getattr(args, "verbose", False) or _progress_enabled(args):
        return
    s, total = args.stats, getattr(args, "total_bytes", None)
    done = f"{s['bytes'] / 1e6:.1f} MB"
    elapsed = time.perf_counter() - args.t0
    if total and s["bytes"]:
        frac = min(1.0, s["bytes"] / total)
        done += f" of {total / 1e6:.1f} MB ({100 * frac:.0f}%), ETA {elapsed / frac - elapsed:.0f} s"
    _log(args, f"progress: {s['sequences']} sequences, {done}")


class Terminated(BaseException):
    """SIGTERM, raised in the main thread by the CLI's handler so that the cleanup paths
    (temporary output files, checkpoints) run as for Ctrl-C."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def _signal_handlers():
    """While the command runs: SIGINT raises KeyboardInterrupt (even where the parent ignored
    it) and SIGTERM raises :class:`Terminated`; the old handlers come back after."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum, frame):
        raise Terminated(signum)

    old = {sig: signal.signal(sig, h) for sig, h in
           ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, on_term))}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h if h is not None else signal.SIG_DFL)


def _warm_up(fn) -> None:
    """Run ``fn`` (a kernel call on a few symbols) so that compiling the kernel (numba's first
    call) stays out of the timed work; its errors are the real call's to report."""
    with contextlib.suppress(Exception):
        fn()


def _log(args, msg: str) -> None:
    if getattr(args, "verbose", False):
        stderr_line(f"fasthw6 {args.command}: {msg}")


def _setup(args) -> None:
    if getattr(args, "backend", None):
        from ._backend import set_backend

        set_backend(args.backend)
    if getattr(args, "threads", None):
        import numba

        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))


_OUT, _MODEL, _SEQS = "-o/--output", "-m/--model", "SEQS"  # argument names in error messages
_LENGTHS = "--lengths"


# --------------------------------------------------------------------------- model types
def model_types() -> dict:
    """The model file ``type`` -> class registry, read when a command runs (so a class
    registered in ``fasthw6.hmm.MODEL_TYPES`` later is a choice without changes here)."""
    from .hmm import MODEL_TYPES

    return MODEL_TYPES


def _reads_seqs(cls) -> bool:
    """Whether the model reads SEQS (symbol sequences) rather than FRAMES (feature vectors)."""
    from .hmm import CategoricalHMM

    return issubclass(cls, CategoricalHMM)


_COUNT_TYPES = ("poisson", "multinomial")


def _frame_kind(cls) -> str:
    """How a FRAMES model reads its input: ``"count"`` (non-negative integers: the count models)
    or ``"float"``; a class may say so itself with a ``_FRAME_KIND`` attribute."""
    kind = getattr(cls, "_FRAME_KIND", None)
    if kind is not None:
        return kind
    return "count" if getattr(cls, "_TYPE", None) in _COUNT_TYPES else "float"


def _type_name(model_or_cls) -> str:
    return getattr(model_or_cls, "_TYPE", None) or type(model_or_cls).__name__


def _first_line(exc) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _input_error(args, exc) -> CLIError:
    """A model's complaint as a one-line CLIError, naming the input when it is about the data
    (the library's messages about the data start with ``X``)."""
    msg = _first_line(exc)
    if msg.startswith("X ") or msg.startswith("X["):
        msg = f"{'<stdin>' if args.seqs == '-' else args.seqs}: {msg}"
    return CLIError(msg)


def load_model(path: str):
    """The model of a MODEL.json, its class chosen by the file's ``type`` (categorical when
    absent), or a one-line CLIError naming the file and line."""
    text, obj = read_model_json(path)
    types = model_types()
    kind = obj.get("type", "categorical")
    if not isinstance(kind, str) or kind not in types:
        raise CLIError(f"{path}:{key_line(text, 'type')}: unknown model type {kind!r}; this "
                       f"fasthw6 reads {', '.join(sorted(types))}")
    keys = list(KEYS) + sorted((k for k in obj if k not in KEYS), key=len, reverse=True)
    try:
        model = types[kind].load(path)
    except (ValueError, TypeError, KeyError) as exc:
        msg = _first_line(exc)
        if msg.startswith(f"{path}: "):
            msg = msg[len(path) + 2:]
        line = locate_error(text, msg, keys)
        raise CLIError(f"{path}:{line or 1}: invalid model: {msg}") from None
    return model


def _symbols(model):
    return getattr(model, "symbols_", None)


def _n_features(model) -> int:
    return int(np.asarray(model.emissionprob_).shape[1])


def _chunks(args, model):
    """Prefetched chunks of the DATA input with a byte progress bar; updates args.stats."""
    if not _reads_seqs(type(model)):
        yield from _frame_chunks(args, model)
        return
    from .seqio import iter_chunks
    from .seqio.api import is_npz
    from .seqio.frames import is_npy

    if args.lengths is not None:
        raise CLIError(f"{_LENGTHS} applies to the FRAMES inputs of continuous and count models; "
                       f"a categorical model's SEQS hold their own lengths")
    if is_npy(args.seqs):
        raise CLIError(f"{args.seqs}: a .npy input holds FRAMES, for continuous and count models; "
                       f"a categorical model reads SEQS text or .npz (X, lengths)")
    n_symbols, symbols = _n_features(model), _symbols(model)
    total = None
    if args.seqs != "-" and not is_npz(args.seqs) and not args.seqs.endswith(".gz"):
        with contextlib.suppress(OSError):
            total = os.path.getsize(args.seqs)
    args.total_bytes = total
    # the bar follows the input as the command works through it (parsing runs one chunk ahead)
    bar = _bar(args, total=total, unit="B", unit_scale=True, unit_divisor=1024,
               desc=getattr(args, "command", None) or "parse")
    stats = args.stats = dict(bytes=0, parse_s=0.0, sequences=0, symbols=0, work_s=0.0)

    def gen():
        for c in iter_chunks(args.seqs, n_symbols, symbols, chunk_bytes=args.chunk_size,
                             on_bytes=bar.update):
            stats["bytes"] += c.nbytes
            stats["parse_s"] += c.parse_seconds
            yield c

    try:
        yield from prefetch(gen())
    finally:
        bar.close()


def _set_total(bar, total) -> None:
    """Give a bar its total once it is known (a FRAMES input, when it has been read)."""
    bar.total = total
    bar.refresh()


def _check_width(name, X, model):
    """A CLIError when FRAMES of ``name`` have another number of features than the model."""
    want = getattr(model, "n_features", None)
    if X.shape[0] and isinstance(want, (int, np.integer)) and X.shape[1] != want:
        raise CLIError(f"{name}: frames have {X.shape[1]} feature{'s' if X.shape[1] != 1 else ''} "
                       f"but the {_type_name(model)} model has n_features={want}")


def _frame_chunks(args, model):
    """Chunks of whole sequences of a FRAMES input (read whole first), checked against the
    model's number of features; updates args.stats."""
    from .seqio.frames import iter_frame_chunks

    name = "<stdin>" if args.seqs == "-" else args.seqs
    bar = _bar(args, unit="B", unit_scale=True, unit_divisor=1024,
               desc=getattr(args, "command", None) or "frames")
    stats = args.stats = dict(bytes=0, parse_s=0.0, sequences=0, symbols=0, work_s=0.0)
    try:
        for c in iter_frame_chunks(args.seqs, _frame_kind(type(model)), args.lengths,
                                   chunk_bytes=args.chunk_size, on_bytes=bar.update,
                                   on_total=functools.partial(_set_total, bar)):
            _check_width(name, c.X, model)
            stats["bytes"] += c.nbytes
            stats["parse_s"] += c.parse_seconds
            yield c
    finally:
        bar.close()


def _unit(model) -> str:
    return "symbols" if _reads_seqs(type(model)) else "frames"


@contextlib.contextmanager
def _naming_input(args, model):
    """A FRAMES model's complaint, as a one-line CLIError naming the input when it is about the
    data (the SEQS path reports its own problems with file and line)."""
    from .seqio import SeqsError

    if _reads_seqs(type(model)):
        yield
        return
    try:
        yield
    except SeqsError:
        raise
    except (ValueError, TypeError) as exc:
        raise _input_error(args, exc) from None


def _report(args, verb: str, unit_work: str = "symbols") -> None:
    s = args.stats
    mb = s["bytes"] / 1e6
    parse = f"parse {mb / s['parse_s']:.0f} MB/s ({mb:.1f} MB in {s['parse_s']:.3f} s)" if s["parse_s"] > 0 else "parse -"
    rate = (f"{verb} {s['symbols'] / s['work_s'] / 1e6:.1f} M {unit_work}/s, "
            f"{s['sequences'] / s['work_s']:.0f} sequences/s ({s['work_s']:.3f} s, compile time "
            f"excluded)") if s["work_s"] > 0 else f"{verb} -"
    _log(args, f"{s['sequences']} sequences, {s['symbols']} {unit_work}; {parse}; {rate}; "
               f"wall {time.perf_counter() - args.t0:.3f} s")


# --------------------------------------------------------------------------- score
def _data_inputs(args) -> list:
    """The (argument, path) pairs of the DATA input: SEQS, --lengths, and the companion lengths
    array of a .npy input when it exists (an output must not replace any of them)."""
    from .seqio.frames import companion_lengths_path, is_npy

    inputs = [(_SEQS, args.seqs), (_LENGTHS, args.lengths)]
    if is_npy(args.seqs) and args.lengths is None:
        inputs.append((f"{_SEQS}'s lengths", companion_lengths_path(args.seqs)))
    return inputs


def _model_columns(paths) -> list:
    """CSV column names of the score command's models: each file's stem, or the path as given
    where two stems are the same."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    names = [p if stems.count(st) > 1 else st for p, st in zip(paths, stems)]
    return [n if names.count(n) == 1 else f"{n}#{names[:i + 1].count(n)}"
            for i, n in enumerate(names)]


def _check_alike(paths, models) -> None:
    """A CLIError unless the score command's models read the same input: all SEQS models with
    the same symbols, or all FRAMES models of one kind and width."""
    first = models[0]
    for path, m in zip(paths[1:], models[1:]):
        if _reads_seqs(type(m)) != _reads_seqs(type(first)):
            raise CLIError(f"{path}: a {_type_name(m)} model cannot be scored with the "
                           f"{_type_name(first)} model of {paths[0]}: one reads SEQS, the other "
                           f"FRAMES")
        if _reads_seqs(type(first)):
            if _n_features(m) != _n_features(first) or _symbols(m) != _symbols(first):
                raise CLIError(f"{path}: its model emits {_n_features(m)} symbols"
                               f"{' named ' + ','.join(_symbols(m)) if _symbols(m) else ''}, "
                               f"the model of {paths[0]} {_n_features(first)}"
                               f"{' named ' + ','.join(_symbols(first)) if _symbols(first) else ''}"
                               f"; every model must emit the same symbols")
        elif (_frame_kind(type(m)) != _frame_kind(type(first))
              or getattr(m, "n_features", None) != getattr(first, "n_features", None)):
            raise CLIError(f"{path}: its {_type_name(m)} model reads other frames than the "
                           f"{_type_name(first)} model of {paths[0]}")


def _score_chunk(models, c, client):
    """(n_sequences, K) log-likelihoods of one chunk under every model."""
    if client is not None:
        from .distributed import score_sequences as dist_score, split_partitions

        parts = split_partitions(c.X, c.lengths, max(1, 2 * sum(client.nthreads().values())))
        return np.column_stack([np.asarray(dist_score(m, parts, client=client), np.float64)
                                for m in models])
    if len(models) == 1:
        return np.asarray(models[0].score_sequences(c.X, c.lengths), np.float64)[:, None]
    from .hmm import score_models

    return score_models(models, c.X, c.lengths)


def cmd_score(args) -> int:
    paths = list(args.model)
    refuse_overwrite([(_OUT, args.output)], _data_inputs(args) + [(_MODEL, p) for p in paths])
    models = [load_model(p) for p in paths]
    _check_alike(paths, models)
    model = models[0]
    multi = len(models) > 1 or args.best
    names = _model_columns(paths)
    client = None
    if args.scheduler:
        try:
            from distributed import Client
        except ImportError:
            raise CLIError("--scheduler needs dask.distributed: pip install 'fasthw6[dist]'") from None
        try:
            client = Client(args.scheduler, timeout=args.connect_timeout)
        except (OSError, TimeoutError) as exc:
            raise CLIError(f"cannot connect to scheduler {args.scheduler}: {exc}") from None
    try:
        with atomic_output(args.output) as out:
            if multi:
                out.write(",".join(["index", "length"] + names + (["best"] if args.best else []))
                          + "\n")
            else:
                out.write("index,length,log_likelihood\n")
            for c in _chunks(args, model):
                if client is None and args.stats["sequences"] == 0 and len(c):
                    _warm_up(lambda: _score_chunk(models, _head(c), None))
                t0 = time.perf_counter()
                with _naming_input(args, model):
                    ll = _score_chunk(models, c, client)
                args.stats["work_s"] += time.perf_counter() - t0
                args.stats["sequences"] += len(c)
                args.stats["symbols"] += int(c.X.shape[0])
                _chunk_progress(args)
                idx = range(c.start, c.start + len(c))
                if not multi:
                    out.write("".join(f"{i},{n},{v!r}\n" for i, n, v in
                                      zip(idx, c.lengths.tolist(), ll[:, 0].tolist())))
                    continue
                best = ([""] * len(c) if not args.best else
                        [names[b] if np.isfinite(row[b]) else "" for b, row in
                         zip(np.argmax(ll, axis=1).tolist(), ll)] if len(c) else [])
                out.write("".join(
                    f"{i},{n},{','.join(repr(v) for v in row)}{',' + w if args.best else ''}\n"
                    for i, n, row, w in zip(idx, c.lengths.tolist(), ll.tolist(), best)))
    finally:
        if client is not None:
            client.close()
    _report(args, "score", _unit(model))
    return 0


def _head(c):
    """The first few symbols (frames) of a chunk's first sequence, as a chunk: a warm-up call."""
    import types

    k = int(min(int(c.lengths[0]), 8))
    return types.SimpleNamespace(X=c.X[:k], lengths=np.array([k], np.int64))


# --------------------------------------------------------------------------- decode
def _decode_chunk(model, X, lengths):
    """(per-sequence Viterbi log-probabilities, concatenated states) of one chunk: one batched
    kernel call (``model.decode`` would return only the sum of the log-probabilities)."""
    if _reads_seqs(type(model)):
        from .hmm import viterbi

        return viterbi(X, lengths, model.startprob_, model.transmat_, model.emissionprob_)
    # any other model: the engine's hooks every BaseHMM has, as its own decode calls them
    sp, tm = model._check()
    data, off = model._data(X, lengths)
    return model._run("viterbi", data, off, sp, tm)


def _decode_rows(c, lp, states) -> str:
    """The CSV rows of one decoded chunk."""
    states = np.asarray(states).tolist()
    rows = []
    pos = 0
    for i, (n, v) in enumerate(zip(c.lengths.tolist(), np.asarray(lp, np.float64).tolist())):
        rows.append(f"{c.start + i},{n},{v!r},{' '.join(map(str, states[pos:pos + n]))}\n")
        pos += n
    return "".join(rows)


def _to_part_files(args) -> bool:
    """decode --scheduler -o DIR: the workers write part files (an -o ending in .csv is CSV)."""
    return bool(args.scheduler and args.output and args.output != "-"
                and not args.output.lower().endswith(".csv"))


def cmd_decode(args) -> int:
    to_dir = _to_part_files(args)
    refuse_overwrite([] if to_dir else [(_OUT, args.output)],
                     _data_inputs(args) + [(_MODEL, args.model)])
    model = load_model(args.model)
    client = _connect_scheduler(args) if args.scheduler else None
    try:
        if to_dir:
            _decode_to_dir(args, model, client)
        else:
            with atomic_output(args.output) as out:
                out.write("index,length,log_probability,states\n")
                for c in _chunks(args, model):
                    if client is None and args.stats["sequences"] == 0 and len(c):
                        h = _head(c)
                        _warm_up(lambda: _decode_chunk(model, h.X, h.lengths))
                    t0 = time.perf_counter()
                    with _naming_input(args, model):
                        if client is not None:
                            from .distributed import decode as dist_decode

                            lp, states = dist_decode(model, _cluster_parts(client, c), client)
                        else:
                            lp, states = _decode_chunk(model, c.X, c.lengths)
                    _count(args, c, t0)
                    _chunk_progress(args)
                    out.write(_decode_rows(c, lp, states))
    finally:
        if client is not None:
            client.close()
    _report(args, "decode", _unit(model))
    return 0


def _count(args, c, t0) -> None:
    args.stats["work_s"] += time.perf_counter() - t0
    args.stats["sequences"] += len(c)
    args.stats["symbols"] += int(c.X.shape[0])


def _cluster_parts(client, c):
    """A chunk cut into partitions: two per worker thread."""
    from .distributed import split_partitions

    return split_partitions(c.X, c.lengths, max(1, 2 * sum(client.nthreads().values())))


def _decode_to_dir(args, model, client) -> None:
    """decode --scheduler -o DIR: every chunk's partitions decoded and written by the workers
    as DIR/part-NNNNN.npz (numbered across chunks, in input order); the client keeps nothing.
    On any failure every part file is removed (and DIR, if this command made it)."""
    from .distributed import _cleanup, _Cluster, claim_out_dir, decode as dist_decode

    try:
        out_dir, created = claim_out_dir(args.output)
    except ValueError as exc:
        raise CLIError(f"{_OUT}: {exc}") from None
    except OSError as exc:
        raise CLIError(f"{_OUT}: {args.output}: {exc.strerror or exc}") from None
    n_parts = 0
    try:
        for c in _chunks(args, model):
            t0 = time.perf_counter()
            parts = _cluster_parts(client, c)
            with _naming_input(args, model):
                dist_decode(model, parts, client, out_dir=out_dir, _first_part=n_parts,
                            _claimed=True)
            n_parts += len(parts)
            _count(args, c, t0)
    except BaseException:
        _cleanup(_Cluster(client, 0), out_dir, None, created)  # DIR was new or empty
        raise
    _log(args, f"{n_parts} part files in {out_dir}")


def _connect_scheduler(args):
    """The Client of --scheduler, once the cluster has a worker, or a one-line CLIError (a
    malformed address, nothing listening there, no worker within --wait-workers seconds)."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise CLIError("--scheduler needs dask.distributed: pip install 'fasthw6[dist]'") from None
    from .distributed import connect

    try:
        return connect(args.scheduler, timeout=args.connect_timeout,
                       workers_timeout=args.wait_workers)
    except (ValueError, OSError, TimeoutError) as exc:
        raise CLIError(_first_line(exc)) from None


# --------------------------------------------------------------------------- fit
def _read_for_fit(args):
    """(X, lengths, symbols): integer tokens as they are, or any tokens as a sorted alphabet."""
    from .hmm._checks import check_symbols
    from .seqio import SeqsError, read_sequences
    from .seqio.api import is_npz
    from .seqio.frames import is_npy

    if args.lengths is not None:
        raise CLIError(f"{_LENGTHS} applies to the FRAMES inputs of continuous and count models; "
                       f"a categorical model's SEQS hold their own lengths")
    if is_npy(args.seqs):
        raise CLIError(f"{args.seqs}: a .npy input holds FRAMES, for continuous and count models "
                       f"(--model {', '.join(t for t in sorted(model_types()) if t != 'categorical')}); "
                       f"a categorical model reads SEQS text or .npz (X, lengths)")
    symbols = args.symbols.split(",") if args.symbols else None
    if symbols is not None:
        try:
            check_symbols(symbols, args.n_features, name="--symbols")
        except ValueError as exc:
            raise CLIError(str(exc)) from None
    if is_npz(args.seqs) or symbols is not None:
        X, lengths = read_sequences(args.seqs, n_symbols=len(symbols) if symbols else args.n_features,
                                    symbols=symbols)
        return X, lengths, symbols
    # text: read it once (training needs it all in memory anyway), then try integers
    if args.seqs == "-":
        data = sys.stdin.buffer.read()
    else:
        import gzip

        # ``.gz`` is decompressed, as score and decode read it (iter_chunks)
        opener = gzip.open if args.seqs.endswith(".gz") else open
        try:
            with opener(args.seqs, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise CLIError(f"{args.seqs}: no such file") from None
        except IsADirectoryError:
            raise CLIError(f"{args.seqs}: is a directory, expected a SEQS file") from None
        except PermissionError:
            raise CLIError(f"{args.seqs}: permission denied") from None
        except (OSError, EOFError) as exc:  # not gzip data, or a truncated .gz
            raise CLIError(f"{args.seqs}: cannot read: {exc}") from None
    import io

    stream = io.BytesIO(data)
    stream.name = "<stdin>" if args.seqs == "-" else args.seqs
    try:
        X, lengths = read_sequences(stream, n_symbols=args.n_features)
        return X, lengths, None
    except SeqsError as exc:
        if args.n_features is not None and exc.message.split("'")[1].isdigit():
            raise
        # non-integer tokens: the alphabet is the sorted set of tokens seen
        symbols = sorted({t.decode("utf-8", "replace") for t in data.split()})
        if args.n_features is not None and len(symbols) != args.n_features:
            raise exc from None  # not a name alphabet of that size: the token is the typo
        stream.seek(0)
        X, lengths = read_sequences(stream, n_symbols=len(symbols), symbols=symbols)
        return X, lengths, symbols


# fit options that go to the model's constructor, for the classes that take them:
# (option, args attribute, constructor parameter)
CONSTRUCTOR_OPTIONS = (("--covariance-type", "covariance_type", "covariance_type"),
                       ("--n-mix", "n_mix", "n_mix"),
                       ("--n-features", "n_features", "n_features"))
# constructor parameters the command sets itself (--param may not name them)
_OWN_PARAMS = {"n_components": "-n/--n-states", "n_iter": "--n-iter", "tol": "--tol",
               "random_state": "--seed", "verbose": "-v/--verbose", "backend": "--backend",
               **{param: opt for opt, _, param in CONSTRUCTOR_OPTIONS}}


def _param_value(text: str):
    """A --param value: a Python literal (number, list, quoted string, True/None), else the
    text itself (``params=st``, ``algorithm=map``)."""
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def constructor_kwargs(args, cls) -> dict:
    """The keyword arguments of ``cls`` that the fit options give, or a one-line CLIError for
    an option the class does not take (``--n-mix`` for a gaussian model...)."""
    params = set(getattr(cls, "_PARAM_NAMES", ()))
    kind = getattr(cls, "_TYPE", cls.__name__)
    out = {}
    for opt, attr, param in CONSTRUCTOR_OPTIONS:
        value = getattr(args, attr, None)
        if value is None:
            continue
        if param not in params:
            raise CLIError(f"{opt} does not apply to --model {kind} ({cls.__name__} takes no "
                           f"{param}); it applies to "
                           f"{_models_taking(param) or 'no registered model'}")
        out[param] = value
    for item in args.param or ():
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise CLIError(f"--param: expected NAME=VALUE, got {item!r}")
        if name in _OWN_PARAMS:
            raise CLIError(f"--param {name}: set it with {_OWN_PARAMS[name]}")
        if name not in params:
            raise CLIError(f"--param {name}: {cls.__name__} takes no parameter {name!r}; it takes "
                           f"{', '.join(p for p in getattr(cls, '_PARAM_NAMES', ()) if p not in _OWN_PARAMS)}")
        out[name] = _param_value(text)
    return out


def _models_taking(param) -> str:
    return ", ".join(f"--model {t}" for t, c in sorted(model_types().items())
                     if param in getattr(c, "_PARAM_NAMES", ()))


def _read_frames_for_fit(args, cls):
    """(X, lengths) of a FRAMES input for a continuous or count model."""
    from .seqio.frames import read_frames

    if args.symbols is not None:
        raise CLIError(f"--symbols applies to categorical models (SEQS of symbol names), not "
                       f"--model {cls._TYPE}")
    X, lengths, _ = read_frames(args.seqs, _frame_kind(cls), args.lengths)
    return X, lengths


_FIT_OPTIONS = ("model_type", "n_states", "n_iter", "tol", "seed", "covariance_type", "n_mix",
                "n_features", "symbols", "param")
_FIT_DEFAULTS = dict(n_iter=100, tol=1e-2, seed=0, model_type="categorical")


def _read_checkpoint(args) -> dict:
    """fit --resume PATH: the checkpoint object of PATH; its fit options become the command's
    (an option given again on the command line must agree, except --n-iter, which may grow)."""
    import json

    path = args.resume
    try:
        with open(path, encoding="utf-8") as f:
            obj = json.load(f)
    except FileNotFoundError:
        raise CLIError(f"--resume: {path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CLIError(f"--resume: {path}: not a fit checkpoint ({_first_line(exc)})") from None
    ck = obj.get("checkpoint") if isinstance(obj, dict) else None
    if not isinstance(ck, dict) or not isinstance(ck.get("history"), list) \
            or not isinstance(ck.get("options"), dict):
        raise CLIError(f"--resume: {path}: not a fit checkpoint (no 'checkpoint' object; write "
                       f"one with fit --checkpoint)")
    for k, v in ck["options"].items():
        if k not in _FIT_OPTIONS:
            continue
        given = getattr(args, k, None)
        if k == "n_iter" and given is not None:
            continue  # more (or fewer) iterations than the interrupted run asked for
        if given is not None and given != v:
            raise CLIError(f"--resume: {path} was written by a fit with {k}={v!r}, not {given!r}")
        setattr(args, k, v)
    return ck


def _fit_options(args) -> dict:
    return {k: getattr(args, k, None) for k in _FIT_OPTIONS}


def cmd_fit(args) -> int:
    ck = _read_checkpoint(args) if args.resume else None
    for k, v in _FIT_DEFAULTS.items():
        if getattr(args, k, None) is None:
            setattr(args, k, v)
    if args.n_states is None:
        raise CLIError("-n/--n-states is required (unless --resume names a checkpoint)")
    outputs = [(_OUT, args.output)] + ([("--checkpoint", args.checkpoint)] if args.checkpoint else [])
    refuse_overwrite(outputs, _data_inputs(args))
    types = model_types()
    cls = types[args.model_type]
    kwargs = constructor_kwargs(args, cls)
    seqs_model = _reads_seqs(cls)
    unit = "symbols" if seqs_model else "frames"

    t0 = time.perf_counter()
    if seqs_model:
        X, lengths, symbols = _read_for_fit(args)
    else:
        (X, lengths), symbols = _read_frames_for_fit(args, cls), None
    parse_s = time.perf_counter() - t0
    if len(lengths) == 0:
        raise CLIError(f"{args.seqs}: no sequences to train on")
    if X.shape[0] == 0:
        raise CLIError(f"{args.seqs}: no {unit} to train on (all {len(lengths)} sequences are empty)")
    if seqs_model:
        kwargs["n_features"] = args.n_features or (len(symbols) if symbols else int(X.max()) + 1)
        _log(args, f"{len(lengths)} sequences, {X.shape[0]} symbols, alphabet "
                   f"{kwargs['n_features']}; read in {parse_s:.3f} s")
        X = X.reshape(-1, 1)
    else:
        _log(args, f"{len(lengths)} sequences, {X.shape[0]} frames of {X.shape[1]} "
                   f"feature{'s' if X.shape[1] != 1 else ''}; read in {parse_s:.3f} s")
    data_id = dict(sequences=int(len(lengths)), frames=int(X.shape[0]))
    try:
        model = cls(n_components=args.n_states, n_iter=1, tol=args.tol, random_state=args.seed,
                    **kwargs)
    except (TypeError, ValueError) as exc:
        raise CLIError(f"--model {args.model_type}: {_first_line(exc)}") from None
    if args.scheduler:
        if args.checkpoint or args.resume:
            raise CLIError("--checkpoint and --resume are for a local fit, not --scheduler")
        history, converged, fit_s = _fit_on_cluster(args, model, X, lengths, seqs_model)
        save_model_atomic(model, args.output, symbols)
        _fit_summary(args, history, converged, fit_s, len(history), X, first_s=None)
        return 0
    history = []
    if ck is not None:
        if ck.get("data") not in (None, data_id):
            raise CLIError(f"--resume: {args.resume} was written by a fit on other data "
                           f"({ck['data']['sequences']} sequences, {ck['data']['frames']} "
                           f"{unit}), not {data_id['sequences']} sequences, {data_id['frames']}")
        try:
            saved = cls.load(args.resume)
        except (TypeError, ValueError) as exc:
            raise CLIError(f"--resume: {args.resume}: {_first_line(exc)}") from None
        for k, v in vars(saved).items():  # the parameters (and what they hold) it reached
            if k.endswith("_") and k != "monitor_" and not k.startswith("__"):
                setattr(model, k, v)
        history = [float(v) for v in ck["history"]]
    else:
        try:
            model._init(X, lengths)  # what the first fit call would set, before EM
        except (TypeError, ValueError) as exc:
            if seqs_model:
                raise
            raise _input_error(args, exc) from None
    model.init_params = ""  # every fit call continues from the current parameters
    every = args.checkpoint_every
    done_before = len(history)

    def checkpoint():
        if args.checkpoint:
            save_checkpoint_atomic(model, args.checkpoint, symbols, dict(
                iterations=len(history), history=history, converged=converged(),
                options=_fit_options(args), data=data_id))

    def converged():
        return len(history) > 1 and history[-1] - history[-2] < args.tol

    args.interrupt_note = f" after {len(history)} iterations; no output written"
    bar = _bar(args, total=args.n_iter, initial=len(history), desc="fit", unit="it")
    t_fit = time.perf_counter()
    first_s = None
    try:
        while len(history) < args.n_iter and not converged():
            t_it = time.perf_counter()
            try:
                model.fit(X, lengths)
            except (TypeError, ValueError) as exc:
                if seqs_model:
                    raise
                raise _input_error(args, exc) from None
            ll = float(model.monitor_.history[-1])
            history.append(ll)
            if first_s is None:
                first_s = time.perf_counter() - t_it
            args.interrupt_note = f" after {len(history)} iterations; no output written"
            bar.update(1)
            bar.set_postfix(loglik=f"{ll:.6g}")
            if args.verbose:
                _log(args, f"iteration {len(history)}: log-likelihood {ll:.10g}")
            if args.checkpoint and (len(history) % every == 0 or converged()
                                    or len(history) == args.n_iter):
                checkpoint()
    except (KeyboardInterrupt, Terminated):
        # the model holds the parameters of its last completed iteration (fit is all or nothing)
        note = f" after {len(history)} iterations"
        if args.checkpoint:
            try:
                checkpoint()
                note += (f"; checkpoint {args.checkpoint} holds them (continue with --resume "
                         f"{args.checkpoint}); no output written")
            except BaseException:  # noqa: BLE001 -- a second signal, a full disk
                note += "; no checkpoint or output written"
        else:
            note += "; no output written"
        args.interrupt_note = note
        raise
    finally:
        bar.close()
    fit_s = time.perf_counter() - t_fit
    args.interrupt_note = f" after {len(history)} iterations; no output written"
    save_model_atomic(model, args.output, symbols)
    _fit_summary(args, history, converged(), fit_s, len(history) - done_before, X, first_s)
    return 0


def _fit_summary(args, history, converged, fit_s, ran, X, first_s) -> None:
    """fit's last line on stderr (unless -q): iterations, final log-likelihood, converged; with
    -v the time and throughput, without the first iteration (numba compiles in it)."""
    if args.quiet:
        return
    final = f"{history[-1]:.10g}" if history else "-"
    msg = (f"{len(history)} iteration{'s' if len(history) != 1 else ''}"
           f"{f' ({ran} this run)' if ran != len(history) else ''}, final log-likelihood "
           f"{final}, {'converged' if converged else 'not converged'}")
    if args.verbose and ran:
        timed_s, timed = fit_s, ran
        if first_s is not None and ran > 1:
            timed_s, timed = fit_s - first_s, ran - 1
        steps = timed * X.shape[0] * args.n_states ** 2
        how = ("first iteration (compile time) excluded" if first_s is not None and ran > 1
               else "compile time included" if first_s is not None else "on the cluster")
        msg += (f"; {fit_s:.3f} s, {steps / max(timed_s, 1e-12) / 1e6:.1f} M state-steps/s "
                f"({how})")
    stderr_line(f"fasthw6 fit: {msg}")


def _fit_on_cluster(args, model, X, lengths, seqs_model):
    """fit --scheduler: the local fit's initialisation on all of X, then EM with the E-step on
    the cluster (``fasthw6.distributed.fit``), one progress line per iteration on stderr.
    Returns (history, converged, seconds)."""
    from .distributed import fit as dist_fit, split_partitions

    client = _connect_scheduler(args)
    try:
        try:
            model._init(X, lengths)  # the local command's start, from all the data
        except (TypeError, ValueError) as exc:
            if seqs_model:
                raise
            raise _input_error(args, exc) from None
        model.init_params = ""
        parts = split_partitions(X, lengths, max(1, 2 * sum(client.nthreads().values())))
        _log(args, f"{len(parts)} partitions on {len(client.nthreads())} workers of "
                   f"{args.scheduler}")

        def progress(it, ll, seconds):
            stderr_line(f"fasthw6 fit: iteration {it}: log-likelihood {ll:.10g} "
                        f"({seconds:.3f} s)")

        t_fit = time.perf_counter()
        dist_fit(model, parts, client, n_iter=args.n_iter, tol=args.tol, callback=progress)
        fit_s = time.perf_counter() - t_fit
    finally:
        client.close()
    history = list(model.monitor_.history)
    converged = len(history) > 1 and history[-1] - history[-2] < args.tol
    return history, converged, fit_s


# --------------------------------------------------------------------------- sample
def _suffix(path) -> str:
    if path is None or path == "-":
        return ""
    return os.path.splitext(path)[1]  # as the readers see it: .npy/.npz, case and all


def _sample_seqs(args, model, rng) -> None:
    """A categorical model's sample: SEQS text (symbol names unless --integers), or .npz."""
    from .seqio import format_sequences

    symbols = None if args.integers else _symbols(model)
    suffix = _suffix(args.output)
    if suffix == ".npy":
        raise CLIError(f"{args.output}: a categorical model writes SEQS text or .npz (X, lengths), "
                       f"not .npy")
    bar = _bar(args, total=args.n_sequences, desc="sample", unit="seq")
    try:
        if suffix == ".npz":
            X = np.concatenate([np.asarray(model.sample(args.length, random_state=int(rng.integers(2**31)))[0]).ravel()
                                for _ in range(args.n_sequences)] or [np.empty(0, np.int64)])
            bar.update(args.n_sequences)
            with atomic_output(args.output, "wb") as out:
                np.savez(out, X=X, lengths=np.full(args.n_sequences, args.length, np.int64))
            return
        with atomic_output(args.output) as out:
            for first in range(0, args.n_sequences, 4096):
                k = min(4096, args.n_sequences - first)
                X = np.concatenate([np.asarray(model.sample(args.length, random_state=int(rng.integers(2**31)))[0]).ravel()
                                    for _ in range(k)]) if args.length else np.empty(0, np.int64)
                out.write(format_sequences(X, [args.length] * k, symbols))
                bar.update(k)
    finally:
        bar.close()


def _sample_frames(args, model, rng) -> None:
    """A continuous or count model's sample: FRAMES as CSV rows (a blank line between sequences),
    or ``.npy`` (with the companion NAME.lengths.npy) or ``.npz`` (X, lengths) by the suffix."""
    from .seqio.frames import companion_lengths_path, format_frames

    if args.integers:
        raise CLIError(f"--integers applies to categorical models (symbol names), not a "
                       f"{_type_name(model)} model")
    suffix = _suffix(args.output)
    lengths = np.full(args.n_sequences, args.length, np.int64)
    bar = _bar(args, total=args.n_sequences, desc="sample", unit="seq")

    def draw(k):
        out = [np.asarray(model.sample(args.length, random_state=int(rng.integers(2**31)))[0])
               for _ in range(k)]
        bar.update(k)
        return out

    try:
        if suffix in (".npy", ".npz"):
            parts = draw(args.n_sequences)
            X = np.concatenate(parts) if parts else np.empty((0, _width(model)))
            if suffix == ".npz":
                with atomic_output(args.output, "wb") as out:
                    np.savez(out, X=X, lengths=lengths)
            else:
                with atomic_output(args.output, "wb") as out:
                    np.save(out, X)
                with atomic_output(companion_lengths_path(args.output), "wb") as out:
                    np.save(out, lengths)
            return
        with atomic_output(args.output) as out:
            for first in range(0, args.n_sequences, 256):
                k = min(256, args.n_sequences - first)
                text = format_frames(np.concatenate(draw(k)), lengths[:k])
                out.write(("\n" if first else "") + text)
    finally:
        bar.close()


def _width(model) -> int:
    n = getattr(model, "n_features", None)
    return int(n) if isinstance(n, (int, np.integer)) else 0


def cmd_sample(args) -> int:
    from .seqio.frames import companion_lengths_path

    outputs = [(_OUT, args.output)]
    if _suffix(args.output) == ".npy":
        outputs.append((f"{_OUT}'s lengths", companion_lengths_path(args.output)))
    refuse_overwrite(outputs, [(_MODEL, args.model)])
    model = load_model(args.model)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    if _reads_seqs(type(model)):
        _sample_seqs(args, model, rng)
    else:
        _sample_frames(args, model, rng)
    _log(args, f"{args.n_sequences} sequences of {args.length} "
               f"{'symbols' if _reads_seqs(type(model)) else 'frames'} in "
               f"{time.perf_counter() - t0:.3f} s")
    return 0


# --------------------------------------------------------------------------- demo
def cmd_demo(args) -> int:
    from . import demo

    t0 = time.perf_counter()
    which = [q.upper() if q.upper().startswith("Q") else f"Q{q}" for q in args.questions] or None
    ok = demo.run(which, out=lambda s: print(s, flush=True))
    print(f"{'all checks hold' if ok else 'SOME CHECKS FAILED'} ({time.perf_counter() - t0:.1f} s)")
    return 0 if ok else 1


# --------------------------------------------------------------------------- compile
def cmd_compile(args) -> int:
    from . import _jit

    systems = args.systems or list(_jit.SYSTEMS)
    unknown = sorted(set(systems) - set(_jit.SYSTEMS))
    if unknown:
        raise CLIError(f"unknown system {unknown[0]!r}; expected some of {', '.join(_jit.SYSTEMS)}")
    floats, symbols = args.floats.split(","), args.symbols.split(",")
    for name, vals, allowed in (("--floats", floats, _jit.FLOATS),
                                ("--symbols", symbols, _jit.SYMBOLS)):
        bad = [v for v in vals if v not in allowed]
        if bad:
            raise CLIError(f"{name}: unknown dtype {bad[0]!r}; expected some of {', '.join(allowed)}")
    tasks = _jit._tasks(systems, floats, symbols)
    stderr_line(f"fasthw6 compile: {len(tasks)} kernel sets into {_jit.cache_dir()}")
    t0 = time.perf_counter()
    bar = _bar(args, total=len(tasks), desc="compile", unit="set")

    def done(label, seconds):
        bar.update(1)
        if args.verbose or not _progress_enabled(args):
            stderr_line(f"  {label}: {seconds:.1f} s")

    try:
        _jit.compile_all(systems, floats, symbols, jobs=args.jobs, progress=done)
    finally:
        bar.close()
    stderr_line(f"fasthw6 compile: done in {time.perf_counter() - t0:.1f} s")
    return 0


# --------------------------------------------------------------------------- parser
def _scheduler_options(parser, help_text) -> None:
    from .distributed import DEFAULT_CONNECT_TIMEOUT, DEFAULT_WORKERS_TIMEOUT

    parser.add_argument("--scheduler", metavar="ADDRESS", help=help_text)
    parser.add_argument("--wait-workers", type=float, default=DEFAULT_WORKERS_TIMEOUT,
                        metavar="SECONDS",
                        help=f"with --scheduler: how long to wait for a first worker "
                             f"(default {DEFAULT_WORKERS_TIMEOUT:g})")
    parser.add_argument("--connect-timeout", type=float, default=DEFAULT_CONNECT_TIMEOUT,
                        help=argparse.SUPPRESS)


_EXAMPLES = """examples:
  fasthw6 fit -n 4 seqs.txt -o model.json       train a 4-state model on SEQS
  fasthw6 score -m model.json seqs.txt          per-sequence log-likelihoods as CSV
  fasthw6 demo                                  the document's five questions, checked

"""


def _plain(text: str) -> str:
    """Help text without the reStructuredText markup of the docstrings it comes from."""
    return text.replace("``", "'").replace(":func:", "").replace(":class:", "")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="fasthw6", description=_plain(__doc__.split("\n\n")[0]),
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=_EXAMPLES + _plain(__doc__.split("\n\n", 2)[2]))
    p.add_argument("--version", action="version", version=f"fasthw6 {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--progress", action="store_true",
                        help="show progress bars on stderr even when it is not a terminal")
    common.add_argument("--backend", choices=["auto", "numba", "cython", "numpy"],
                        help="kernel backend (default: $FASTHW6_BACKEND or auto)")
    common.add_argument("--threads", type=positive, help="numba threads (default: all cores)")
    seqs = argparse.ArgumentParser(add_help=False)
    seqs.add_argument("seqs", metavar="SEQS",
                      help="the data, '-' for stdin. Categorical models: SEQS text (one sequence "
                           "per line) or .npz (X, lengths). Continuous and count models: FRAMES "
                           ".npy (2-D, one row per frame), .npz (X, optional lengths), or text "
                           "rows of comma- or whitespace-separated features, a blank line "
                           "between sequences")
    seqs.add_argument("--chunk-size", type=chunk_size, default=parse_size(DEFAULT_CHUNK), metavar="BYTES",
                      help=f"input bytes per streamed chunk, e.g. 512K, 16M (default {DEFAULT_CHUNK}); "
                           f"FRAMES are read whole, then handled in chunks of this many bytes")
    seqs.add_argument("--lengths", metavar="FILE",
                      help="FRAMES only: sequence lengths of a .npy input (or of an .npz without "
                           "lengths), as a .npy integer array or text integers (default: "
                           "NAME.lengths.npy beside NAME.npy if it exists, else one sequence)")
    model_file = argparse.ArgumentParser(add_help=False)
    model_file.add_argument("-m", "--model", required=True, metavar="MODEL.json",
                            help="model file; its 'type' field picks the model class "
                                 "(categorical when absent)")

    s = sub.add_parser("score", parents=[common, seqs],
                       help="per-sequence log-likelihoods as CSV",
                       description="Write index,length,log_likelihood for every sequence of SEQS; "
                                   "with several -m, index,length and one log-likelihood column "
                                   "per model, named by its file's stem (scored in one pass, "
                                   "fasthw6.hmm.score_models).")
    s.add_argument("-v", "--verbose", action="store_true",
                   help="report parse MB/s, throughput and timings on stderr")
    s.add_argument("-m", "--model", required=True, action="append", metavar="MODEL.json",
                   help="model file; its 'type' field picks the model class (categorical when "
                        "absent); repeat to score under several models of the same input")
    s.add_argument("--best", action="store_true",
                   help="add a column 'best': the model (column name) under which each sequence "
                        "is most likely, ties to the first, empty when impossible under all")
    s.add_argument("-o", "--output", metavar="OUT.csv", help="output file (default: stdout)")
    s.add_argument("--scheduler", metavar="ADDRESS", help="score on a Dask cluster (tcp://host:port)")
    s.add_argument("--connect-timeout", type=float, default=10.0, help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_score)

    d = sub.add_parser("decode", parents=[common, model_file, seqs],
                       help="Viterbi path of every sequence as CSV",
                       description="Write index,length,log_probability,states (space-separated).")
    d.add_argument("-v", "--verbose", action="store_true",
                   help="report parse MB/s, throughput and timings on stderr")
    d.add_argument("-o", "--output", metavar="OUT.csv",
                   help="output file (default: stdout); with --scheduler, a DIR (new or empty) "
                        "where the workers write part-NNNNN.npz files (logprob, states, lengths) "
                        "unless the name ends in .csv")
    _scheduler_options(d, "decode on a Dask cluster (tcp://host:port)")
    d.set_defaults(func=cmd_decode)

    types = sorted(model_types())
    from .hmm._gaussian import COVARIANCE_TYPES

    f = sub.add_parser("fit", parents=[common, seqs], help="train a model with Baum-Welch",
                       description="Train an HMM of the type --model names on SEQS and save it "
                                   "as JSON.")
    f.add_argument("-v", "--verbose", action="store_true",
                   help="report each iteration, parse MB/s, throughput and timings on "
                        "stderr")
    f.add_argument("-n", "--n-states", type=positive, metavar="N_STATES",
                   help="number of hidden states (required unless --resume)")
    f.add_argument("-o", "--output", required=True, metavar="MODEL.json",
                   help="where to write the trained model")
    f.add_argument("--model", dest="model_type", choices=types,
                   help=f"model type to train, from fasthw6.hmm.MODEL_TYPES: {', '.join(types)} "
                        f"(default categorical)")
    f.add_argument("--n-iter", type=positive, help="maximum EM iterations (default 100)")
    f.add_argument("--tol", type=float, help="stop when the gain is below (default 1e-2)")
    f.add_argument("--seed", type=seed, help="random initialisation seed (default 0)")
    f.add_argument("--checkpoint", metavar="PATH",
                   help="write the model, with what --resume needs (iterations, log-likelihood "
                        "history, fit options), to PATH atomically every --checkpoint-every "
                        "iterations and when interrupted (SIGINT, SIGTERM)")
    f.add_argument("--checkpoint-every", type=positive, default=1, metavar="K",
                   help="iterations between checkpoints (default 1)")
    f.add_argument("--resume", metavar="PATH",
                   help="continue the fit a --checkpoint file holds, with its options and the "
                        "same SEQS, to the result of an uninterrupted run")
    f.add_argument("--covariance-type", choices=COVARIANCE_TYPES,
                   help="covariance of each Gaussian, for the models that take one (gaussian, "
                        "gmm; default: the class's, diag)")
    f.add_argument("--n-mix", type=positive, metavar="K",
                   help="Gaussians per state, for the mixture models (gmm)")
    f.add_argument("--n-features", type=positive,
                   help="categorical: alphabet size (default: max symbol + 1)")
    f.add_argument("--symbols", help="categorical: comma-separated symbol names (default: "
                                     "integers, or the sorted tokens when they are not integers)")
    f.add_argument("--param", action="append", metavar="NAME=VALUE",
                   help="any other constructor parameter of the model class, e.g. "
                        "min_covar=1e-2 or params=stm (a Python literal, else text); repeatable")
    _scheduler_options(f, "run the E-step on a Dask cluster (tcp://host:port); one progress "
                          "line per iteration on stderr")
    f.set_defaults(func=cmd_fit)
    for sp_ in (s, d, f):
        sp_.add_argument("-q", "--quiet", action="store_true",
                         help="no progress bars and no summary line on stderr (errors only)")

    m = sub.add_parser("sample", parents=[common, model_file], help="random sequences from a model",
                       description="Write N sequences of length L: SEQS text, one per line "
                                   "(categorical), or FRAMES as CSV rows with a blank line between "
                                   "sequences; an output named .npz holds X and lengths, one named "
                                   ".npy (FRAMES) holds X, with NAME.lengths.npy written beside it.")
    m.add_argument("-v", "--verbose", action="store_true",
                   help="report the time taken on stderr")
    m.add_argument("-n", "--n-sequences", type=nonneg, required=True, metavar="N",
                   help="number of sequences")
    m.add_argument("-l", "--length", type=sequence_length, required=True, metavar="LENGTH",
                   help="length of every sequence")
    m.add_argument("-o", "--output", metavar="OUT",
                   help="output file (default: stdout); .npz, or .npy for FRAMES, writes arrays")
    m.add_argument("--seed", type=seed, default=0, help="random seed (default 0)")
    m.add_argument("--integers", action="store_true",
                   help="categorical: write symbol indices even if the model names symbols")
    m.set_defaults(func=cmd_sample)

    e = sub.add_parser("demo", parents=[common], help="the document's five questions, end to end",
                       description="Run the five systems of the source document (a machine-"
                                   "learning homework) end to end on small data, each checked "
                                   "against its NumPy reference; Q picks questions (1-5, all by "
                                   "default).")
    e.add_argument("-v", "--verbose", action="store_true",
                   help="accepted for symmetry; the demo always prints its checks and timings")
    e.add_argument("questions", nargs="*", metavar="Q", help="only these questions (1-5 or Q1-Q5)")
    e.set_defaults(func=cmd_demo)

    c = sub.add_parser("compile", parents=[common], help="build numba's kernels into the cache now",
                       description="Compile numba's kernels ahead of time into the cache "
                                   "($NUMBA_CACHE_DIR, $FASTHW6_CACHE_DIR or ~/.cache/fasthw6), for "
                                   "container images, Dask workers and CI. Until a kernel is "
                                   "compiled, the default backend answers with the Cython build.")
    c.add_argument("-v", "--verbose", action="store_true",
                   help="list each kernel set's compile time even under a progress bar")
    c.add_argument("systems", nargs="*", metavar="SYSTEM",
                   help="hmm, seqio, conv, nn, vae, svm (default: all)")
    c.add_argument("--floats", default="float64,float32", help="float dtypes (default float64,float32)")
    c.add_argument("--symbols", default="int64,uint8",
                   help="HMM symbol dtypes (default int64,uint8: the two the kernels take; other "
                        "integer dtypes are widened to int64)")
    c.add_argument("-j", "--jobs", type=positive, help="parallel processes (default: all CPUs)")
    c.set_defaults(func=cmd_compile)

    b = sub.add_parser("bench", parents=[common], help="run the benchmarks, print the table, plot",
                       description="Run bench/bench_*.py (pytest-benchmark), print bench/report.py's "
                                   "table. The suites live in the source repository, not the package.")
    b.add_argument("-v", "--verbose", action="store_true",
                   help="show pytest's own output while the suites run")
    b.add_argument("suites", nargs="*", help="suite names (conv, hmm, cli, ...); default all")
    b.add_argument("--quick", action="store_true",
                   help="about a minute: smaller batches, one round, without the fresh-process "
                        "JIT cases and the peers that compile per case (listed as not run)")
    b.add_argument("--plot", metavar="PATH.png",
                   help="write a PNG: one panel per operation, throughput against size (lines) "
                        "or per case (bars)")
    b.add_argument("--bench-dir", help="the bench/ folder (default: found from the source tree)")
    b.add_argument("-k", help="pytest -k expression selecting cases")
    b.add_argument("--json", dest="json_in", nargs="+", metavar="FILE",
                   help="report existing pytest-benchmark JSON instead of running")
    b.add_argument("--save-json", metavar="FILE", help="keep the merged benchmark JSON")
    b.set_defaults(func=cmd_bench)
    return p


def main(argv=None) -> int:
    """Entry point of the ``fasthw6`` command; returns the exit status.

    Examples
    --------
    >>> import contextlib, io
    >>> with contextlib.redirect_stdout(io.StringIO()) as out:
    ...     status = main(["demo", "5"])  # the document's question 5
    >>> status, out.getvalue().strip().splitlines()[-1]
    (0, 'all checks hold (0.0 s)')
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    args.t0 = time.perf_counter()
    from .seqio import SeqsError

    with _signal_handlers():
        try:
            return _run(args, SeqsError)
        except KeyboardInterrupt:
            code = 130
        except Terminated as exc:
            code = 128 + int(exc.signum)
        with contextlib.suppress(Exception):
            stderr_line(f"fasthw6 {args.command}: interrupted"
                        f"{getattr(args, 'interrupt_note', '; no output written')}")
        return code


def _run(args, SeqsError) -> int:
    """The command, its errors as one line on stderr and an exit status; an interrupt passes."""
    try:
        _setup(args)
        return args.func(args)
    except (CLIError, SeqsError) as exc:
        msg = str(exc)
    except (ValueError, TypeError) as exc:  # the library's boundary checks on user input
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    except MemoryError:
        msg = "not enough memory for this input or these arguments (try a smaller -n, -l or --chunk-size)"
    except BrokenPipeError:  # e.g. piped into head: the reader has what it wanted
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as exc:
        msg = f"{exc.filename + ': ' if getattr(exc, 'filename', None) else ''}{exc.strerror or exc}"
    stderr_line(f"fasthw6 {args.command}: error: {msg}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
