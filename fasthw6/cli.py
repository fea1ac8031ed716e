"""The ``fasthw6`` command line (also ``python -m fasthw6``).

    fasthw6 demo                                  the document's five questions, end to end
    fasthw6 score  -m MODEL.json SEQS [-o OUT.csv]  per-sequence log-likelihoods
    fasthw6 decode -m MODEL.json SEQS [-o OUT.csv]  per-sequence Viterbi log-probability and path
    fasthw6 fit    -n N_STATES SEQS -o MODEL.json   Baum-Welch training
    fasthw6 sample -m MODEL.json -n N -l LENGTH     random sequences, one per line
    fasthw6 bench  [--quick] [--plot PATH]          benchmark suites and the README's table
    fasthw6 compile [SYSTEM ...]                    build numba's kernels into the cache now

SEQS is a text file with one sequence per line (whitespace-separated integers in [0, M) or the
model's symbols), ``-`` for standard input, or an ``.npz`` file with arrays ``X`` and ``lengths``.
Inputs are streamed in chunks of ``--chunk-size`` bytes.  Bad input gets one line on standard
error naming the file and line, exit status 2, and no output file (outputs are written to a
temporary file and renamed into place only on success).  An output that is the same file as an
input (compared by device and inode, so a symlink or hard link counts) is refused the same way,
before anything is read.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time

import numpy as np

from ._clibench import cmd_bench
from ._cliutil import (CLIError, atomic_output, chunk_size, locate_error, nonneg, parse_size,
                       positive, prefetch, read_model_json, refuse_overwrite, save_model_atomic,
                       seed, sequence_length)

DEFAULT_CHUNK = "4M"


# --------------------------------------------------------------------------- helpers
def _progress_enabled(args) -> bool:
    return bool(getattr(args, "progress", False)) or sys.stderr.isatty()


def _bar(args, **kw):
    from tqdm import tqdm

    return tqdm(disable=not _progress_enabled(args), file=sys.stderr, dynamic_ncols=True,
                leave=False, **kw)


def _log(args, msg: str) -> None:
    if getattr(args, "verbose", False):
        print(f"fasthw6 {args.command}: {msg}", file=sys.stderr, flush=True)


def _setup(args) -> None:
    if getattr(args, "backend", None):
        from ._backend import set_backend

        set_backend(args.backend)
    if getattr(args, "threads", None):
        import numba

        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))


_OUT, _MODEL, _SEQS = "-o/--output", "-m/--model", "SEQS"  # argument names in error messages


def load_model(path: str):
    """A CategoricalHMM from a MODEL.json, or a one-line CLIError naming the file and line."""
    text, _ = read_model_json(path)
    from .hmm import CategoricalHMM

    try:
        model = CategoricalHMM.load(path)
    except (ValueError, TypeError, KeyError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        line = locate_error(text, msg)
        raise CLIError(f"{path}:{line or 1}: invalid model: {msg}") from None
    return model


def _symbols(model):
    return getattr(model, "symbols_", None)


def _n_features(model) -> int:
    return int(np.asarray(model.emissionprob_).shape[1])


def _chunks(args, model=None, n_symbols=None, symbols=None):
    """Prefetched chunks of the SEQS input with a byte progress bar; updates args.stats."""
    from .seqio import iter_chunks
    from .seqio.api import is_npz

    if model is not None:
        n_symbols, symbols = _n_features(model), _symbols(model)
    total = None
    if args.seqs != "-" and not is_npz(args.seqs) and not args.seqs.endswith(".gz"):
        with contextlib.suppress(OSError):
            total = os.path.getsize(args.seqs)
    bar = _bar(args, total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="parse")
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


def _report(args, verb: str, unit_work: str = "symbols") -> None:
    s = args.stats
    mb = s["bytes"] / 1e6
    parse = f"parse {mb / s['parse_s']:.0f} MB/s ({mb:.1f} MB in {s['parse_s']:.3f} s)" if s["parse_s"] > 0 else "parse -"
    rate = (f"{verb} {s['symbols'] / s['work_s'] / 1e6:.1f} M {unit_work}/s, "
            f"{s['sequences'] / s['work_s']:.0f} sequences/s ({s['work_s']:.3f} s)") if s["work_s"] > 0 else f"{verb} -"
    _log(args, f"{s['sequences']} sequences, {s['symbols']} symbols; {parse}; {rate}; "
               f"wall {time.perf_counter() - args.t0:.3f} s")


# --------------------------------------------------------------------------- score
def cmd_score(args) -> int:
    refuse_overwrite([(_OUT, args.output)], [(_SEQS, args.seqs), (_MODEL, args.model)])
    model = load_model(args.model)
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
            out.write("index,length,log_likelihood\n")
            for c in _chunks(args, model):
                t0 = time.perf_counter()
                if client is not None:
                    from .distributed import score_sequences as dist_score, split_partitions

                    parts = split_partitions(c.X, c.lengths, max(1, 2 * sum(client.nthreads().values())))
                    ll = dist_score(model, parts, client=client)
                else:
                    ll = model.score_sequences(c.X, c.lengths)
                args.stats["work_s"] += time.perf_counter() - t0
                args.stats["sequences"] += len(c)
                args.stats["symbols"] += int(c.X.shape[0])
                idx = range(c.start, c.start + len(c))
                out.write("".join(f"{i},{n},{v!r}\n" for i, n, v in
                                  zip(idx, c.lengths.tolist(), np.asarray(ll, np.float64).tolist())))
    finally:
        if client is not None:
            client.close()
    _report(args, "score")
    return 0


# --------------------------------------------------------------------------- decode
def _decode_chunk(model, X, lengths):
    """(per-sequence Viterbi log-probabilities, concatenated states) of one chunk: one batched
    kernel call (``model.decode`` would return only the sum of the log-probabilities)."""
    from .hmm import viterbi

    return viterbi(X, lengths, model.startprob_, model.transmat_, model.emissionprob_)


def cmd_decode(args) -> int:
    refuse_overwrite([(_OUT, args.output)], [(_SEQS, args.seqs), (_MODEL, args.model)])
    model = load_model(args.model)
    with atomic_output(args.output) as out:
        out.write("index,length,log_probability,states\n")
        for c in _chunks(args, model):
            t0 = time.perf_counter()
            lp, states = _decode_chunk(model, c.X, c.lengths)
            args.stats["work_s"] += time.perf_counter() - t0
            args.stats["sequences"] += len(c)
            args.stats["symbols"] += int(c.X.shape[0])
            states = np.asarray(states).tolist()
            rows = []
            pos = 0
            for i, (n, v) in enumerate(zip(c.lengths.tolist(), np.asarray(lp, np.float64).tolist())):
                rows.append(f"{c.start + i},{n},{v!r},{' '.join(map(str, states[pos:pos + n]))}\n")
                pos += n
            out.write("".join(rows))
    _report(args, "decode")
    return 0


# --------------------------------------------------------------------------- fit
def _read_for_fit(args):
    """(X, lengths, symbols): integer tokens as they are, or any tokens as a sorted alphabet."""
    from .hmm._checks import check_symbols
    from .seqio import SeqsError, read_sequences
    from .seqio.api import is_npz

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
        try:
            with open(args.seqs, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            raise CLIError(f"{args.seqs}: no such file") from None
        except IsADirectoryError:
            raise CLIError(f"{args.seqs}: is a directory, expected a SEQS file") from None
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


def cmd_fit(args) -> int:
    refuse_overwrite([(_OUT, args.output)], [(_SEQS, args.seqs)])
    from .hmm import CategoricalHMM

    t0 = time.perf_counter()
    X, lengths, symbols = _read_for_fit(args)
    parse_s = time.perf_counter() - t0
    if len(lengths) == 0:
        raise CLIError(f"{args.seqs}: no sequences to train on")
    if X.shape[0] == 0:
        raise CLIError(f"{args.seqs}: no symbols to train on (all {len(lengths)} sequences are empty)")
    n_features = args.n_features or (len(symbols) if symbols else int(X.max()) + 1)
    _log(args, f"{len(lengths)} sequences, {X.shape[0]} symbols, alphabet {n_features}; "
               f"read in {parse_s:.3f} s")
    model = CategoricalHMM(n_components=args.n_states, n_iter=1, tol=args.tol,
                           random_state=args.seed, n_features=n_features)
    Xc = X.reshape(-1, 1)
    history = []
    bar = _bar(args, total=args.n_iter, desc="fit", unit="it")
    t_fit = time.perf_counter()
    converged = False
    try:
        for it in range(args.n_iter):
            model.fit(Xc, lengths)
            model.init_params = ""  # later calls continue from the current parameters
            ll = float(model.monitor_.history[-1])
            history.append(ll)
            bar.update(1)
            bar.set_postfix(loglik=f"{ll:.6g}")
            if args.verbose:
                _log(args, f"iteration {it + 1}: log-likelihood {ll:.10g}")
            if len(history) > 1 and history[-1] - history[-2] < args.tol:
                converged = True
                break
    finally:
        bar.close()
    fit_s = time.perf_counter() - t_fit
    save_model_atomic(model, args.output, symbols)
    steps = len(history) * X.shape[0] * args.n_states ** 2
    _log(args, f"{len(history)} iterations in {fit_s:.3f} s ({steps / max(fit_s, 1e-12) / 1e6:.1f} M "
               f"state-steps/s), {'converged' if converged else 'not converged'}; "
               f"final log-likelihood {history[-1]:.10g}")
    return 0


# --------------------------------------------------------------------------- sample
def cmd_sample(args) -> int:
    refuse_overwrite([(_OUT, args.output)], [(_MODEL, args.model)])
    model = load_model(args.model)
    rng = np.random.default_rng(args.seed)
    from .seqio import format_sequences

    symbols = None if args.integers else _symbols(model)
    with atomic_output(args.output) as out:
        bar = _bar(args, total=args.n_sequences, desc="sample", unit="seq")
        try:
            for first in range(0, args.n_sequences, 4096):
                k = min(4096, args.n_sequences - first)
                X = np.concatenate([np.asarray(model.sample(args.length, random_state=int(rng.integers(2**31)))[0]).ravel()
                                    for _ in range(k)]) if args.length else np.empty(0, np.int64)
                out.write(format_sequences(X, [args.length] * k, symbols))
                bar.update(k)
        finally:
            bar.close()
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
    print(f"fasthw6 compile: {len(tasks)} kernel sets into {_jit.cache_dir()}", file=sys.stderr,
          flush=True)
    t0 = time.perf_counter()
    bar = _bar(args, total=len(tasks), desc="compile", unit="set")

    def done(label, seconds):
        bar.update(1)
        if args.verbose or not _progress_enabled(args):
            print(f"  {label}: {seconds:.1f} s", file=sys.stderr, flush=True)

    try:
        _jit.compile_all(systems, floats, symbols, jobs=args.jobs, progress=done)
    finally:
        bar.close()
    print(f"fasthw6 compile: done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    p = argparse.ArgumentParser(prog="fasthw6", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 2)[2])
    p.add_argument("--version", action="version", version=f"fasthw6 {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true",
                        help="report parse MB/s, throughput and timings on stderr")
    common.add_argument("--progress", action="store_true",
                        help="show progress bars on stderr even when it is not a terminal")
    common.add_argument("--backend", choices=["auto", "numba", "cython", "numpy"],
                        help="kernel backend (default: $FASTHW6_BACKEND or auto)")
    common.add_argument("--threads", type=positive, help="numba threads (default: all cores)")
    seqs = argparse.ArgumentParser(add_help=False)
    seqs.add_argument("seqs", metavar="SEQS", help="sequences: text file, '-' for stdin, or .npz (X, lengths)")
    seqs.add_argument("--chunk-size", type=chunk_size, default=parse_size(DEFAULT_CHUNK), metavar="BYTES",
                      help=f"input bytes per streamed chunk, e.g. 512K, 16M (default {DEFAULT_CHUNK})")

    s = sub.add_parser("score", parents=[common, seqs], help="per-sequence log-likelihoods as CSV",
                       description="Write index,length,log_likelihood for every sequence of SEQS.")
    s.add_argument("-m", "--model", required=True, metavar="MODEL.json")
    s.add_argument("-o", "--output", metavar="OUT.csv", help="output file (default: stdout)")
    s.add_argument("--scheduler", metavar="ADDRESS", help="score on a Dask cluster (tcp://host:port)")
    s.add_argument("--connect-timeout", type=float, default=10.0, help=argparse.SUPPRESS)
    s.set_defaults(func=cmd_score)

    d = sub.add_parser("decode", parents=[common, seqs], help="Viterbi path of every sequence as CSV",
                       description="Write index,length,log_probability,states (space-separated).")
    d.add_argument("-m", "--model", required=True, metavar="MODEL.json")
    d.add_argument("-o", "--output", metavar="OUT.csv", help="output file (default: stdout)")
    d.set_defaults(func=cmd_decode)

    f = sub.add_parser("fit", parents=[common, seqs], help="train a model with Baum-Welch",
                       description="Train a CategoricalHMM on SEQS and save it as JSON.")
    f.add_argument("-n", "--n-states", type=positive, required=True, metavar="N_STATES")
    f.add_argument("-o", "--output", required=True, metavar="MODEL.json")
    f.add_argument("--n-iter", type=positive, default=100, help="maximum EM iterations (default 100)")
    f.add_argument("--tol", type=float, default=1e-2, help="stop when the gain is below (default 1e-2)")
    f.add_argument("--seed", type=seed, default=0, help="random initialisation seed (default 0)")
    f.add_argument("--n-features", type=positive, help="alphabet size (default: max symbol + 1)")
    f.add_argument("--symbols", help="comma-separated symbol names (default: integers, or the "
                                     "sorted tokens when they are not integers)")
    f.set_defaults(func=cmd_fit)

    m = sub.add_parser("sample", parents=[common], help="random sequences from a model",
                       description="Write N sequences of length L, one per line (a SEQS file).")
    m.add_argument("-m", "--model", required=True, metavar="MODEL.json")
    m.add_argument("-n", "--n-sequences", type=nonneg, required=True, metavar="N")
    m.add_argument("-l", "--length", type=sequence_length, required=True, metavar="LENGTH")
    m.add_argument("-o", "--output", metavar="OUT", help="output file (default: stdout)")
    m.add_argument("--seed", type=seed, default=0)
    m.add_argument("--integers", action="store_true", help="write symbol indices even if the model names symbols")
    m.set_defaults(func=cmd_sample)

    e = sub.add_parser("demo", parents=[common], help="the document's five questions, end to end")
    e.add_argument("questions", nargs="*", metavar="Q", help="only these questions (1-5 or Q1-Q5)")
    e.set_defaults(func=cmd_demo)

    c = sub.add_parser("compile", parents=[common], help="build numba's kernels into the cache now",
                       description="Compile numba's kernels ahead of time into the cache "
                                   "($NUMBA_CACHE_DIR, $FASTHW6_CACHE_DIR or ~/.cache/fasthw6), for "
                                   "container images, Dask workers and CI. Until a kernel is "
                                   "compiled, the default backend answers with the Cython build.")
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
    b.add_argument("suites", nargs="*", help="suite names (conv, hmm, cli, ...); default all")
    b.add_argument("--quick", action="store_true", help="fewer rounds, no JIT-in-fresh-process cases")
    b.add_argument("--plot", metavar="PATH.png", help="write a PNG of throughput against problem size")
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
    except KeyboardInterrupt:
        print(f"fasthw6 {args.command}: interrupted", file=sys.stderr)
        return 130
    print(f"fasthw6 {args.command}: error: {msg}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
