import dataclasses

import pydantic
import pytest
import yaml

from im2latex import Im2LatexError
from im2latex.config import DataConfig, PreprocessConfig, SyntheticConfig, TrainConfig, VocabConfig, load_section


def test_the_repository_params_load():
    assert load_section("params.yaml", "data", DataConfig).source == "synthetic"
    assert load_section("params.yaml", "vocab", VocabConfig).min_freq >= 1
    assert isinstance(load_section("params.yaml", "preprocess", PreprocessConfig).glyph_height, float)


@pytest.mark.parametrize("text, message", [
    ("vocab: {min_freq: 2, extra: 1}", "vocab.extra is an unknown key"),
    ("vocab: {}", "vocab.min_freq is missing"),
    ("vocab: {min_freq: '2'}", "vocab.min_freq: input should be a valid integer, got '2'"),
    ("vocab: {min_freq: 2.0}", "vocab.min_freq: input should be a valid integer, got 2.0"),
    ("vocab: {min_freq: true}", "vocab.min_freq: input should be a valid integer, got True"),
    ("vocab: {min_fraq: 2}", "vocab.min_freq is missing; vocab.min_fraq is an unknown key"),  # a typo names both
    ("vocab: 2", "vocab: input should be a dictionary"),
    ("other: {}", "no 'vocab' section"),
    ("vocab: [", "cannot read"),
])
def test_bad_params_fail_with_one_line(tmp_path, text, message):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(Im2LatexError, match=message) as e:
        load_section(path, "vocab", VocabConfig)
    assert "\n" not in str(e.value)
    # presets (overlays on params.yaml) are tested in tests/test_presets.py


@pytest.mark.parametrize("key, value, message", [
    ("url_hosts", "example.org", "serve.url_hosts: input should be a valid list, got 'example.org'"),
    ("url_hosts", "[1]", r"serve.url_hosts\[0\]: input should be a valid string, got 1"),
])
def test_a_string_where_a_list_belongs_is_refused(tmp_path, key, value, message):
    from im2latex.config import ServeConfig
    params = yaml.safe_load(open("params.yaml"))
    params["serve"][key] = yaml.safe_load(value)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(Im2LatexError, match=message) as e:
        load_section(path, "serve", ServeConfig)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("value, message", [
    ("[90]", r"data.synthetic.dpi\[1\] is missing"),
    ("[90, 100, 110]", "data.synthetic.dpi: tuple should have at most 2 items"),
    ("90", "data.synthetic.dpi: input should be a valid tuple, got 90"),
    ("[90, '100']", r"data.synthetic.dpi\[1\]: input should be a valid integer"),
])
def test_a_tuple_of_the_wrong_length_is_refused(tmp_path, value, message):
    params = yaml.safe_load(open("params.yaml"))
    params["data"]["synthetic"]["dpi"] = yaml.safe_load(value)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(Im2LatexError, match=message) as e:
        load_section(path, "data", DataConfig)
    assert "\n" not in str(e.value)


def test_an_int_is_taken_for_a_float_but_a_bool_for_neither(tmp_path):
    params = yaml.safe_load(open("params.yaml"))
    path = tmp_path / "params.yaml"
    params["train"]["lr"] = 3
    path.write_text(yaml.safe_dump(params))
    lr = load_section(path, "train", TrainConfig).lr
    assert lr == 3.0 and isinstance(lr, float)
    for key, kind in ("lr", "number"), ("batch_size", "integer"):
        params["train"][key] = True
        path.write_text(yaml.safe_dump(params))
        with pytest.raises(Im2LatexError, match=f"train.{key}: input should be a valid {kind}, got True"):
            load_section(path, "train", TrainConfig)
        params["train"][key] = 3


def test_the_configs_stay_frozen_dataclasses_that_validate_when_built():
    data = load_section("params.yaml", "data", DataConfig)
    assert isinstance(data.synthetic, SyntheticConfig) and isinstance(data.synthetic.dpi, tuple)  # YAML's list
    assert dataclasses.asdict(data)["synthetic"]["dpi"] == data.synthetic.dpi
    assert [f.name for f in dataclasses.fields(VocabConfig)] == ["min_freq"]
    vocab = VocabConfig(min_freq=2)
    assert dataclasses.replace(vocab, min_freq=3) == VocabConfig(min_freq=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        vocab.min_freq = 3
    with pytest.raises(pydantic.ValidationError):  # built in code as well as read from params.yaml
        dataclasses.replace(vocab, min_freq="3")
