"""evaluate: decode the test split with the trained model, and every labelled folder listed in
`evaluate.folders`; metrics, predictions and a picture to metrics/."""
import json
from pathlib import Path

from im2latex.config import EvaluateConfig, PreprocessConfig, load_section
from im2latex.console import run_stage
from im2latex.data.preprocessing import load_split
from im2latex.evaluation import evaluate, predict_all, rescale, score_folder, tensor_images
from im2latex.export import FormulaReader
from im2latex.files import atomic_file
from im2latex.model.inputs import to_batch
from im2latex.model.network import load_model


def main(params: str, split: str, weights: str, metrics: str, predictions: str, picture: str, folders: str) -> None:
    cfg = load_section(params, "evaluate", EvaluateConfig)
    prep = load_section(params, "preprocess", PreprocessConfig)
    net, tokens = load_model(weights)
    reader = FormulaReader(net, tokens, prep.threshold, prep.pad, prep.glyph_height * cfg.read_scale, cfg.beam_width)
    data = load_split(split)
    images = rescale(data.images, cfg.read_scale)  # prepared at the training size: read at the reader's
    texts = predict_all(lambda batch: [reader.to_text(ids) for ids in reader.decode(to_batch(tensor_images(batch)), cfg.beam_width)],
                        images, cfg.batch_size)
    evaluate(data.names, images, data.formulas, texts, metrics, predictions, picture, cfg.examples)
    scores = {folder: score_folder(reader, Path(folder), batch_size=cfg.batch_size) for folder in cfg.folders}
    with atomic_file(folders, "w") as f:
        json.dump(scores, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    run_stage(main, "stages.evaluate PARAMS TEST_PKL WEIGHTS METRICS_JSON PREDICTIONS_TSV PICTURE_PNG FOLDERS_JSON")
