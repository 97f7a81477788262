"""evaluate: read the test split's images with the exported file (models/model.pt), as `predict` and the server do,
and every labelled folder listed in `evaluate.folders`; metrics, predictions and a picture to metrics/."""
import json
from pathlib import Path

from im2latex.config import EvaluateConfig, load_section
from im2latex.console import run_stage
from im2latex.evaluation import score_folder
from im2latex.files import atomic_file
from im2latex.runtimes import TorchScriptReader


def main(params: str, data: str, model: str, metrics: str, predictions: str, picture: str, folders: str) -> None:
    cfg = load_section(params, "evaluate", EvaluateConfig)
    reader = TorchScriptReader(model)
    score_folder(reader, Path(data), "test", batch_size=cfg.batch_size, outputs=(Path(metrics), Path(predictions),
                 Path(picture)), examples=cfg.examples)
    scores = {folder: score_folder(reader, Path(folder), batch_size=cfg.batch_size) for folder in cfg.folders}
    with atomic_file(folders, "w") as f:
        json.dump(scores, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    run_stage(main, "stages.evaluate PARAMS RAW_DATA MODEL_PT METRICS_JSON PREDICTIONS_TSV PICTURE_PNG FOLDERS_JSON")
