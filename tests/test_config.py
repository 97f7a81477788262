import pytest

from im2latex import Im2LatexError
from im2latex.config import DataConfig, PreprocessConfig, VocabConfig, load_section


def test_the_repository_params_load():
    assert load_section("params.yaml", "data", DataConfig).source == "synthetic"
    assert load_section("params.yaml", "vocab", VocabConfig).min_freq >= 1
    assert isinstance(load_section("params.yaml", "preprocess", PreprocessConfig).glyph_height, float)


@pytest.mark.parametrize("text, message", [
    ("vocab: {min_freq: 2, extra: 1}", r"unknown keys \['extra'\]"),
    ("vocab: {}", r"lacks keys \['min_freq'\]"),
    ("vocab: {min_freq: '2'}", "vocab.min_freq must be a int"),
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
    ("url_hosts", "example.org", "serve.url_hosts must be a list, got 'example.org'"),
    ("url_hosts", "[1]", r"serve.url_hosts\[0\] must be a str, got 1"),
])
def test_a_string_where_a_list_belongs_is_refused(tmp_path, key, value, message):
    import yaml

    from im2latex.config import ServeConfig
    params = yaml.safe_load(open("params.yaml"))
    params["serve"][key] = yaml.safe_load(value)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(Im2LatexError, match=message) as e:
        load_section(path, "serve", ServeConfig)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("value, message", [
    ("[90]", r"data.synthetic.dpi must be a list of 2 values, got \[90\]"),
    ("[90, 100, 110]", "data.synthetic.dpi must be a list of 2 values"),
    ("90", "data.synthetic.dpi must be a list of 2 values, got 90"),
    ("[90, '100']", r"data.synthetic.dpi\[1\] must be a int"),
])
def test_a_tuple_of_the_wrong_length_is_refused(tmp_path, value, message):
    import yaml
    params = yaml.safe_load(open("params.yaml"))
    params["data"]["synthetic"]["dpi"] = yaml.safe_load(value)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(Im2LatexError, match=message) as e:
        load_section(path, "data", DataConfig)
    assert "\n" not in str(e.value)
