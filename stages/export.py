"""export: the TorchScript file (model + decoding + input normalisation + vocabulary), read as `read:` says and
checked against the eager model; and the ONNX graphs with their settings (the torch-free reader), checked against
the TorchScript file."""
import logging

import torch

from im2latex import Im2LatexError
from im2latex.config import ExportConfig, PreprocessConfig, ReadConfig, load_section
from im2latex.console import run_stage
from im2latex.data.preprocessing import load_split, tensor_images
from im2latex.export import check_parity, export_onnx, onnx_agreement, script
from im2latex.files import atomic_file
from im2latex.model.inputs import to_batch
from im2latex.model.network import load_model
from im2latex.onnx_reader import OnnxReader
from im2latex.reader import reading_sizes

ONNX_AGREEMENT = 0.95  # share of the parity images the ONNX reader must read as the TorchScript file (float noise may flip one)


def main(params: str, split: str, weights: str, out: str, onnx: str) -> None:
    cfg = load_section(params, "export", ExportConfig)
    prep = load_section(params, "preprocess", PreprocessConfig)
    read = load_section(params, "read", ReadConfig)
    net, tokens = load_model(weights)
    images = tensor_images(load_split(split).images[:cfg.parity_samples])
    sizes = reading_sizes(prep.glyph_height, read.read_scales)
    scripted = script(net, tokens, prep.threshold, prep.pad, sizes, read.beam_width, read.length_penalty, read.agreement)
    checked = check_parity(net, scripted, [to_batch(images[i:i + 8]) for i in range(0, len(images), 8)], read.beam_width)
    with atomic_file(out, "wb") as f:
        torch.jit.save(scripted, f)
    logging.info("exported %s; scripted decoding matches eager on %d test images", out, checked)
    export_onnx(net, tokens, onnx, prep.threshold, prep.pad, prep.glyph_height, sizes, read.beam_width, read.length_penalty,
                read.agreement)
    agreement = onnx_agreement(scripted, OnnxReader(onnx), images)
    if agreement < ONNX_AGREEMENT:
        raise Im2LatexError(f"ONNX export parity failed: {onnx} reads {agreement:.0%} of {len(images)} test images as {out} does")
    logging.info("exported %s; it reads %.0f%% of %d test images as %s does", onnx, 100 * agreement, len(images), out)


if __name__ == "__main__":
    run_stage(main, "stages.export PARAMS TEST_PKL WEIGHTS OUT_PT OUT_ONNX_DIR")
