"""The rows an analysis sees: several files, numeric --where, averages, duplicates, bad values, conventions."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llm_line.analysis import averages, column_checks, plot, row_selection, table
from llm_line.analysis.groups import fit_groups

ROOT = Path(__file__).resolve().parents[1]
RELEASED = ROOT.parent / "shared" / "data" / "llm-line-hf-models.csv"


def small(group="C4", shift=0.0, rows=6):
    x = np.linspace(3.0, 4.0, rows)
    return pd.DataFrame(
        {
            "Name": [f"m{i}" for i in range(rows)],
            "Pretraining Data": group,
            "Architecture": "Llama",
            "Size": 1713670144.0,
            "Steps": np.arange(rows) * 1000.0,
            "A Loss": x,
            "B Loss": 0.8 * (x - 2.0) ** 1.1 + 2.0 + shift,
        }
    )


def test_several_files_are_stacked_with_their_source(tmp_path):
    mine, theirs = tmp_path / "mine.csv", tmp_path / "theirs.csv"
    small("C4").to_csv(mine, index=False)
    small("The Pile", shift=0.1).drop(columns="Architecture").to_csv(theirs, index=False)
    rows = table.load([mine, theirs])
    assert len(rows) == 12 and list(rows["Source"].unique()) == [str(mine), str(theirs)]
    assert rows["Architecture"].isna().sum() == 6  # columns line up; a missing one is empty
    assert row_selection.select(rows, [f"Source={theirs}"])["Pretraining Data"].unique().tolist() == ["The Pile"]


def test_where_compares_numbers_as_numbers_and_nan_means_missing():
    rows = small().assign(Steps=[0.0, 1000.0, np.nan, 3000.0, np.nan, 5000.0])
    assert len(row_selection.select(rows, ["Size=1713670144"])) == 6  # the value reads back as 1713670144.0
    assert row_selection.select(rows, ["Steps=1000,3000"])["Name"].tolist() == ["m1", "m3"]
    assert row_selection.select(rows, ["Steps!=nan"])["Name"].tolist() == ["m0", "m1", "m3", "m5"]
    assert row_selection.select(rows, ["Steps=nan"])["Name"].tolist() == ["m2", "m4"]
    assert row_selection.select(rows, dropna=["Steps"])["Name"].tolist() == ["m0", "m1", "m3", "m5"]
    assert row_selection.select(rows, ["Architecture!=Llama"]).empty
    flags = rows.assign(**{"Intervention: Size": [True, False] * 3})
    assert row_selection.select(flags, ["Intervention: Size=True"])["Name"].tolist() == ["m0", "m2", "m4"]
    with pytest.raises(KeyError, match="not COLUMN=VALUE"):
        row_selection.select(rows, ["Steps"])


@pytest.mark.parametrize(
    "column, value, message",
    [
        ("A Loss", "bad", "column 'A Loss' holds the text 'bad' in row 2 (m2) (Steps 2000.0): a loss must be a number"),
        ("B Loss", -1.0, "column 'B Loss' holds the negative loss -1 in row 2 (m2) (Steps 2000.0): losses are ≥ 0"),
    ],
)
def test_a_value_that_is_no_loss_is_one_line_naming_column_and_row(column, value, message):
    rows = small().astype({column: object})
    rows.loc[2, column] = value
    with pytest.raises(column_checks.DataError) as error:
        fit_groups(rows, "A Loss", "B Loss", n_boot=0)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)
    with pytest.raises(column_checks.DataError, match="column 'Name' holds the text 'm0' in row 0"):
        fit_groups(small(), "Name", "B Loss", n_boot=0)  # --x Name


def test_duplicates_are_dropped_and_reported(tmp_path):
    path = tmp_path / "t.csv"
    small().to_csv(path, index=False)
    reports = []
    rows = table.load([path, path], report=reports.append)
    assert len(rows) == 6 and len(reports) == 1 and reports[0].startswith("dropped 6 duplicate row(s)")
    assert len(table.load([path, path], keep_duplicates=True)) == 12
    # the row with more filled-in columns is the one kept
    one = small().assign(Steps=[0.0, 1000.0, 2000.0, 3000.0, 4000.0, np.nan]).iloc[[5, 4]]
    one.iloc[0, one.columns.get_loc("A Loss")] = one.iloc[1]["A Loss"]
    one.iloc[0, one.columns.get_loc("B Loss")] = one.iloc[1]["B Loss"]
    kept, dropped = table.drop_duplicates(one)
    assert kept["Steps"].tolist() == [4000.0] and dropped["Name"].tolist() == ["m5"]


def test_released_table_holds_one_duplicate_the_fineweb_row_without_steps():
    if not RELEASED.exists():
        pytest.skip(f"the paper's released table is not at {RELEASED}")
    reports = []
    rows = table.load([RELEASED], report=reports.append)
    assert len(rows) == 128 and len(reports) == 1 and "dropped 1 duplicate row(s)" in reports[0]
    fineweb = rows[rows["Pretraining Data"] == "FineWeb-Edu"]
    assert fineweb["Steps"].notna().all() and len(fineweb) == 17


def test_average_builds_the_mean_only_where_every_loss_is_there():
    rows = small().assign(**{"C Loss": [1.0, 2.0, np.nan, 4.0, 5.0, 6.0]})
    with_mean, name = averages.add_average(rows, "Test=B Loss,C Loss")
    assert name == "Test"
    expected = (rows["B Loss"] + rows["C Loss"]) / 2
    assert np.allclose(with_mean["Test"], expected, equal_nan=True) and with_mean["Test"].isna().sum() == 1
    assert averages.add_average(rows, "A Loss, B Loss")[1] == "Mean(A Loss, B Loss)"
    with pytest.raises(KeyError, match="give two or more"):
        averages.add_average(rows, "A Loss")


def test_a_group_mixing_loss_conventions_is_refused_unknown_is_allowed():
    mixed = pd.concat(
        [small().assign(Convention="paper"), small(shift=0.05).assign(Convention="corrected")], ignore_index=True
    )
    message = (
        "group 'C4' mixes rows of Convention corrected and paper: their losses are computed differently; "
        "fit them apart (--where Convention=corrected, or --group Convention)"
    )
    with pytest.raises(column_checks.DataError) as error:
        fit_groups(mixed, "A Loss", "B Loss", n_boot=0)
    assert str(error.value) == message
    with pytest.raises(column_checks.DataError, match="mixes rows of Convention"):
        plot.figure(mixed, "A Loss", ["B Loss"])
    partly_known = mixed.assign(Convention=["paper"] * 6 + [np.nan] * 6)
    (f,) = fit_groups(partly_known, "A Loss", "B Loss", n_boot=0)
    assert f.n == 12
    by_convention = fit_groups(mixed, "A Loss", "B Loss", "Convention", n_boot=0)
    assert [f.group for f in by_convention] == ["corrected", "paper"] and all(f.fitted for f in by_convention)
    assert "only 6 checkpoints (< 8): too few to check the law's shape" in by_convention[0].warnings


def test_where_compares_numeric_columns_with_less_and_greater():
    rows = pd.concat([small(), small("The Pile").assign(Size=np.nan)], ignore_index=True)
    assert len(row_selection.select(rows, ["A Loss<3.4"])) == 4  # 3.0, 3.2 of each group
    assert (
        len(row_selection.select(rows, ["A Loss<=3.4"])) == 6 and len(row_selection.select(rows, ["A Loss>=3.8"])) == 4
    )
    both = row_selection.select(rows, ["A Loss>3.1", "Pretraining Data=C4", "Steps!=5000"])
    assert both["A Loss"].round(1).tolist() == [3.2, 3.4, 3.6, 3.8]
    assert len(row_selection.select(rows, ["Size>1"])) == 6  # a missing value never passes a comparison
    with pytest.raises(KeyError, match="column 'Architecture' is not numeric"):
        row_selection.select(rows, ["Architecture<3"])
    with pytest.raises(KeyError, match="'four' is not a number"):
        row_selection.select(rows, ["A Loss<four"])


def test_in_domain_cut_uses_each_rows_own_validation_set_and_the_pile_uc_for_the_pile(tmp_path):
    rows = pd.DataFrame(
        {
            "Pretraining Data": ["C4", "C4", "The Pile", "The Pile Deduped", "Dolma"],
            "C4 Validation Loss": [3.5, 4.2, 9.0, 9.0, 3.0],
            "The Pile UC Validation Loss": [9.0, 9.0, 3.9, 4.1, 3.0],
        }
    )
    reports = []
    kept = row_selection.in_domain(rows, 4.0, report=reports.append)
    assert kept.index.tolist() == [0, 2]  # C4 by its C4 loss, The Pile by The Pile UC; Dolma cannot be judged
    assert reports == [
        "--in-domain-below 4: dropped rows whose pretraining data has no validation loss: "
        "Dolma (1 rows, no 'Dolma Validation Loss')"
    ]
    path = tmp_path / "t.csv"
    rows.to_csv(path, index=False)
    assert len(table.load([path], in_domain_below=4.5, report=reports.append)) == 4


def test_the_papers_averages_are_named_presets():
    if not RELEASED.exists():
        pytest.skip(f"the paper's released table is not at {RELEASED}")
    rows = table.load([RELEASED], average=["paper-validation", "paper-test"], report=lambda _: None)
    val_name, val_columns = averages.AVERAGE_PRESETS["paper-validation"]
    test_name, test_columns = averages.AVERAGE_PRESETS["paper-test"]
    assert len(val_columns) == 4 and "FineWeb-Edu Validation Loss" not in val_columns and len(test_columns) == 7
    assert val_name == "Mean Validation Loss (The Pile UC, RefineWeb, Slimpajama, C4)"
    first = rows.dropna(subset=[val_name]).iloc[0]
    assert first[val_name] == pytest.approx(np.mean([first[c] for c in val_columns]))
    assert rows[test_name].notna().sum() > 100
