"""``repro.io.report``: what the benchmark scripts print is what they write."""

from __future__ import annotations

from repro.io import report


def test_report_prints_and_writes_the_same_text(tmp_path, capsys):
    out = tmp_path / "new" / "bench.md"
    text = report(["# title", "", "| a |", "|---|"], out)
    assert text == "# title\n\n| a |\n|---|\n"
    assert out.read_text() == text
    assert capsys.readouterr().out == text + "\n"
    assert [p.name for p in out.parent.iterdir()] == ["bench.md"]  # no temporary file left


def test_report_without_out_writes_nothing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert report(["x"]) == "x\n"
    assert capsys.readouterr().out == "x\n\n"
    assert list(tmp_path.iterdir()) == []
