import pytest

from im2latex import Im2LatexError
from im2latex.config import DataConfig, PreprocessConfig, VocabConfig, load_section


def test_the_repository_params_load():
    assert load_section("params.yaml", "data", DataConfig).source == "synthetic"
    assert load_section("params.yaml", "vocab", VocabConfig).min_freq >= 1
    assert isinstance(load_section("params.yaml", "preprocess", PreprocessConfig).scale, float)


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


def test_the_gpu_preset_loads():
    from im2latex.config import EvaluateConfig, ExportConfig, ModelConfig, TrainConfig

    for section, cls in [("data", DataConfig), ("vocab", VocabConfig), ("preprocess", PreprocessConfig),
                         ("model", ModelConfig), ("train", TrainConfig), ("evaluate", EvaluateConfig),
                         ("export", ExportConfig)]:
        load_section("presets/im2latex-100k-gpu.yaml", section, cls)
    assert load_section("presets/im2latex-100k-gpu.yaml", "data", DataConfig).source == "im2latex-100k"
