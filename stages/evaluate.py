"""evaluate: decode the test split with the trained model, and every labelled folder listed in
`evaluate.folders`; metrics, predictions and a picture to metrics/."""
import json
from pathlib import Path

from im2latex.config import EvaluateConfig, PreprocessConfig, load_section
from im2latex.console import run_stage
from im2latex.data.preprocessing import load_split
from im2latex.evaluation import evaluate, predict_all, rescale, score_folder, tensor_images
from im2latex.export import FormulaReader, reading_sizes
from im2latex.files import atomic_file
from im2latex.model.inputs import to_batch
from im2latex.model.network import load_model


def main(params: str, split: str, weights: str, metrics: str, predictions: str, picture: str, folders: str) -> None:
    cfg = load_section(params, "evaluate", EvaluateConfig)
    prep = load_section(params, "preprocess", PreprocessConfig)
    net, tokens = load_model(weights)
    reader = FormulaReader(net, tokens, prep.threshold, prep.pad, reading_sizes(prep.glyph_height, cfg.read_scales),
                          cfg.beam_width, cfg.length_penalty)
    data = load_split(split)

    def read(batch: list) -> list[str]:  # prepared at the training size: read at each of the reader's sizes
        ids, _ = reader.decode_best([to_batch(tensor_images(rescale(batch, scale))) for scale in cfg.read_scales])
        return [reader.to_text(row) for row in ids]

    texts = predict_all(read, data.images, cfg.batch_size)
    evaluate(data.names, data.images, data.formulas, texts, metrics, predictions, picture, cfg.examples)
    scores = {folder: score_folder(reader, Path(folder), batch_size=cfg.batch_size) for folder in cfg.folders}
    with atomic_file(folders, "w") as f:
        json.dump(scores, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    run_stage(main, "stages.evaluate PARAMS TEST_PKL WEIGHTS METRICS_JSON PREDICTIONS_TSV PICTURE_PNG FOLDERS_JSON")
