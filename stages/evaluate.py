"""evaluate: read the test split's images as the exported model reads any image, and every labelled folder listed
in `evaluate.folders`; metrics, predictions and a picture to metrics/."""
import json
from pathlib import Path

from im2latex.config import EvaluateConfig, PreprocessConfig, load_section
from im2latex.console import run_stage
from im2latex.evaluation import score_folder
from im2latex.export import reading_sizes, script
from im2latex.files import atomic_file
from im2latex.model.network import load_model


def main(params: str, data: str, weights: str, metrics: str, predictions: str, picture: str, folders: str) -> None:
    cfg = load_section(params, "evaluate", EvaluateConfig)
    prep = load_section(params, "preprocess", PreprocessConfig)
    net, tokens = load_model(weights)
    # the reader the export stage writes (scripted: it decodes about twice as fast as the eager module)
    reader = script(net, tokens, prep.threshold, prep.pad, reading_sizes(prep.glyph_height, cfg.read_scales),
                    cfg.beam_width, cfg.length_penalty, cfg.agreement)
    score_folder(reader, Path(data), "test", batch_size=cfg.batch_size, outputs=(Path(metrics), Path(predictions),
                 Path(picture)), examples=cfg.examples)
    scores = {folder: score_folder(reader, Path(folder), batch_size=cfg.batch_size) for folder in cfg.folders}
    with atomic_file(folders, "w") as f:
        json.dump(scores, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    run_stage(main, "stages.evaluate PARAMS RAW_DATA WEIGHTS METRICS_JSON PREDICTIONS_TSV PICTURE_PNG FOLDERS_JSON")
