"""Scoring a model on a split: metrics, per-sample predictions and a picture of the worst and best."""
import csv
import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import editdistance
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm import tqdm

from im2latex.data.layout import is_im2latex_layout, read_labelled_folder
from im2latex.data.rendering import render_rate
from im2latex.files import atomic_file
from im2latex.metrics import score


def predict_all(predict: Callable[[list[np.ndarray]], list[str]], images: list[np.ndarray], batch_size: int) -> list[str]:
    """Predictions in input order; images are batched by size so that little of a batch is padding. A progress bar
    (on stderr) where there is more than one batch."""
    order = sorted(range(len(images)), key=lambda i: (images[i].shape[0], images[i].shape[1]))
    predictions: list[str] = [""] * len(images)
    with tqdm(total=len(images), desc="decode", unit="image", disable=len(images) <= batch_size) as bar:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            for i, text in zip(chunk, predict([images[i] for i in chunk])):
                predictions[i] = text
            bar.update(len(chunk))
    return predictions


def draw_examples(rows: list[tuple[str, np.ndarray, str, str]], path: str | Path) -> None:
    """One band per example: a title, the input image, then target and prediction as text."""
    font = ImageFont.load_default()
    width = 1000
    bands = []
    for title, image, target, prediction in rows:
        lines = [title] + textwrap.wrap("target:     " + target, 160) + textwrap.wrap("prediction: " + prediction, 160)
        image = Image.fromarray(image)
        if image.width > width - 20:
            image = image.resize((width - 20, max(1, image.height * (width - 20) // image.width)))
        band = Image.new("L", (width, image.height + 14 * len(lines) + 24), 255)
        band.paste(image, (10, 8))
        draw = ImageDraw.Draw(band)
        for n, line in enumerate(lines):
            draw.text((10, image.height + 14 + 14 * n), line, fill=0, font=font)
        draw.line([(0, band.height - 1), (width, band.height - 1)], fill=128)
        bands.append(band)
    sheet = Image.new("L", (width, sum(b.height for b in bands) or 1), 255)
    y = 0
    for band in bands:
        sheet.paste(band, (0, y))
        y += band.height
    with atomic_file(path, "wb") as f:
        sheet.save(f, format="PNG")


def evaluate(names: list[str], images: list[np.ndarray], targets: list[str], predictions: list[str],
             metrics_path: str | Path | None, predictions_path: str | Path | None, picture_path: str | Path | None,
             examples: int) -> dict[str, float]:
    """Score predictions against targets (space-separated tokens) and write what was asked for."""
    target_tokens, predicted_tokens = [t.split() for t in targets], [p.split() for p in predictions]
    metrics = score(target_tokens, predicted_tokens)
    metrics["render_rate"] = render_rate(predictions)
    metrics["samples"] = len(targets)
    metrics = {k: round(v, 6) if isinstance(v, float) else v for k, v in metrics.items()}
    distances = [editdistance.eval(t, p) / max(len(t), len(p), 1) for t, p in zip(target_tokens, predicted_tokens)]
    if metrics_path:
        with atomic_file(metrics_path, "w") as f:
            json.dump(metrics, f, indent=2, sort_keys=True)
    if predictions_path:
        with atomic_file(predictions_path, "w") as f:
            writer = csv.writer(f, delimiter="\t", lineterminator="\n")
            writer.writerow(["name", "edit_distance", "target", "prediction"])
            writer.writerows((n, round(d, 4), t, p) for n, d, t, p in zip(names, distances, targets, predictions))
    if picture_path and targets:
        order = sorted(range(len(targets)), key=lambda i: (distances[i], names[i]))
        worst, best = order[::-1][:examples], order[:examples]
        draw_examples([(f"worst #{k + 1}: {names[i]} (edit distance {distances[i]:.2f})", images[i], targets[i], predictions[i])
                       for k, i in enumerate(worst)] +
                      [(f"best #{k + 1}: {names[i]} (edit distance {distances[i]:.2f})", images[i], targets[i], predictions[i])
                       for k, i in enumerate(best)], picture_path)
    return metrics


def score_folder(read: Callable[[list[np.ndarray]], list[str]], folder: Path, split: str = "test",
                 formulas: Path | None = None, raw_labels: bool = False, batch_size: int = 16,
                 outputs: tuple[Path, Path, Path] | None = None, examples: int = 4) -> dict[str, float]:
    """Read every labelled image of `folder` with `read` (the exported model, or FormulaReader) and score it.
    Labels written by a person (a plain folder) are normalised as IM2LATEX-100K's were, and predictions the
    same way, unless `raw_labels`; `outputs`, when given, are the paths of the metrics (JSON), the predictions
    (TSV) and a picture of the `examples` worst and best readings."""
    from im2latex.data.normalise import normalise_all
    from im2latex.data.images import load_image
    from im2latex.data.tokenizer import normalize

    names, paths, labels = read_labelled_folder(folder, split, formulas)
    images = [load_image(p) for p in paths]
    predictions = predict_all(read, images, batch_size)
    targets = [normalize(f) for f in labels]
    if not raw_labels and not is_im2latex_layout(folder, split, formulas):
        targets, _ = normalise_all(labels)
        predictions, _ = normalise_all(predictions)
    return evaluate(names, images, targets, predictions, *(outputs or (None, None, None)), examples)
