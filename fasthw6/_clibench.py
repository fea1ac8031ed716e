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

from ._cliutil import CLIError, atomic_output, refuse_overwrite, stderr_line


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
            # one timed round per case, no compile-time-in-a-fresh-process cases; the suites
            # read FASTHW6_BENCH_QUICK to shrink their batches (bench/conftest.py: batch)
            cmd += ["--benchmark-min-rounds=1", "--benchmark-max-time=0.05", "--benchmark-warmup=off",
                    "-k", "not jit" + (f" and ({args.k})" if args.k else "")]
        elif args.k:
            cmd += ["-k", args.k]
        stderr_line(f"running: {' '.join(cmd)}")
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=os.path.dirname(bench_dir), env=env, text=True,
                              stdout=None if args.verbose else subprocess.PIPE,
                              stderr=subprocess.STDOUT if not args.verbose else None)
        if proc.returncode not in (0, 5):
            if proc.stdout:
                sys.stderr.write(proc.stdout[-6000:])
            raise CLIError(f"benchmark run failed (pytest exit status {proc.returncode})")
        stderr_line(f"benchmarks ran in {time.perf_counter() - t0:.1f} s")
    docs = []
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
        d["benchmarks"] = benches
        docs.append(d)
    merged = report.merge(docs)
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
        stderr_line(f"\nplot written to {args.plot}")
    return 0


# one colour per implementation, the same in every panel: the usual names keep theirs; a variant
# ("numba 2 thread(s)", "numpy matmul") takes its library's colour and a line style or hatch
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
            "#7f7f7f", "#bcbd22", "#17becf", "#6b6ecf", "#000000")
_KNOWN = ("numba", "cython", "numpy", "hmmlearn", "hmmlearn-scaling", "hmmlearn-log", "hmmkay",
          "dynamax", "pomegranate", "torch", "python", "sklearn")
_OTHERS = ("#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#e7ba52", "#3182bd",
           "#31a354")
_DASHES = ("-", "--", ":", "-.")
_HATCHES = ("", "//", "..", "xx")


def impl_colours(impls) -> dict:
    """A fixed colour per implementation name, whatever else the run holds: a known library's
    own, a variant of one ('numba names') its library's, the others one each in sorted order."""
    known = dict(zip(_KNOWN, _PALETTE))
    out = {}
    rest = []
    for name in sorted(set(impls)):
        base = name if name in known else name.split()[0]
        if base in known:
            out[name] = known[base]
        else:
            rest.append(name)
    for i, name in enumerate(rest):
        out[name] = _OTHERS[i % len(_OTHERS)]
    return out


def _variants(impls, colours) -> dict:
    """Within one panel, the n-th implementation of a colour gets the n-th dash and hatch."""
    seen: dict = {}
    out = {}
    for impl in impls:
        k = seen.get(colours[impl], 0)
        seen[colours[impl]] = k + 1
        out[impl] = (_DASHES[k % len(_DASHES)], _HATCHES[k % len(_HATCHES)])
    return out


def _trim_common(cases):
    """Tick labels without the words every case shares (', 2000x500'), and those words."""
    import os.path

    if len(cases) < 2:
        return list(cases), ""
    words = [c.split() for c in cases]
    pre = os.path.commonprefix(words)
    post = os.path.commonprefix([w[::-1] for w in words])[::-1]
    if len(pre) + len(post) >= min(len(w) for w in words):
        return list(cases), ""
    labels = [" ".join(w[len(pre):len(w) - len(post)]).strip(" ,") for w in words]
    return labels, " ".join(pre + post).strip(" ,")


_NUM = r"\d+(?:\.\d+)?"


def sweep_axis(cases):
    """``(label, values)`` when the cases are one size sweep (their names differ in one number
    only, e.g. 'N=3, 2000x500' ... 'N=64, 2000x500': label 'N'), else None: distinct cases."""
    import re

    if len(cases) < 2:
        return None
    skeletons = {re.sub(_NUM, "#", c) for c in cases}
    nums = [re.findall(_NUM, c) for c in cases]
    if len(skeletons) != 1 or len({len(n) for n in nums}) != 1:
        return None
    varying = [k for k in range(len(nums[0])) if len({n[k] for n in nums}) > 1]
    if len(varying) != 1:
        return None
    k = varying[0]
    before = re.split(_NUM, cases[0])[k].rstrip("= ,(")
    label = re.split(r"[ ,(]", before)[-1] or "size"
    return label, [float(n[k]) for n in nums]


def _row_threads(r):
    """A row's thread count: the one its implementation names ('numba 2 thread(s)'), else the
    run's."""
    import re

    m = re.search(r"(\d+) thread", r["impl"])
    return int(m.group(1)) if m else r.get("threads")


def plot_throughput(rows, path) -> None:
    """PNG of the run: one panel per operation, throughput (higher is better; a log axis where
    it spans more than 30x).
    A size sweep (cases that differ in one number) is drawn as lines against that number;
    distinct cases as grouped bars.  Each implementation keeps one colour in every panel, and
    each panel names its machine and thread count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    rows = [r for r in rows if r["time"] > 0]
    groups = list(dict.fromkeys(r["group"] for r in rows))
    if not groups:
        raise CLIError("nothing to plot: no throughput rows")
    colours = impl_colours(r["impl"] for r in rows)
    ncol = min(3, len(groups))
    nrow = -(-len(groups) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(6.0 * ncol, 4.4 * nrow), squeeze=False)
    for ax, g in zip(axes.flat, groups):
        sub = [r for r in rows if r["group"] == g]
        cases = list(dict.fromkeys(r["case"] for r in sub))
        impls = list(dict.fromkeys(r["impl"] for r in sub))
        at = {(r["case"], r["impl"]): r["throughput"] for r in sub}
        sweep = sweep_axis(cases)
        style = _variants(impls, colours)
        ys_all = [at[k] for k in at]
        if sweep:
            label, xs = sweep
            x_of = dict(zip(cases, xs))
            for impl in impls:
                pts = sorted((x_of[c], at[(c, impl)]) for c in cases if (c, impl) in at)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                        linestyle=style[impl][0], color=colours[impl], label=impl)
            ax.set_xscale("log")
            ax.set_xticks(sorted(set(xs)))
            ax.set_xticklabels([f"{v:g}" for v in sorted(set(xs))])
            ax.minorticks_off()
            ax.set_xlabel(label)
        else:
            width = 0.8 / len(impls)
            for j, impl in enumerate(impls):
                xs = [i + (j - (len(impls) - 1) / 2) * width for i, c in enumerate(cases)
                      if (c, impl) in at]
                ys = [at[(c, impl)] for c in cases if (c, impl) in at]
                ax.bar(xs, ys, width=width, color=colours[impl], hatch=style[impl][1],
                       edgecolor="white" if style[impl][1] else None, label=impl)
            labels, shared = _trim_common(cases)
            ax.set_xticks(np.arange(len(cases)))
            many = len(cases) > 3
            ax.set_xticklabels(labels, fontsize=7, rotation=35 if many else 0,
                               ha="right" if many else "center")
            ax.set_xlabel(f"case{f' ({shared})' if shared else ''}", fontsize=8)
        if max(ys_all) > 30 * min(ys_all):  # a wide range on a log axis; else from zero
            ax.set_yscale("log")
        else:
            ax.set_ylim(0, 1.1 * max(ys_all))
        unit = sub[0]["unit"]
        ax.set_ylabel(f"throughput, {unit}\n(higher is better)", fontsize=8)
        threads = sorted({_row_threads(r) for r in sub} - {None})
        tlabel = ("? threads" if not threads else
                  f"{threads[0]} thread{'s' if threads[0] != 1 else ''}" if len(threads) == 1
                  else f"{threads[0]}-{threads[-1]} threads, as labelled")
        machine = "; ".join(dict.fromkeys(r["machine"] or "unknown CPU" for r in sub))
        ax.set_title(f"{g}\n{machine}, {tlabel}", fontsize=8)
        ax.grid(True, which="major", axis="y", alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(groups):]:
        ax.set_visible(False)
    fig.tight_layout()
    with atomic_output(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
