"""RunConfig: presets, overrides, and errors that name the key, the value and the fix."""

import pytest

from pipeline.config import (ConfigError, RunConfig, apply_overrides, list_presets, load_config,
                             parse_override, validate_config)


def test_override_values_are_parsed_as_yaml():
    assert parse_override("train.epochs=3") == (["train", "epochs"], 3)
    assert parse_override("train.betas=[0.0, 0.9]") == (["train", "betas"], [0.0, 0.9])
    assert parse_override("output.storage=s3://b/x") == (["output", "storage"], "s3://b/x")
    assert parse_override("resources.ray_address=null") == (["resources", "ray_address"], None)


def test_override_without_equals_sign_is_an_error():
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_override("train.epochs")


def test_overrides_do_not_mutate_the_input():
    raw = {"train": {"epochs": 1}}
    out = apply_overrides(raw, ["train.epochs=5", "train.lr=0.5"])
    assert raw == {"train": {"epochs": 1}}
    assert out == {"train": {"epochs": 5, "lr": 0.5}}


def test_unknown_key_names_the_nearest_valid_key():
    with pytest.raises(ConfigError) as err:
        validate_config({"train": {"epohcs": 3}})
    msg = str(err.value)
    assert "train.epohcs" in msg and "3" in msg and "'train.epochs'" in msg


def test_unknown_section_names_the_nearest_section():
    with pytest.raises(ConfigError, match="'train'"):
        validate_config({"trian": {}})


def test_wrong_type_names_key_and_value():
    with pytest.raises(ConfigError) as err:
        validate_config({"train": {"epochs": "many"}})
    assert "train.epochs" in str(err.value) and "'many'" in str(err.value)


def test_unknown_family_suggests_the_nearest():
    with pytest.raises(ConfigError, match="did you mean 'rbm'"):
        validate_config({"model": {"family": "rbn"}})


def test_every_preset_validates_and_round_trips():
    presets = list_presets()
    assert presets, "the package ships presets"
    for name in presets:
        cfg = load_config(name)
        assert cfg.name == name
        again = RunConfig.model_validate(cfg.model_dump(mode="json"))
        assert again == cfg
        assert type(again.model) is type(cfg.model)


def test_unknown_preset_is_a_config_error():
    with pytest.raises(ConfigError, match="preset"):
        load_config("no-such-preset")


def test_fingerprint_changes_with_the_section():
    a = validate_config({})
    b = validate_config({"data": {"seed": 1}})
    assert a.fingerprint("data") != b.fingerprint("data")
    assert a.fingerprint("train") == b.fingerprint("train")
