"""Bad input to the analysis commands (`fit`, `plot`, `intervention`, `figures`; issue 18): one line each, at the
command line, naming what was wrong and what to do; rows an analysis cannot use are reported, never dropped
silently; a bootstrap that will take long says so up front and reports its progress to the log.

Tables are small synthetic CSVs on one shifted power law, written in tmp_path.
"""

import logging

import numpy as np
import pandas as pd
import pytest
from conftest import run_main

from llm_line.analysis import bootstrap, figures, fit, intervention, plot, progress
from llm_line.analysis.groups import fit_groups


def law_table(path, groups=("a",), points=12, **columns):
    """A table on one shifted power law per group (12 checkpoints each), enough for a fit; `columns` added."""
    x = np.tile(np.linspace(2.5, 4.0, points), len(groups))
    table = pd.DataFrame(
        {
            "Name": [f"model-{i}" for i in range(len(x))],
            "Pretraining Data": np.repeat(groups, points),
            "Architecture": "GPT",
            "x": x,
            "y": 1.5 + 0.8 * (x - 1.8) ** 1.1,
            **columns,
        }
    )
    table.to_csv(path, index=False)
    return path


def last_line(text):
    return text.strip().splitlines()[-1]


def test_an_unknown_group_column_names_the_option_and_lists_the_choices(tmp_path, capsys):
    """It used to be `error: Nope`."""
    table = law_table(tmp_path / "t.csv")
    argv = ["--data", str(table), "--x", "x", "--y", "y", "--group", "Nope", "--base", "a", "--bootstrap", "0"]
    code, _, err = run_main(intervention.main, argv, capsys)
    assert code == 2
    assert last_line(err).endswith(
        "error: --group: no column 'Nope' in the table; did you mean 'Name'? "
        "Columns for --group: 'Name', 'Pretraining Data', 'Architecture', 'x', 'y', 'Source'"
    )


@pytest.mark.parametrize(
    "main, option, value, expected",
    [
        (fit.main, "--x", "xx", "--x: no column 'xx' in the table; did you mean 'x'? Columns for --x: 'x', 'y'"),
        (fit.main, "--y", "Hellaswag", "--y: no column 'Hellaswag' in the table; columns for --y: 'x', 'y'"),
        (plot.main, "--marker", "Arch", "--marker: no column 'Arch' in the table; did you mean 'Architecture'?"),
        (plot.main, "--group", "Data", "--group: no column 'Data' in the table; columns for --group: 'Name', "),
    ],
)
def test_an_unknown_column_names_the_option_the_closest_names_and_the_choices(
    tmp_path, capsys, main, option, value, expected
):
    table = law_table(tmp_path / "t.csv")
    argv = ["--data", str(table), "--x", "x", "--y", "y", option, value, "--bootstrap", "0"]
    if main is plot.main:
        argv += ["-o", str(tmp_path / "fig")]
    code, _, err = run_main(main, argv, capsys)
    assert code == 2 and expected in last_line(err)
    assert not list(tmp_path.glob("fig*"))


def test_an_unknown_base_lists_the_groups(tmp_path, capsys):
    table = law_table(tmp_path / "t.csv", groups=("a", "b"))
    argv = ["--data", str(table), "--x", "x", "--y", "y", "--group", "Pretraining Data", "--base", "c"]
    code, _, err = run_main(intervention.main, [*argv, "--bootstrap", "0"], capsys)
    assert code == 2
    assert last_line(err).endswith("--base: no rows with Pretraining Data = 'c'; the groups are 'a', 'b'")


def test_a_long_bootstrap_is_announced_and_reports_its_progress_to_the_log(tmp_path, capsys, caplog, monkeypatch):
    """Batches of 100 resamples, the first 20 timed; every estimate "long" and a progress line after each batch
    (what `--bootstrap 100000000` meets after a minute, here in a few)."""
    monkeypatch.setattr(bootstrap, "BATCH", 100)
    monkeypatch.setattr(bootstrap, "FIRST_BATCH", 20)
    monkeypatch.setattr(progress, "LONG", 0.0)
    monkeypatch.setattr(progress, "EVERY", 0.0)
    table = law_table(tmp_path / "t.csv")
    with caplog.at_level(logging.INFO, logger="llm_line"):
        code, out, _ = run_main(fit.main, ["--data", str(table), "--x", "x", "--y", "y", "--bootstrap", "320"], capsys)
    assert code == 0 and "a: 320 of 320 resamples fitted" in out
    (estimate, *lines) = [r for r in caplog.records if r.name == "llm_line.analysis.progress"]
    assert estimate.levelno == logging.WARNING
    assert estimate.getMessage().startswith("bootstrap a: 320 resamples will take about ")
    assert "(the first 20 took " in estimate.getMessage()
    assert "a smaller --bootstrap is faster (the default, 1000, gives 95% intervals)" in estimate.getMessage()
    assert [line.getMessage().split(" (")[0] for line in lines] == [
        "bootstrap a: 120 of 320 resamples",
        "bootstrap a: 220 of 320 resamples",
    ]


def test_a_bootstrap_in_batches_draws_the_same_resamples(tmp_path, monkeypatch):
    """Batching changes where the work stops to look at the clock, not which resamples are drawn: a bootstrap of
    one batch (every bootstrap up to `bootstrap.BATCH`, the default 1000 included) is the same as before batching, and
    one cut into batches draws the same resamples (equal up to rounding)."""
    table = pd.read_csv(law_table(tmp_path / "t.csv"))
    table["y"] += np.random.default_rng(0).normal(0, 0.01, len(table))
    (whole,) = fit_groups(table, "x", "y", n_boot=300, seed=4, irreducible="min")
    monkeypatch.setattr(bootstrap, "BATCH", 70)
    monkeypatch.setattr(bootstrap, "FIRST_BATCH", 10)
    (cut,) = fit_groups(table, "x", "y", n_boot=300, seed=4, irreducible="min")
    assert whole.n_boot == cut.n_boot == 300
    np.testing.assert_allclose(np.array(cut.boot), np.array(whole.boot), rtol=1e-9)


def hostile_table(path):
    """The law table with an infinite x, an infinite y and a missing y, and an accuracy column beside its loss."""
    table = pd.read_csv(law_table(path, **{"PIQA Accuracy": np.linspace(0.3, 0.7, 12)}))
    table["PIQA Loss"] = table["x"] + 0.1
    table.loc[3, "y"], table.loc[5, "x"], table.loc[7, "y"] = np.inf, np.inf, np.nan
    table.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("main", [fit.main, plot.main, intervention.main])
def test_rows_without_a_finite_loss_are_reported_in_one_line(tmp_path, capsys, main):
    """An inf loss used to be dropped silently (and an infinite x broke a plot's axes)."""
    argv = ["--data", str(hostile_table(tmp_path / "t.csv")), "--x", "x", "--y", "y", "--bootstrap", "0"]
    argv += {
        plot.main: ["-o", str(tmp_path / "fig")],
        intervention.main: ["--group", "Architecture", "--base", "GPT"],
    }.get(main, [])
    code, out, err = run_main(main, argv, capsys)
    assert code == 0
    (line,) = [line for line in err.splitlines() if "finite" in line]
    assert line == (
        "warning: 3 of 12 rows lack a finite value, left out of each law on that column: 'x' inf in 1 (model-5); "
        "'y' inf in 1 (model-3); 'y' missing (empty or nan) in 1 (model-7)"
    )
    assert "inf" not in out.replace("info", "")  # no infinite number reaches a result


def test_the_rows_report_names_a_few_rows_and_counts_the_rest(tmp_path, capsys):
    table = pd.read_csv(law_table(tmp_path / "t.csv", points=20))
    table.loc[[2, 4, 6, 8, 10], "y"] = np.inf
    table.to_csv(tmp_path / "t.csv", index=False)
    code, _, err = run_main(
        fit.main, ["--data", str(tmp_path / "t.csv"), "--x", "x", "--y", "y", "--bootstrap", "0"], capsys
    )
    assert code == 0 and "'y' inf in 5 (model-2, model-4, model-6, ...)" in err


def test_an_accuracy_fitted_as_a_loss_is_warned_about(tmp_path, capsys):
    argv = ["--data", str(hostile_table(tmp_path / "t.csv")), "--x", "x", "--y", "PIQA Accuracy", "--bootstrap", "0"]
    code, _, err = run_main(fit.main, argv, capsys)
    assert code == 0
    assert (
        "warning: --y 'PIQA Accuracy' looks like an accuracy, not a loss (its name; values 0.3 to 0.7): the law "
        "L_y = K (L_x - E_x)^κ + E_y is for losses that fall toward an irreducible E as models improve, while an "
        "accuracy rises; use its loss column ('PIQA Loss')"
    ) in err.splitlines()


@pytest.mark.parametrize(
    "average, expected",
    [
        (
            "mixed=x,PIQA Accuracy",
            "warning: --average 'mixed' averages the accuracy column(s) 'PIQA Accuracy' with the loss(es) 'x': an "
            "accuracy rises as a loss falls, so their mean measures neither",
        ),
        (
            "acc=PIQA Accuracy,PIQA Accuracy",
            "warning: --average 'acc' is a mean of accuracies ('PIQA Accuracy', 'PIQA Accuracy'), not a loss",
        ),
    ],
)
def test_an_accuracy_averaged_as_a_loss_is_warned_about(tmp_path, capsys, average, expected):
    name = average.split("=")[0]
    argv = ["--data", str(hostile_table(tmp_path / "t.csv")), "--x", "x", "--y", name, "--average", average]
    code, _, err = run_main(fit.main, [*argv, "--bootstrap", "0"], capsys)
    assert code == 0 and any(line.startswith(expected) for line in err.splitlines())


def test_an_average_that_would_replace_a_column_is_refused_before_any_work(tmp_path, capsys):
    table = law_table(tmp_path / "t.csv", **{"PIQA Loss": np.linspace(2.0, 3.0, 12)})
    argv = ["--data", str(table), "--x", "x", "--y", "y", "--average", "y=x,PIQA Loss", "--csv", str(tmp_path / "o")]
    code, out, err = run_main(fit.main, argv, capsys)
    assert code == 2 and out == "" and not list(tmp_path.glob("o*"))
    assert last_line(err).endswith(
        "error: --average 'y=x,PIQA Loss': the table already has a column 'y', which the average would replace; "
        "give the average another name (--average 'Mean y=x,PIQA Loss')"
    )


def test_the_same_table_twice_is_refused(tmp_path, capsys):
    """Every row would count twice (it used to drop them all as duplicates, in a line naming every row)."""
    table = str(law_table(tmp_path / "t.csv"))
    code, _, err = run_main(fit.main, ["--data", table, "--data", table, "--x", "x", "--y", "y"], capsys)
    assert code == 2
    assert last_line(err).endswith(
        f"error: argument --data: {table} is named twice; each of its rows would count twice"
    )


def test_duplicate_rows_are_reported_with_a_few_examples(tmp_path, capsys):
    table = pd.read_csv(law_table(tmp_path / "t.csv", **{"z Loss": np.arange(12.0)}))
    pd.concat([table, table.iloc[:5]]).to_csv(tmp_path / "t.csv", index=False)
    code, _, err = run_main(
        fit.main, ["--data", str(tmp_path / "t.csv"), "--x", "x", "--y", "y", "--bootstrap", "0"], capsys
    )
    (line,) = [line for line in err.splitlines() if "duplicate" in line]
    assert code == 0 and line.startswith("dropped 5 duplicate row(s)")
    named = line.split("keeps them): ")[1].split("; ")
    assert [n.split(" (Source")[0] for n in named] == [
        "row 12 (model-0)",
        "row 13 (model-1)",
        "row 14 (model-2)",
        "...",
    ]


def test_a_parquet_file_that_is_not_one_is_one_line(tmp_path, capsys):
    bad = tmp_path / "t.parquet"
    bad.write_text("x,y\n1,2\n")
    code, _, err = run_main(fit.main, ["--data", str(bad), "--x", "x", "--y", "y"], capsys)
    assert code == 2 and f"error: {bad}: not a readable table (" in last_line(err)


@pytest.mark.parametrize(
    "content, expected",
    [
        (None, "--irreducible-from {path}: no such file; give a CSV with columns group, loss, E"),
        ("", "--irreducible-from {path}: an empty file; give a CSV with columns group, loss, E"),
    ],
)
def test_an_irreducible_table_that_is_missing_or_empty_is_one_line(tmp_path, capsys, content, expected):
    """A missing file used to print `error: 2`, an empty one a traceback."""
    path = tmp_path / "E.csv"
    if content is not None:
        path.write_text(content)
    argv = ["--data", str(law_table(tmp_path / "t.csv")), "--x", "x", "--y", "y", "--irreducible-from", str(path)]
    code, _, err = run_main(fit.main, argv, capsys)
    assert code == 2 and last_line(err).endswith("error: " + expected.format(path=path))


@pytest.mark.parametrize(
    "option, expected",
    [
        ("--run-col", "--run-col: no column 'Nope' in the table; did you mean 'Name'? Columns for --run-col: 'Name', "),
        ("--size-col", "--size-col: no column 'Nope' in the table; numeric columns for --size-col: 'x', 'y'"),
        ("--tokens-col", "--tokens-col: no column 'Nope' in the table; numeric columns for --tokens-col: 'x', 'y'"),
    ],
)
def test_a_named_run_size_or_tokens_column_must_exist(tmp_path, capsys, option, expected):
    """They used to be ignored: the checkpoints then counted as independent, or E fell back to the minimum."""
    argv = ["--data", str(law_table(tmp_path / "t.csv")), "--x", "x", "--y", "y", option, "Nope", "--bootstrap", "0"]
    code, _, err = run_main(fit.main, argv, capsys)
    assert code == 2 and expected in last_line(err)


def test_a_negative_seed_is_refused_where_parsed(tmp_path, capsys):
    """numpy refused it deep in the bootstrap, with a traceback."""
    argv = ["--data", str(law_table(tmp_path / "t.csv")), "--x", "x", "--y", "y", "--seed", "-1"]
    code, _, err = run_main(fit.main, argv, capsys)
    assert code == 2 and last_line(err).endswith("error: argument --seed: -1 cannot be negative")


def test_a_prediction_where_the_law_overflows_says_so(tmp_path, capsys):
    """It used to print `-> y = inf` as a prediction."""
    argv = ["--data", str(law_table(tmp_path / "t.csv")), "--x", "x", "--y", "y", "--predict", "1e300", "3"]
    code, out, _ = run_main(fit.main, [*argv, "--bootstrap", "0"], capsys)
    assert code == 0 and "= inf" not in out
    assert "predict a at 1e+300: the law gives no finite y-loss at x = 1e+300 (it overflows); predict within " in out
    assert "predict a: x = 3 -> y = " in out


def test_a_where_value_no_row_has_is_refused_with_the_values(tmp_path, capsys):
    """A typo in one value used to drop that group silently (or leave no rows, naming nothing)."""
    table = str(law_table(tmp_path / "t.csv", groups=("C4", "FineWeb-Edu")))
    argv = ["--data", table, "--x", "x", "--y", "y", "--where", "Pretraining Data=C4,FinWeb-Edu"]
    code, _, err = run_main(fit.main, argv, capsys)
    assert code == 2
    assert last_line(err).endswith(
        "error: --where Pretraining Data=FinWeb-Edu: no row has Pretraining Data = 'FinWeb-Edu'; did you mean "
        "'FineWeb-Edu'? Its values: 'C4', 'FineWeb-Edu'"
    )


def test_conditions_that_no_row_meets_together_name_them(tmp_path, capsys):
    table = str(law_table(tmp_path / "t.csv", groups=("C4", "FineWeb-Edu")))
    argv = ["--data", table, "--x", "x", "--y", "y", "--where", "Pretraining Data=C4", "--where", "x>5"]
    code, _, err = run_main(plot.main, [*argv, "-o", str(tmp_path / "fig")], capsys)
    assert code == 2 and not list(tmp_path.glob("fig*"))
    assert last_line(err).endswith(
        "error: no rows left after --where Pretraining Data=C4 --where x>5: no row meets all of them"
    )


def test_figures_reports_infinite_measurements_in_one_line(tmp_path, capsys):
    table = pd.read_csv(law_table(tmp_path / "t.csv", **{"C4 Validation Loss": np.linspace(3.0, 4.0, 12)}))
    table.loc[2, "C4 Validation Loss"] = np.inf
    table.to_csv(tmp_path / "t.csv", index=False)
    code, _, err = run_main(figures.main, ["--data", str(tmp_path / "t.csv"), "-o", str(tmp_path / "figs")], capsys)
    assert code in (0, 1)  # whatever the recipes can draw from these rows
    assert (
        "warning: 1 of 12 rows hold an infinite value, left out like a missing one: "
        "'C4 Validation Loss' inf in 1 (model-2)"
    ) in err.splitlines()
