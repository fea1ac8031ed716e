"""``fasthw6 bench``: run the benchmark suites of a checkout and print the README's table.

The suites (``bench/``) live in the source repository, not in the installed package; this
module finds them, runs them in a pytest session of their own and renders their JSON with
``bench/report.py``.  Kept apart from :mod:`fasthw6.cli`, whose other commands work on any
installation.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from ._cliutil import CLIError, atomic_output, refuse_overwrite


def find_bench_dir(explicit: str | None) -> str:
    """The repository's bench/ folder: --bench-dir, $FASTHW6_BENCH_DIR, the source tree, ./bench."""
    cands = [explicit] if explicit else []
    if not explicit:
        if os.environ.get("FASTHW6_BENCH_DIR"):
            cands.append(os.environ["FASTHW6_BENCH_DIR"])
        cands.append(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
        cands.append(os.path.join(os.getcwd(), "bench"))
    for c in cands:
        if os.path.isfile(os.path.join(c, "report.py")) and os.path.isfile(os.path.join(c, "conftest.py")):
            return os.path.abspath(c)
    raise CLIError(
        "benchmark suites not found (looked in: " + ", ".join(cands) + "). They live in the "
        "source repository's bench/ folder, not in the installed package: run from a checkout, "
        "or pass --bench-dir PATH/TO/bench")


def _report_module(bench_dir):
    import importlib.util

    spec = importlib.util.spec_from_file_location("_fasthw6_bench_report", os.path.join(bench_dir, "report.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def cmd_bench(args) -> int:
    refuse_overwrite([("--save-json", args.save_json), ("--plot", args.plot)],
                     [("--json", p) for p in args.json_in or ()])
    bench_dir = find_bench_dir(args.bench_dir)
    report = _report_module(bench_dir)
    if args.json_in:
        files = args.json_in
    else:
        suites = []
        for s in args.suites:
            p = os.path.join(bench_dir, s if s.endswith(".py") else f"bench_{s}.py")
            if not os.path.isfile(p):
                have = sorted(f[6:-3] for f in os.listdir(bench_dir) if f.startswith("bench_") and f.endswith(".py"))
                raise CLIError(f"no benchmark suite {s!r} in {bench_dir}; available: {', '.join(have)}")
            suites.append(p)
        fd, jpath = tempfile.mkstemp(suffix=".json", prefix="fasthw6-bench-")
        os.close(fd)
        files = [jpath]
        cmd = [sys.executable, "-m", "pytest", *(suites or [bench_dir]), "-q", "-p", "no:cacheprovider",
               f"--benchmark-json={jpath}", "--benchmark-sort=name"]
        # the benchmarks run in a pytest session of their own: not as a worker of one this
        # command may have been started from (pytest-benchmark switches itself off there)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("PYTEST_XDIST_") and k != "PYTEST_CURRENT_TEST"}
        if args.quick:
            env["FASTHW6_BENCH_QUICK"] = "1"
            # one timed round per case, no compile-time-in-a-fresh-process cases, and not the
            # naive document-method backend (seconds per call); suites may read
            # FASTHW6_BENCH_QUICK to shrink their problem sizes as well
            cmd += ["--benchmark-min-rounds=1", "--benchmark-max-time=0.05", "--benchmark-warmup=off",
                    "-k", "not jit and not numpy" + (f" and ({args.k})" if args.k else "")]
        elif args.k:
            cmd += ["-k", args.k]
        print(f"running: {' '.join(cmd)}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=os.path.dirname(bench_dir), env=env, text=True,
                              stdout=None if args.verbose else subprocess.PIPE,
                              stderr=subprocess.STDOUT if not args.verbose else None)
        if proc.returncode not in (0, 5):
            if proc.stdout:
                sys.stderr.write(proc.stdout[-6000:])
            raise CLIError(f"benchmark run failed (pytest exit status {proc.returncode})")
        print(f"benchmarks ran in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    merged = {"benchmarks": []}
    for p in files:
        try:
            with open(p, encoding="utf-8") as f:
                d = json.load(f)
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CLIError(f"{p}: cannot read benchmark JSON ({exc})") from None
        benches = d.get("benchmarks", []) if isinstance(d, dict) else None
        if not isinstance(benches, list) or not all(isinstance(b, dict) for b in benches):
            raise CLIError(f"{p}: not pytest-benchmark JSON: expected an object whose "
                           f"'benchmarks' is a list of objects")
        merged["benchmarks"].extend(benches)
        merged.setdefault("machine_info", d.get("machine_info", {}))
    if not merged["benchmarks"]:
        raise CLIError("no benchmark results (every case skipped or deselected)")
    try:
        text = report.render(merged)
    except (KeyError, TypeError, AttributeError, ValueError, ZeroDivisionError) as exc:
        raise CLIError(f"not pytest-benchmark JSON with fasthw6's extra_info: "
                       f"{type(exc).__name__}: {exc}") from None
    print(text)
    if args.save_json:
        with atomic_output(args.save_json) as out:
            json.dump(merged, out, indent=1)
    if args.plot:
        plot_throughput(report.rows(merged), args.plot)
        print(f"\nplot written to {args.plot}", file=sys.stderr)
    return 0


def plot_throughput(rows, path) -> None:
    """PNG of throughput against problem size (work per call), one panel per benchmark group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["time"] > 0]
    groups = list(dict.fromkeys(r["group"] for r in rows))
    if not groups:
        raise CLIError("nothing to plot: no throughput rows")
    ncol = min(3, len(groups))
    nrow = -(-len(groups) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5.2 * ncol, 3.8 * nrow), squeeze=False)
    for ax, g in zip(axes.flat, groups):
        sub = [r for r in rows if r["group"] == g]
        for impl in dict.fromkeys(r["impl"] for r in sub):
            pts = sorted((r["throughput"] * r["time"], r["throughput"]) for r in sub if r["impl"] == impl)
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=impl)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(g, fontsize=9)
        ax.set_xlabel(f"problem size (work per call, {sub[0]['unit'].split('/')[0]})")
        ax.set_ylabel(f"throughput ({sub[0]['unit']})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(groups):]:
        ax.set_visible(False)
    fig.tight_layout()
    with atomic_output(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
