"""The one schema of paper_figures/reported/<study>.csv: every shipped file follows it, and each way
of breaking it is refused naming the file, row and column (repro.reported)."""

from __future__ import annotations

import pytest

from repro.reported import COLUMNS, ReportedError, check, load

HEADER = ",".join(COLUMNS)
GOOD = "toy,Table 2,sine,m,ar,mse,test,history_length=2; task_type=all,0.1,0.01,Table 2 of the paper,primary,"


def test_every_shipped_file_follows_the_schema(root):
    files = sorted((root / "paper_figures" / "reported").glob("*.csv"))
    assert {f.stem for f in files} >= {"hgpo", "nrpr", "oocpll", "mcc", "camel"}
    for f in files:
        check(f, f.stem)


def test_load_expands_the_settings(tmp_path):
    p = tmp_path / "toy.csv"
    p.write_text(f"{HEADER}\n{GOOD}\ntoy,,,,,,,,,,none found,none,the tables were not reachable\n")
    assert check(p, "toy") == 1
    df = load(p)
    assert df.history_length.tolist()[0] == 2 and df.task_type.tolist() == ["all", ""]
    assert df.value.tolist()[0] == 0.1 and df.value.isna().tolist() == [False, True]


@pytest.mark.parametrize(("text", "message"), [
    ("study,value\ntoy,1\n", "header study,value; expected study,table,"),
    (f"{HEADER}\n", "no rows"),
    (f"{HEADER}\n{GOOD.replace('toy,', 'hgpo,', 1)}\n", "row 2: study 'hgpo'; this file is 'toy''s"),
    (f"{HEADER}\n{GOOD.replace(',primary,', ',certain,')}\n", "row 2: confidence 'certain'; allowed: primary"),
    (f"{HEADER}\n{GOOD.replace(',0.1,', ',ten,')}\n", "row 2: value 'ten' is not a number"),
    (f"{HEADER}\n{GOOD.replace('Table 2 of the paper', '')}\n", "row 2: source is empty"),
    (f"{HEADER}\n{GOOD.replace(',0.1,0.01,', ',,,')}\n", "row 2: no value and no note saying why"),
    (f"{HEADER}\n{GOOD.replace('task_type=all', 'task_type')}\n", "row 2: setting 'task_type' is not key=value"),
    (f"{HEADER}\n{GOOD},extra\n", "row 2: 14 fields; expected 13"),
])
def test_schema_errors_name_the_row_and_column(tmp_path, text, message):
    p = tmp_path / "toy.csv"
    p.write_text(text)
    with pytest.raises(ReportedError, match="toy.csv: " + message.replace("(", r"\(").replace(")", r"\)")):
        check(p, "toy")


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ReportedError, match="toy.csv: missing"):
        check(tmp_path / "toy.csv", "toy")
