"""Acceptance: a family added from outside the package (tests/pipeline/toy_family.py: a model, one
recipe, a preset) runs through every stage with no edit to pipeline/ or flows/."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.config import ConfigError, load_config
from pipeline.data import open_split
from pipeline.rundir import RunDir
from pipeline.trained import load_trained
from tests.pipeline import toy_family


def test_the_toy_family_runs_through_every_stage(toy_run):
    run = RunDir(Path(toy_run.trained.run_dir))
    assert toy_run.trained.epochs == 2 and toy_run.trained.steps == 2 * 6  # 300 examples / 50
    assert [e["epoch"] for e in run.epochs()] == [1, 2]
    trained = load_trained(run)
    assert trained.recipe.family == toy_family.FAMILY and trained.recipe.seen_examples == 300
    assert toy_run.samples.chains == 32 and toy_run.samples.draws_per_chain == 2
    assert toy_run.samples.sampler == "exact-bernoulli"
    x = toy_run.samples.load()
    assert x.shape == (64, 1, 4, 4) and set(np.unique(x)) <= {0.0, 1.0}
    assert Path(toy_run.report.markdown_path).is_file() and "samples" in toy_run.report.figures


def test_the_evaluation_scores_the_sampling_stages_output_and_the_exact_likelihood(toy_run):
    ev = toy_run.evaluation
    fid = ev.get("fid")
    assert fid is not None and fid.available and fid.num_samples == 64 and fid.extractor.startswith("identity")
    ll = ev.likelihood
    b = load_trained(toy_run.trained.run_dir).recipe.modules["model"].logits.detach().double()
    test_x = torch.from_numpy(np.array(open_split(toy_run.data.path, "test")[0])).double()
    closed_form = float((test_x @ b).mean() - torch.nn.functional.softplus(b).sum())
    assert ll.method == "exact" and ll.log_likelihood == pytest.approx(closed_form, abs=1e-5)
    assert ll.test_examples == len(test_x)


def test_training_moved_towards_the_maximum_likelihood_solution(toy_run):
    train_x = np.array(open_split(toy_run.data.path, "train")[0])
    mean = np.clip(train_x.mean(0), 1e-3, 1 - 1e-3)
    p = torch.sigmoid(load_trained(toy_run.trained.run_dir).recipe.modules["model"].logits).detach().numpy()
    assert np.abs(p - mean).mean() < np.abs(0.5 - mean).mean() / 2  # from σ(0) = 0.5 most of the way


def test_the_toy_familys_settings_are_checked_at_config_time(tmp_path):
    base = toy_family.preset(str(tmp_path))
    with pytest.raises(ConfigError, match="sample.sampler='gibbs' is not a sampler of the toy-bernoulli family"):
        load_config(base=base, overrides=["sample.sampler=gibbs"])
    with pytest.raises(ConfigError, match="model.init_logits"):
        load_config(base=base, overrides=["model.init_logits=1"])
    assert load_config(base=base, overrides=["model.init_logit=1.5"]).model.init_logit == 1.5


def test_the_toy_family_is_in_the_prefect_form():
    from prefect.utilities.callables import parameter_schema

    from flows.pipeline import pipeline_flow

    schema = parameter_schema(pipeline_flow).model_dump()
    assert "init_logit" in schema["definitions"]["ToyBernoulliConfig"]["properties"]
    mapping = schema["definitions"]["RunConfig"]["properties"]["model"]["discriminator"]["mapping"]
    assert mapping[toy_family.FAMILY] == "#/definitions/ToyBernoulliConfig"
