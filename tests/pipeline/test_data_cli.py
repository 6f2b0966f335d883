"""``boltzgan data prepare|info`` through Typer's runner: summary, cache hit, clean errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from pipeline.cli_data import app

runner = CliRunner()


def test_prepare_then_cached_then_info(idx_dir, tmp_path):
    args = ["prepare", f"idx:{idx_dir}", "--out", str(tmp_path / "out"), "--binarize", "threshold",
            "--threshold", "0.25", "--limit", "20"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert first.output.startswith("prepared: 20 train + 10 test, shape (1, 6, 5), binarised (threshold)")
    second = runner.invoke(app, args)
    assert second.exit_code == 0 and second.output.startswith("cached")
    info = runner.invoke(app, ["info", str(tmp_path / "out")])
    meta = json.loads(info.output)
    assert (meta["n_train"], meta["threshold"], meta["source"]) == (20, 0.25, f"idx:{idx_dir}")


def test_user_errors_are_one_line_on_stderr_with_exit_code_2(tmp_path):
    bad = runner.invoke(app, ["prepare", "idz:/nowhere", "--out", str(tmp_path / "o")])
    assert bad.exit_code == 2 and bad.stderr.startswith("error: data.source: 'idz:/nowhere' is not a known source")
    assert "Traceback" not in bad.output and "\n" not in bad.stderr.strip()
    info = runner.invoke(app, ["info", str(tmp_path)])
    assert info.exit_code == 2 and "is not a prepared dataset" in info.stderr
    choice = runner.invoke(app, ["prepare", "digits", "--out", str(tmp_path / "o"), "--scale", "wide"])
    assert choice.exit_code == 2 and "symmetric" in choice.output  # the valid choices are listed
    assert not (tmp_path / "o").exists()


def test_help_explains_every_option():
    text = runner.invoke(app, ["prepare", "--help"], env={"COLUMNS": "200"}).output
    for option in ("--out", "--scale", "--binarize", "--threshold", "--test-fraction", "--seed", "--image-size",
                   "--resize", "--channels", "--limit", "--toy-samples"):
        assert option in text
    flat = "".join(text.split()).replace("│", "")  # rich wraps the choice lists inside its box
    assert "<refuse|bilinear|nearest>" in flat and "<none|threshold|stochastic>" in flat
