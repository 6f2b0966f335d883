"""The Prefect form of the pipeline flow: the ``model`` section is a union over every registered
family, discriminated by ``family``, so the UI shows each family's own fields and defaults."""

from __future__ import annotations

import pytest
from prefect.utilities.callables import parameter_schema

from pipeline.config import ModelConfig, RunConfig, family_of


def _families() -> dict[str, type[ModelConfig]]:
    import pipeline.recipes  # noqa: F401  (registers the shipped families)

    return dict(ModelConfig.registry)


def _model_schema(schema: dict) -> dict:
    return schema["definitions"]["RunConfig"]["properties"]["model"]


def test_the_flows_schema_lists_every_field_of_every_family():
    from flows.pipeline import pipeline_flow

    stored = pipeline_flow.parameters.model_dump()  # built when the flow was decorated
    shipped = {"rbm", "bm", "dbn", "dbm", "gan", "ebm"}
    assert shipped <= set(_model_schema(stored)["discriminator"]["mapping"])
    # a fresh schema also holds families registered since (the test tree's toy family)
    schema = parameter_schema(pipeline_flow.fn).model_dump()
    model = _model_schema(schema)
    assert model["discriminator"]["propertyName"] == "family"
    families = _families()
    assert {"rbm", "bm", "dbn", "dbm", "gan", "ebm"} <= set(families)
    assert set(model["discriminator"]["mapping"]) == set(families)
    refs = {one["$ref"].rsplit("/", 1)[1] for one in model["oneOf"]}
    for family, cls in families.items():
        definition = schema["definitions"][cls.__name__]
        assert cls.__name__ in refs and model["discriminator"]["mapping"][family].endswith(cls.__name__)
        assert set(definition["properties"]) == set(cls.model_fields), family
        assert definition["properties"]["family"]["const"] == family_of(cls)
        for name, field in cls.model_fields.items():
            if field.description:
                assert definition["properties"][name]["description"] == field.description, (family, name)


def test_the_form_shows_each_familys_defaults():
    from flows.pipeline import pipeline_flow

    schema = pipeline_flow.parameters.model_dump()
    rbm = schema["definitions"]["RBMConfig"]["properties"]
    assert rbm["n_hidden"]["default"] == 500 and rbm["cd_k"]["default"] == 1
    gan = schema["definitions"]["GANConfig"]["properties"]
    assert set(gan["loss"]["enum"]) == {"minimax", "nonsaturating", "wgan", "wgan-gp", "hinge"}


@pytest.mark.parametrize("family", ["rbm", "bm", "dbn", "dbm", "gan", "ebm"])
def test_a_form_submission_validates_to_the_familys_section(family):
    """What the UI posts (a plain dict) becomes the family's typed section, values intact."""
    cls = _families()[family]
    posted = {"model": cls().model_dump(mode="json")}
    cfg = RunConfig.model_validate(posted)
    assert type(cfg.model) is cls and cfg.model.model_dump(mode="json") == posted["model"]


def test_every_presets_config_satisfies_the_flows_schema():
    """What the server enforces (jsonschema over the flow's parameter schema) accepts every shipped
    preset, and rejects a field the preset's family does not have."""
    import jsonschema

    from flows.pipeline import pipeline_flow
    from pipeline.config import list_presets, load_config

    schema = pipeline_flow.parameters.model_dump()
    for preset in list_presets():
        jsonschema.validate({"config": load_config(preset).model_dump(mode="json")}, schema)
    bad = load_config("rbm-digits").model_dump(mode="json")
    bad["model"]["latent_dim"] = 64  # a GAN field on an RBM
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"config": bad}, schema)
