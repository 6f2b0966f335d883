"""A re-run of a finished pipeline skips every stage whose stored output was made from the same inputs
(``reuse=True``), and recomputes a stage, and everything downstream of it, when an input changed."""

from __future__ import annotations

from pipeline.config import load_config
from pipeline.data import prepare
from pipeline.engine import train
from pipeline.evaluation import evaluate
from pipeline.report import build_report
from pipeline.rundir import data_dir
from pipeline.sampling import sample
from tests.pipeline import toy_family


def _stages(run_dir, cfg, reuse: bool):
    samples = sample(run_dir, cfg.sample, reuse=reuse)
    evaluation = evaluate(run_dir, cfg.evaluate, samples, reuse=reuse)
    report = build_report(run_dir, evaluation, samples, reuse=reuse)
    return samples, evaluation, report


def test_finished_stages_are_skipped_and_a_changed_input_reruns_what_depends_on_it(tmp_path):
    cfg = load_config(base=toy_family.preset(str(tmp_path)))
    run_dir = train(cfg, prepare(cfg.data, data_dir(cfg))).run_dir
    first = _stages(run_dir, cfg, reuse=True)
    assert not any(stage.skipped for stage in first)  # nothing stored yet
    block = first[0].dir.block(0)
    written = block.stat().st_mtime_ns

    again = _stages(run_dir, cfg, reuse=True)
    assert all(stage.skipped for stage in again)
    assert block.stat().st_mtime_ns == written
    assert again[1].results == first[1].results and again[2].markdown == first[2].markdown
    assert again[2].figures == first[2].figures

    more_chains = cfg.sample.model_copy(update={"chains": 16})
    resampled = sample(run_dir, more_chains, reuse=True)
    assert not resampled.skipped and resampled.chains == 16
    rescored = evaluate(run_dir, cfg.evaluate, resampled, reuse=True)
    assert not rescored.skipped  # a new sample is a new input
    assert not build_report(run_dir, rescored, resampled, reuse=True).skipped

    fewer = cfg.evaluate.model_copy(update={"num_samples": 8})
    assert not evaluate(run_dir, fewer, resampled, reuse=True).skipped  # a new setting of the stage

    assert not sample(run_dir, more_chains).skipped  # without reuse (the CLI's stage commands) it always runs


def test_a_model_trained_further_is_sampled_again(tmp_path):
    cfg = load_config(base=toy_family.preset(str(tmp_path)))
    data = prepare(cfg.data, data_dir(cfg))
    run_dir = train(cfg, data).run_dir
    key = sample(run_dir, cfg.sample, reuse=True).key
    longer = cfg.model_copy(update={"train": cfg.train.model_copy(update={"epochs": cfg.train.epochs + 1})})
    train(longer, data, resume=True)
    again = sample(run_dir, cfg.sample, reuse=True)
    assert not again.skipped and again.key != key
