"""The ``boltzgan`` commands and their exit codes: 0 on success, 2 with a one-paragraph error."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli import app, main
from pipeline.errors import UserError
from pipeline.rundir import RunDir

runner = CliRunner()


def _main(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """Run the console-script entry (which turns user errors into exit code 2)."""
    monkeypatch.setattr(sys, "argv", ["boltzgan", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    return exc.value.code, capsys.readouterr().err


@pytest.fixture
def run_copy(toy_run, tmp_path) -> Path:
    """A copy of the toy family's finished run, so commands here do not change the shared one."""
    return Path(shutil.copytree(toy_run.trained.run_dir, tmp_path / "toy-bernoulli"))


def test_presets_and_config_show():
    listed = runner.invoke(app, ["presets"])
    assert listed.exit_code == 0 and "bm-tiny" in listed.output and "demo" in listed.output
    shown = runner.invoke(app, ["config", "show", "bm-tiny", "--set", "train.epochs=3"])
    assert shown.exit_code == 0 and "epochs: 3" in shown.output and "family: bm" in shown.output


def test_config_errors_exit_with_2_and_name_the_fix(monkeypatch, capsys):
    code, err = _main(monkeypatch, capsys, "config", "show", "demo", "--set", "evaluate.metrics=[fdi]")
    assert code == 2 and "evaluate.metrics = 'fdi' is not known; did you mean 'fid'?" in err
    code, err = _main(monkeypatch, capsys, "config", "show", "demo", "--set", "sample.sampler=mala")
    assert code == 2 and "sample.sampler='mala' is not a sampler of the rbm family; use one of gibbs" in err
    code, err = _main(monkeypatch, capsys, "config", "show", "no-such-preset")
    assert code == 2 and "preset" in err
    result = runner.invoke(app, ["config", "show", "demo", "--set", "train.epoch=3"])
    assert isinstance(result.exception, UserError) and "did you mean 'train.epochs'" in str(result.exception)


def test_train_then_refuse_to_overwrite(tmp_path, monkeypatch, capsys):
    args = ["train", "bm-tiny", "--set", f"output.root={tmp_path}", "--set", "resources.num_workers=0",
            "--set", "train.epochs=1", "--set", "data.limit=100"]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    run = RunDir(tmp_path / "bm-tiny")
    assert run.has_model() and run.read_state()["epoch"] == 1
    code, err = _main(monkeypatch, capsys, *args)
    assert code == 2 and "--resume" in err


def test_sample_evaluate_report_on_a_run(run_copy, monkeypatch, capsys):
    sampled = runner.invoke(app, ["sample", str(run_copy), "--chains", "8", "--steps", "4", "--burn-in", "1",
                                  "--workers", "0"])
    assert sampled.exit_code == 0, sampled.output
    assert RunDir(run_copy).samples.read_manifest()["chains"] == 8
    evaluated = runner.invoke(app, ["evaluate", str(run_copy), "--set", "evaluate.num_samples=24"])
    assert evaluated.exit_code == 0, evaluated.output
    assert "log_likelihood" in evaluated.output
    stored = RunDir(run_copy).read_evaluation()
    assert {r["metric"] for r in stored["results"]} == {"fid", "fid_real_train_vs_test", "log_likelihood"}
    reported = runner.invoke(app, ["report", str(run_copy)])
    assert reported.exit_code == 0 and (run_copy / "report" / "report.md").is_file()


def test_stage_commands_fail_clearly(run_copy, tmp_path, monkeypatch, capsys):
    code, err = _main(monkeypatch, capsys, "sample", str(run_copy), "--set", "sample.sampler=gibbs")
    assert code == 2 and "not a sampler of the toy-bernoulli family" in err
    code, err = _main(monkeypatch, capsys, "evaluate", str(run_copy), "--set", "evaluate.feature=incepton")
    assert code == 2 and "evaluate.feature='incepton' is not a known extractor" in err
    code, err = _main(monkeypatch, capsys, "evaluate", str(tmp_path / "nowhere"))
    assert code == 2 and "nowhere" in err
    code, err = _main(monkeypatch, capsys, "sample", str(tmp_path / "nowhere"))
    assert code == 2 and "not a run directory" in err


def test_deploy_needs_a_prefect_server(monkeypatch, capsys):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    code, err = _main(monkeypatch, capsys, "deploy", "demo")
    assert code == 2 and "PREFECT_API_URL" in err


def test_unknown_command_is_a_usage_error():
    result = runner.invoke(app, ["trian"])
    assert result.exit_code == 2 and "No such command" in result.output
