"""Property-based: bad ``--set`` overrides and bad config.yaml files are refused with one clear,
bounded line that names the key (or the file), never a traceback, never silently accepted."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import load_config, load_config_file, parse_override
from pipeline.errors import ConfigError

MAX_MESSAGE = 600
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NONFINITE = st.sampled_from([".inf", "-.inf", ".nan", ".NaN", "+.inf", "1e999", "-1e999"])
HUGE = st.integers(13, 40).map(lambda k: f"1e{k}") | st.integers(10**10, 10**30).map(str)
BAD_TEXT = st.sampled_from(["", " ", "\t"]) | st.builds(
    lambda a, c, b: a + c + b, st.text("abc", max_size=3), st.sampled_from(
        ["\n", "\r", "\x00", "\x1b", "\u202e", "\u200f", "\u2066", "\u200b", "\ufeff", "\x7f"]), st.text("xyz", max_size=3))
BAD_NAMES = BAD_TEXT | st.sampled_from(["../x", "../../etc", "/abs/path", "a/b", "a\\b", "..", ".", ".hidden",
                                        "x..y", "a:b", "1:30", "a b", "x" * 101, "a*b", "$HOME", "~user"])

# Fields with a strictly positive bound, and what a float/int field should never take.
POSITIVE_INT = ["train.epochs", "train.batch_size", "train.keep_checkpoints", "sample.chains", "sample.steps",
                "sample.thin", "evaluate.workers", "data.toy_samples", "train.log_every", "model.n_hidden"]
POSITIVE_FLOAT = ["train.lr", "resources.cpus_per_worker", "sample.cpus_per_worker", "model.init_std"]
SEEDS = ["train.seed", "data.seed", "sample.seed", "evaluate.seed"]
TEXT = ["data.source", "output.root", "evaluate.feature", "evaluate.ais_schedule"]


def _case(key: str, value: str) -> str:
    return f"{key}={value}"


bad_overrides = st.one_of(
    st.builds(_case, st.sampled_from(POSITIVE_INT + POSITIVE_FLOAT), NONFINITE),
    st.builds(_case, st.sampled_from(["train.betas", "model.betas_g"]) if False else st.just("train.betas"),
              st.builds(lambda a, b: f"[{a}, {b}]", NONFINITE, st.sampled_from(["0.9", ".nan", ".inf"]))),
    st.builds(_case, st.sampled_from(POSITIVE_INT), HUGE),
    st.builds(_case, st.sampled_from(POSITIVE_INT + POSITIVE_FLOAT),
              st.integers(-10**6, 0).map(str) | st.sampled_from(["-0.5", "0", "0.0", "-1e-9"])),
    st.builds(_case, st.sampled_from(SEEDS), st.integers(-10**9, -1).map(str) | st.integers(2**32, 2**70).map(str)),
    st.builds(_case, st.sampled_from(POSITIVE_INT), st.sampled_from(["1:30", "0b11", "3.5", "ten", "[1]", "{a: 1}",
                                                                     "true", "2020-01-01", "0x", "--1"])),
    st.builds(_case, st.sampled_from(TEXT), BAD_TEXT),
    st.builds(_case, st.sampled_from(["name", "output.run_name"]), BAD_NAMES),
    st.builds(_case, st.just("output.storage"), BAD_TEXT | st.sampled_from(
        ["ftp://host/x", "http://x/y", "az://c/x", "s3://", "gs://", "sftp://h/p", "s3:/bucket", "smb://h/s"])),
    st.builds(_case, st.just("resources.num_workers"), BAD_TEXT | st.sampled_from(
        ["0..2", "3..1", "1-2", "two", "-1", "1..", "..2", "1...2", "true", "1.5", "[1, 2]", "1..2..3"])),
    st.builds(_case, st.just("resources.ray_address"), BAD_TEXT | st.sampled_from(
        ["foo", "host:", ":6379", "host:0", "host:70000", "ray://", "http://h:8265", "h:p", "1.2.3.4:-1"])),
    st.builds(_case, st.sampled_from(["train", "data", "sample"]).map(lambda s: s + ".")
              .flatmap(lambda p: st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=30).map(
                  lambda k: p + "zz" + k)), st.text(max_size=20).filter(lambda v: "\x00" not in v)),
)


def _key(item: str) -> str:
    return item.split("=", 1)[0]


def _assert_clear(message: str, key: str) -> None:
    assert "Traceback" not in message
    assert len(message) <= MAX_MESSAGE, len(message)
    assert len(message.strip().splitlines()) == 1, message
    assert key[:80] in message, (key, message)


@FUZZ
@given(bad_overrides)
def test_bad_overrides_are_refused_with_one_line_naming_the_key(item):
    with pytest.raises(ConfigError) as err:
        load_config("demo", [item])
    _assert_clear(str(err.value), _key(item))


# ------------------------------------------------------------------------------ bad config.yaml files
GOOD = "name: fz\ntrain:\n  epochs: 2\n  lr: 0.01\nmodel:\n  family: rbm\n  n_hidden: 16\n"


def _bomb(depth: int) -> str:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, depth)]
    return "\n".join(lines) + "\n"


bad_yaml = st.one_of(
    st.integers(2, 12).map(_bomb),
    st.integers(40, 400).map(lambda n: "a: " + "[" * n + "]" * n + "\n"),
    st.sampled_from(["- 1\n- 2\n", "just text\n", "42\n", "train: [1, 2\n", "train:\n  epochs: 1\n epochs: 2\n",
                     "train: {epochs: 1, epochs: 2}\n", "? [a, b]\n: 1\n", "1: x\n", "train:\n  lr: .inf\n",
                     "train:\n  seed: -1\n", "model:\n  n_hidden: 1e12\n", "name: ''\n", "name: ../x\n",
                     "output:\n  run_name: \"a\\u202eb\"\n", "train: !!python/object:os.system {}\n",
                     "train: !!binary aGVsbG8=\n", "\x00\x01\x02", "%YAML 9.9\n---\na: 1\n", "a: *nope\n",
                     "train:\n\tepochs: 2\n", "train: epochs: 2\n", "'unterminated\n", "train:\n  epochs: 1:30\n"]),
    st.builds(lambda k: GOOD + f"{k}: 1\n", st.text("abcdefghijklmnopqrstuvwxyz", min_size=3, max_size=12)
              .filter(lambda k: k not in {"name", "data", "model", "train", "sample", "evaluate", "resources",
                                          "output"})),
    st.builds(lambda v: GOOD.replace("epochs: 2", f"epochs: {v}"), st.sampled_from(
        ["-3", "0", ".inf", "1e30", "'two'", "[2]", "{a: 1}", "~", "0x", "1:30", "2.5"])),
)


@FUZZ
@given(bad_yaml)
def test_bad_config_files_are_refused_with_one_bounded_line(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "config.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    with pytest.raises(ConfigError) as err:
        load_config_file(path)
    message = str(err.value)
    assert "Traceback" not in message and len(message) <= MAX_MESSAGE, message[:200]
    assert len(message.strip().splitlines()) == 1, message
    assert str(path) in message or "config: " in message


# ------------------------------------------------------------------------------ what typed values mean
@pytest.mark.parametrize("typed, meant", [("010", 10), ("0x10", 16), ("0o10", 8), ("1e3", 1000.0), ("1:30", "1:30"),
                                          ("no", "no"), ("2020-01-01", "2020-01-01"), ("~", None), ("true", True)])
def test_override_values_mean_what_was_typed(typed, meant):
    assert parse_override(f"train.x={typed}")[1] == meant


def test_text_fields_keep_the_text_as_typed():
    assert load_config("demo", ["name=2024"]).name == "2024"
    assert load_config("demo", ["output.run_name=007"]).run_name == "007"
    assert load_config("demo", ["train.epochs=010"]).train.epochs == 10
    with pytest.raises(ConfigError, match="train.epochs"):
        load_config("demo", ["train.epochs=1:30"])


def test_an_alias_bomb_is_refused_quickly_with_a_short_message(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(_bomb(12))  # ~0.7 KB that would expand to 4^11 × 9 strings
    with pytest.raises(ConfigError, match="aliases") as err:
        load_config_file(path)
    assert len(str(err.value)) < 300


# ------------------------------------------------------------------------------ registry names (checked by #17's registries)
REGISTRY_CASES = ["sample.sampler=bogus", "evaluate.feature=bogus", "evaluate.metrics=[fid, bogus]",
                  "evaluate.ais_schedule=linear:abc"]


@pytest.mark.parametrize("item", REGISTRY_CASES)
def test_unknown_registry_names_are_refused_at_config_time(item):
    with pytest.raises(ConfigError) as err:
        load_config("demo", [item])
    _assert_clear(str(err.value), _key(item))


# ------------------------------------------------------------------------------ through the CLI
def _cli(*args: str) -> tuple[int, str]:
    from pipeline.cli import main

    err = io.StringIO()
    argv = sys.argv
    sys.argv = ["boltzgan", *args]
    code = 0
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.argv = argv
    return code, err.getvalue()


@settings(max_examples=40, deadline=None)
@given(bad_overrides)
def test_the_cli_exits_2_with_one_line_and_no_traceback(item):
    code, err = _cli("config", "show", "demo", "--set", item)
    assert code == 2, err
    _assert_clear(" ".join(err.split()), _key(item))


def test_the_cli_refuses_a_malformed_run_config_without_traceback(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(_bomb(10))
    code, err = _cli("evaluate", str(run))
    assert code == 2 and "aliases" in err and "Traceback" not in err and len(err) < MAX_MESSAGE


def test_the_cli_names_a_missing_run(tmp_path):
    code, err = _cli("evaluate", str(tmp_path / "nope"))
    assert code == 2 and "has no config.yaml" in err and "Traceback" not in err
