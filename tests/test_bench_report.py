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
