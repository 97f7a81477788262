"""export: the TorchScript file (model + decoding + input normalisation + vocabulary), read as `read:` says and
checked against the eager model."""
import logging

import torch

from im2latex.config import ExportConfig, PreprocessConfig, ReadConfig, load_section
from im2latex.console import run_stage
from im2latex.data.preprocessing import load_split, tensor_images
from im2latex.export import check_parity, script
from im2latex.files import atomic_file
from im2latex.model.inputs import to_batch
from im2latex.model.network import load_model
from im2latex.reader import reading_sizes


def main(params: str, split: str, weights: str, out: str) -> None:
    cfg = load_section(params, "export", ExportConfig)
    prep = load_section(params, "preprocess", PreprocessConfig)
    read = load_section(params, "read", ReadConfig)
    net, tokens = load_model(weights)
    images = tensor_images(load_split(split).images[:cfg.parity_samples])
    scripted = script(net, tokens, prep.threshold, prep.pad, reading_sizes(prep.glyph_height, read.read_scales),
                      read.beam_width, read.length_penalty, read.agreement)
    checked = check_parity(net, scripted, [to_batch(images[i:i + 8]) for i in range(0, len(images), 8)], read.beam_width)
    with atomic_file(out, "wb") as f:
        torch.jit.save(scripted, f)
    logging.info("exported %s; scripted decoding matches eager on %d test images", out, checked)


if __name__ == "__main__":
    run_stage(main, "stages.export PARAMS TEST_PKL WEIGHTS OUT_PT")
