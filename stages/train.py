"""train: fit the model on the preprocessed splits; weights to models/, curves to metrics/train/."""
from im2latex.config import ModelConfig, TrainConfig, load_section
from im2latex.console import run_stage
from im2latex.training import train


def main(params: str, data: str, vocab: str, out: str, live: str, checkpoints: str) -> None:
    train(data, vocab, load_section(params, "model", ModelConfig), load_section(params, "train", TrainConfig),
          out, live, checkpoints)


if __name__ == "__main__":
    run_stage(main, "stages.train PARAMS DATA_DIR VOCAB_JSON MODEL_OUT LIVE_DIR CHECKPOINT_DIR")
