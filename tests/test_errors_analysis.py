"""Bad input to the analysis commands (`fit`, `plot`, `intervention`, `figures`; issue 18): one line each, at the
command line, naming what was wrong and what to do; rows an analysis cannot use are reported, never dropped
silently; a bootstrap that will take long says so up front and reports its progress to the log.

Tables are small synthetic CSVs on one shifted power law, written in tmp_path.
"""

import logging

import numpy as np
import pandas as pd
import pytest

from llm_line import fit, intervention, plot, progress


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


def run(main, argv, capsys):
    """The exit status, stdout and stderr of `main(argv)`, whether it returns or exits (argparse)."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def last_line(text):
    return text.strip().splitlines()[-1]


def test_an_unknown_group_column_names_the_option_and_lists_the_choices(tmp_path, capsys):
    """It used to be `error: Nope`."""
    table = law_table(tmp_path / "t.csv")
    argv = ["--data", str(table), "--x", "x", "--y", "y", "--group", "Nope", "--base", "a", "--bootstrap", "0"]
    code, _, err = run(intervention.main, argv, capsys)
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
    code, _, err = run(main, argv, capsys)
    assert code == 2 and expected in last_line(err)
    assert not list(tmp_path.glob("fig*"))


def test_an_unknown_base_lists_the_groups(tmp_path, capsys):
    table = law_table(tmp_path / "t.csv", groups=("a", "b"))
    argv = ["--data", str(table), "--x", "x", "--y", "y", "--group", "Pretraining Data", "--base", "c"]
    code, _, err = run(intervention.main, [*argv, "--bootstrap", "0"], capsys)
    assert code == 2
    assert last_line(err).endswith("--base: no rows with Pretraining Data = 'c'; the groups are 'a', 'b'")


def test_a_long_bootstrap_is_announced_and_reports_its_progress_to_the_log(tmp_path, capsys, caplog, monkeypatch):
    """Batches of 100 resamples, the first 20 timed; every estimate "long" and a progress line after each batch
    (what `--bootstrap 100000000` meets after a minute, here in a few)."""
    monkeypatch.setattr(fit, "BATCH", 100)
    monkeypatch.setattr(fit, "FIRST_BATCH", 20)
    monkeypatch.setattr(progress, "LONG", 0.0)
    monkeypatch.setattr(progress, "EVERY", 0.0)
    table = law_table(tmp_path / "t.csv")
    with caplog.at_level(logging.INFO, logger="llm_line"):
        code, out, _ = run(fit.main, ["--data", str(table), "--x", "x", "--y", "y", "--bootstrap", "320"], capsys)
    assert code == 0 and "a: 320 of 320 resamples fitted" in out
    (estimate, *lines) = [r for r in caplog.records if r.name == "llm_line.progress"]
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
    one batch (every bootstrap up to `fit.BATCH`, the default 1000 included) is the same as before batching, and
    one cut into batches draws the same resamples (equal up to rounding)."""
    table = pd.read_csv(law_table(tmp_path / "t.csv"))
    table["y"] += np.random.default_rng(0).normal(0, 0.01, len(table))
    (whole,) = fit.fit_groups(table, "x", "y", n_boot=300, seed=4, irreducible="min")
    monkeypatch.setattr(fit, "BATCH", 70)
    monkeypatch.setattr(fit, "FIRST_BATCH", 10)
    (cut,) = fit.fit_groups(table, "x", "y", n_boot=300, seed=4, irreducible="min")
    assert whole.n_boot == cut.n_boot == 300
    np.testing.assert_allclose(np.array(cut.boot), np.array(whole.boot), rtol=1e-9)
