"""The report's content: its sections, and numbers equal to the evaluation's and the sample's."""

from __future__ import annotations

from pathlib import Path

from pipeline.evaluation import EvalResult
from pipeline.report import build_report, fmt
from pipeline.rundir import RunDir


def _rows(markdown: str, header: str) -> list[list[str]]:
    """The table rows (cells) of the section titled ``header``."""
    section = markdown.split(f"## {header}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("|")]
    return [[c.strip() for c in row] for row in rows[2:]]  # skip the header and the rule


def test_report_has_every_section_and_figure(toy_run):
    text = toy_run.report.markdown
    assert text.startswith(f"# Report: {toy_run.cfg.run_name}\n")
    assert f"Trained for {toy_run.trained.epochs} epochs ({toy_run.trained.steps} steps)." in text
    for section in ("## Metrics", "## MCMC diagnostics", "## Last epoch"):
        assert section in text
    assert set(toy_run.report.figures) == {"samples", "curves", "trace"}
    for name, path in toy_run.report.figures.items():
        assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"![{name}]({Path(path).name})" in text


def test_report_numbers_equal_the_evaluations(toy_run):
    rows = {r[0]: r for r in _rows(toy_run.report.markdown, "Metrics")}
    assert set(rows) == {r.metric for r in toy_run.evaluation.results}
    for r in toy_run.evaluation.results:
        assert rows[r.metric][1] == fmt(r.value) and rows[r.metric][3] == str(r.num_samples)
    ll = toy_run.evaluation.likelihood
    assert f"log Z {ll.log_z:.2f}" in rows["log_likelihood"][5]


def test_report_diagnostics_and_last_epoch_equal_the_stages(toy_run):
    e = toy_run.samples.diagnostics["energy"]
    assert f"R̂ {e['rhat']:.4f}" in toy_run.report.markdown and f"{e['chains']} chains × {e['draws']} draws" in \
        toy_run.report.markdown
    section = toy_run.report.markdown.split("## Last epoch\n", 1)[1]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    keys = [c.strip() for c in lines[0].strip("|").split("|")]
    values = [c.strip() for c in lines[2].strip("|").split("|")]
    last = RunDir(Path(toy_run.trained.run_dir)).epochs()[-1]
    assert keys == list(last) and values == [fmt(v) for v in last.values()]


def test_report_rebuilt_from_the_run_directory_alone_is_the_same(toy_run):
    """Without the typed results handed over, the report reads them back from the run directory."""
    again = build_report(toy_run.trained.run_dir)
    assert again.markdown == toy_run.report.markdown
    stored = EvalResult.read(RunDir(Path(toy_run.trained.run_dir)))
    assert stored.results == toy_run.evaluation.results  # typed round trip, likelihood included
