"""bench/report.py: throughput, ratios and the targets table from pytest-benchmark JSON."""
from __future__ import annotations

import importlib.util
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def report():
    path = os.path.join(ROOT, "bench", "report.py")
    if not os.path.isfile(path):
        pytest.skip("bench/ is not part of an installed package")
    spec = importlib.util.spec_from_file_location("_report_under_test", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _bench(group, case, impl, t, work, baseline):
    return {"stats": {"min": t}, "extra_info": dict(group=group, case=case, impl=impl, work=work,
                                                    unit="x/s", baseline=baseline, threads=1)}


def test_rows_and_targets(report):
    g = "decode (Viterbi)"
    data = {"benchmarks": [
        _bench(g, "N=3", "numba", 1.0, 100.0, "hmmlearn"),
        _bench(g, "N=3", "hmmlearn", 6.0, 100.0, "hmmlearn"),
        _bench(g, "N=16", "numba", 1.0, 100.0, "hmmlearn"),
        _bench(g, "N=16", "hmmlearn", 4.0, 100.0, "hmmlearn"),
    ]}
    rows = {(r["case"], r["impl"]): r for r in report.rows(data)}
    assert rows[("N=3", "numba")]["throughput"] == 100.0
    assert rows[("N=3", "numba")]["ratio"] == 6.0
    targets = {t["case"]: t for t in report.target_rows(data)}
    assert targets["N=3"]["ratio"] == 6.0 and targets["N=3"]["met"]
    assert targets["N=16"]["ratio"] == 4.0 and not targets["N=16"]["met"]
    text = report.render(data)
    assert "| decode (Viterbi): numba vs hmmlearn | N=16 | 4x | >= 5x | **no** |" in text
    assert "| decode (Viterbi): numba vs hmmlearn | N=3 | 6x | >= 5x | yes |" in text


def test_readme_markers(report, tmp_path):
    p = tmp_path / "R.md"
    p.write_text(f"head\n{report.START}\nold\n{report.END}\ntail\n")
    report.update_readme(str(p), "new table")
    assert p.read_text() == f"head\n{report.START}\nnew table\n{report.END}\ntail\n"
    (tmp_path / "bad.md").write_text("no markers")
    with pytest.raises(SystemExit, match="no <!-- bench-table:start -->"):
        report.update_readme(str(tmp_path / "bad.md"), "x")


def test_rows_keyed_by_machine_and_headline(report, tmp_path):
    """Two results files of one benchmark from two machines (or ISAs) stay apart: each ratio is
    taken within its own run, the tables gain a machine column, the headline names it."""
    g = "decode (Viterbi)"
    a = [_bench(g, "N=64", "numba", 1.0, 100.0, "hmmlearn"),
         _bench(g, "N=64", "hmmlearn", 5.0, 100.0, "hmmlearn")]
    b = [_bench(g, "N=64", "numba", 1.0, 100.0, "hmmlearn"),
         _bench(g, "N=64", "hmmlearn", 2.0, 100.0, "hmmlearn")]
    for x in a:
        x["extra_info"]["cpu"] = "CPU A (AVX-512)"
    for x in b:
        x["extra_info"]["cpu"] = "CPU B (AVX2)"
    data = {"benchmarks": a + b}
    ratios = {(r["machine"], r["impl"]): r["ratio"] for r in report.rows(data)}
    assert ratios[("CPU A (AVX-512)", "numba")] == 5.0 and ratios[("CPU B (AVX2)", "numba")] == 2.0
    assert "| machine |" in report.table(data) and "| machine |" in report.target_table(data)
    head = report.headline(data)
    assert "decode (Viterbi) | N=64" in head and "5x" in head and "CPU A (AVX-512)" in head
    doc = tmp_path / "b.md"
    report.write_docs(str(doc), data)
    text = doc.read_text()
    assert "## Targets set by the issues" in text and "CPU B (AVX2)" in text


def test_missing_baseline_and_skipped_cases_are_named(report):
    data = {"benchmarks": [_bench("vae", "(8, 4)", "numba", 1.0, 10, "numpy"),
                           _bench("vae", "(8, 4)", "numpy", 2.0, 10, "numpy"),
                           _bench("svm", "n=5", "numba", 1.0, 10, "sklearn SVC")],
            "not_run": [dict(test="test_fit[sklearn SVC]", reason="sklearn SVC not installed"),
                        dict(test="test_fit[torch]", reason="sklearn SVC not installed")]}
    text = report.table(data)
    assert "| vae | (8, 4) | numba | 1.00 s | 10 x/s | 2x numpy |" in text
    assert "| vae | (8, 4) | numpy | 2.00 s | 5 x/s | 2x numpy |" not in text
    assert "| vae | (8, 4) | numpy | 2.00 s | 5 x/s | 1x numpy |" in text
    assert "| svm | n=5 | numba | 1.00 s | 10 x/s | not run: sklearn SVC (see below) |" in text
    assert "- 2 cases of `test_fit`: sklearn SVC not installed" in text.splitlines()
    assert " - |" not in text  # no row left blank


# --------------------------------------------------------------------------- the plot
@pytest.fixture(scope="module")
def plot():
    from fasthw6 import _clibench

    return _clibench


@pytest.mark.parametrize("cases, want", [
    (["N=3, 2000x500", "N=16, 2000x500", "N=64, 2000x500"], ("N", [3, 16, 64])),
    (["K=1", "K=8", "K=64"], ("K", [1, 8, 64])),
    (["a: 1x1x512x512 k3 s2", "b: 8x64->64 64x64 k3 s2"], None),  # distinct shapes: bars
    (["diag N=3 D=4", "diag N=16 D=4", "diag N=3 D=16"], None),  # two numbers vary
    (["(1024, 4096)", "(32, 64, 56, 56)"], None),
    (["multiply-adds"], None),
])
def test_sweep_or_cases(plot, cases, want):
    got = plot.sweep_axis(cases)
    if want is None:
        assert got is None
    else:
        assert got[0] == want[0] and got[1] == [float(v) for v in want[1]]


def test_colours_fixed_across_panels(plot):
    a = plot.impl_colours(["numba", "hmmlearn", "zeta lib"])
    b = plot.impl_colours(["cython", "numba", "alpha lib", "zeta lib", "numba 2 thread(s)"])
    assert a["numba"] == b["numba"] == b["numba 2 thread(s)"]
    assert len({b["numba"], b["cython"], b["alpha lib"], b["zeta lib"]}) == 4
    # a variant sharing its library's colour is told apart by dash and hatch
    c = plot.impl_colours(["numba 1 thread(s)", "numba 2 thread(s)"])
    style = plot._variants(["numba 1 thread(s)", "numba 2 thread(s)"], c)
    assert style["numba 1 thread(s)"] != style["numba 2 thread(s)"]


def test_trim_common_words(plot):
    assert plot._trim_common(["diag N=3 D=4, 2000x500", "full N=16 D=4, 2000x500"]) == (
        ["diag N=3", "full N=16"], "D=4, 2000x500")
    assert plot._trim_common(["only"]) == (["only"], "")


def test_plot_panels(plot, tmp_path, monkeypatch):
    """One panel per operation: a sweep drawn as lines over its number, cases as bars, the
    y axis naming unit and 'higher is better', the title the machine and thread count."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for n, t in ((3, 1.0), (16, 2.0)):
        for impl, thr in (("numba", 1), ("numba 2 thread(s)", 1)):
            rows.append(dict(group="score", case=f"N={n}, 100x500", impl=impl, time=t,
                             throughput=n / t, unit="state-steps/s", machine="CPU X (AVX2)",
                             threads=thr))
    rows += [dict(group="conv", case=c, impl=i, time=1.0, throughput=v, unit="MAC/s",
                  machine="CPU X (AVX2)", threads=1)
             for c in ("a: 1x1", "b: 8x64") for i, v in (("numba", 5.0), ("torch", 4.0))]
    saved = {}
    monkeypatch.setattr(plt, "close", lambda fig: saved.setdefault("fig", fig))
    plot.plot_throughput(rows, str(tmp_path / "p.png"))
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    ax_sweep, ax_cases = [a for a in saved["fig"].axes if a.get_visible()]
    assert ax_sweep.get_xlabel() == "N" and len(ax_sweep.get_lines()) == 2
    assert [list(ln.get_xdata()) for ln in ax_sweep.get_lines()] == [[3.0, 16.0]] * 2
    assert "higher is better" in ax_sweep.get_ylabel() and "state-steps/s" in ax_sweep.get_ylabel()
    assert "CPU X (AVX2), 1-2 threads" in ax_sweep.get_title()
    assert len(ax_cases.patches) == 4 and not ax_cases.get_lines()
    assert "CPU X (AVX2), 1 thread" in ax_cases.get_title()


def test_cpu_label_tells_generic_brands_apart(report):
    """A brand naming no model (as some virtual machines report) gains family and model; a
    brand with a model number stays as it is; the widest vector extension follows."""
    generic = {"cpu": {"brand_raw": "Intel(R) Xeon(R) Processor", "family": 6, "model": 167,
                       "flags": ["avx2", "avx512f"]}}
    assert report.cpu_label(generic) == "Intel(R) Xeon(R) Processor family 6 model 167 (AVX-512)"
    named = {"cpu": {"brand_raw": "AMD EPYC 7B13", "family": 25, "model": 1, "flags": ["avx2"]}}
    assert report.cpu_label(named) == "AMD EPYC 7B13 (AVX2)"
