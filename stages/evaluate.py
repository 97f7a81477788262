"""evaluate: decode the test split with the trained model; metrics, predictions and a picture to metrics/."""
from im2latex.config import EvaluateConfig, load_section
from im2latex.console import run_stage
from im2latex.data.preprocessing import load_split
from im2latex.evaluation import evaluate, predict_all, tensor_images
from im2latex.export import FormulaReader
from im2latex.model.inputs import to_batch
from im2latex.training import load_model


def main(params: str, split: str, weights: str, metrics: str, predictions: str, picture: str) -> None:
    cfg = load_section(params, "evaluate", EvaluateConfig)
    net, tokens = load_model(weights)
    reader = FormulaReader(net, tokens, 0, 0, 1.0, cfg.beam_width)  # test images are already prepared
    data = load_split(split)
    texts = predict_all(lambda batch: [reader.to_text(ids) for ids in reader.decode(to_batch(tensor_images(batch)), cfg.beam_width)],
                        data["images"], cfg.batch_size)
    evaluate(data["names"], data["images"], data["formulas"], texts, metrics, predictions, picture, cfg.examples)


if __name__ == "__main__":
    run_stage(main, "stages.evaluate PARAMS TEST_PKL WEIGHTS METRICS_JSON PREDICTIONS_TSV PICTURE_PNG")
