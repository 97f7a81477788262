"""The torch-free reader (ONNX Runtime + NumPy) reads as the TorchScript file does: the same input normalisation, the
same consensus, the same predictions."""
import random

import numpy as np
import pytest
import torch

from im2latex import Im2LatexError
from im2latex import onnx_reader as light
from im2latex.data import layout
from im2latex.data.preprocessing import load_image
from im2latex.data.tokenizer import tokenize
from im2latex.data.vocab import build_vocabulary
from im2latex.export import export_onnx, onnx_agreement, script
from im2latex.model import inputs
from im2latex.model.network import Im2LatexNet
from im2latex.reader import consensus, edit_distances


@pytest.fixture(scope="module")
def raw_images(tiny_dataset) -> list[np.ndarray]:
    """The tiny dataset's renders, and the same in dark mode, on a tinted page and blown up past the glyph
    measure's pixel limit (read at half resolution)."""
    images = [load_image(p) for p in sorted((tiny_dataset / "formula_images").glob("*.png"))]
    first = images[0]
    tinted = (first.astype(np.float32) * 0.82).astype(np.uint8)
    big = np.kron(first, np.ones((6, 6), dtype=np.uint8))
    assert big.size > 120000
    return images + [255 - first, tinted, big, np.full((20, 30), 255, np.uint8)]


def test_numpy_input_normalisation_matches_the_torch_one(raw_images):
    heights = [10.4, 13.0, 18.2]
    for image in raw_images:
        ours = light.prepare_sizes(image, 200, 4, heights)
        theirs = inputs.prepare_sizes(torch.from_numpy(image.copy()), 200, 4, heights)
        measured = light.glyph_size(image < 200)
        assert measured == inputs.glyph_size(torch.from_numpy(image < 200))
        for height, a, b in zip(heights, ours, theirs):
            assert a.shape == tuple(b.shape)
            if measured and height / measured < 0.55:  # shrunk about 2x or more: torch sums its 5+ taps in an order not copied
                assert np.abs(a.astype(int) - b.numpy().astype(int)).max(initial=0) <= 1
            else:
                np.testing.assert_array_equal(a, b.numpy())
    assert light.prepare_sizes(raw_images[-1], 200, 4, heights)[0].size == 0  # blank
    batch = light.to_batch(light.prepare_sizes(raw_images[0], 200, 4, heights))
    torch.testing.assert_close(torch.from_numpy(batch), inputs.to_batch(inputs.prepare_sizes(
        torch.from_numpy(raw_images[0].copy()), 200, 4, heights)), atol=0, rtol=0)


@pytest.mark.parametrize("scale", [0.55, 0.7, 0.9, 1.3, 2.0, 3.7])
def test_the_numpy_resize_is_torchs_to_the_bit(scale):
    image = np.random.default_rng(0).uniform(0, 255, (37, 211)).astype(np.float32)
    np.testing.assert_array_equal(light.resize(image, scale), inputs.resize(torch.from_numpy(image), scale).numpy())


def test_numpy_consensus_matches_the_torch_one():
    rng = random.Random(0)
    for _ in range(30):
        readings = [[rng.randrange(5) for _ in range(rng.randrange(0, 9))] for _ in range(rng.randrange(1, 8))]
        confidences = [rng.random() for _ in readings]
        assert light.edit_distances(readings).tolist() == edit_distances(readings).tolist()
        assert light.consensus(readings, confidences, 4.0) == consensus(readings, confidences, 4.0)


@pytest.mark.parametrize("beam_width, encoder_layers", [(3, 1), (1, 0)])
def test_the_onnx_reader_reads_as_the_torchscript_file(tiny_dataset, raw_images, tmp_path, beam_width, encoder_layers):
    formulas = layout.read_formulas(tiny_dataset)
    vocab, _ = build_vocabulary([tokenize(f) for f in formulas], min_freq=1)
    torch.manual_seed(0)
    net = Im2LatexNet(vocab.tokens, d_model=32, heads=2, layers=2, ff=64, dropout=0.0, encoder_channels=8, max_len=16,
                      encoder_layers=encoder_layers).eval()
    sizes = [10.4, 13.0, 15.6]
    scripted = script(net, vocab.tokens, 200, 4, sizes, beam_width, length_penalty=1.0, agreement=16.0)
    export_onnx(net, vocab.tokens, tmp_path / "onnx", 200, 4, 13.0, sizes, beam_width, 1.0, 16.0)
    reader = light.OnnxReader(tmp_path / "onnx", threads=1)
    images = [torch.from_numpy(i.copy()) for i in raw_images]
    texts, scores = reader.read(raw_images)
    assert texts[-1] == "" and scores[-1] == 0.0  # the blank image
    assert len({t for t in texts if t}) > 1  # the untrained network still reads the images differently
    assert onnx_agreement(scripted, reader, images) == 1.0
    np.testing.assert_allclose(scores, scripted.read(images)[1], rtol=1e-4, atol=1e-6)


def test_images_of_equal_width_are_batched_alike(tiny_dataset, raw_images, tmp_path):
    """40 images of one width and different heights (a 2-pixel dot drawn higher and higher above the formula): the
    batches of 16 differ in their padding, so both readers must group ties in the same (stable) order."""
    formulas = layout.read_formulas(tiny_dataset)
    vocab, _ = build_vocabulary([tokenize(f) for f in formulas], min_freq=1)
    torch.manual_seed(1)
    net = Im2LatexNet(vocab.tokens, d_model=32, heads=2, layers=1, ff=64, dropout=0.0, encoder_channels=8, max_len=12).eval()
    base = np.pad(raw_images[0], ((45, 0), (0, 0)), constant_values=255)
    variants = []
    for k in range(40):
        image = base.copy()
        image[44 - k:46 - k, 5:7] = 0
        variants.append(image)
    assert len({light.prepare_sizes(v, 200, 4, [13.0])[0].shape[1] for v in variants}) == 1
    assert len({light.prepare_sizes(v, 200, 4, [13.0])[0].shape[0] for v in variants}) > 20
    scripted = script(net, vocab.tokens, 200, 4, [13.0], 1)
    export_onnx(net, vocab.tokens, tmp_path, 200, 4, 13.0, [13.0], 1, 1.0, 16.0)
    reader = light.OnnxReader(tmp_path, threads=1)
    ours, theirs = reader.read(variants), scripted.read([torch.from_numpy(v) for v in variants])
    assert ours[0] == theirs[0]
    # the confidences tell the batches apart: 8e-7 apart in the same batches, 1e-5 with torch's unstable argsort
    np.testing.assert_allclose(ours[1], theirs[1], rtol=3e-6)


def test_the_fast_setting_reads_fewer_sizes_greedily(tiny_dataset, raw_images, tmp_path):
    vocab, _ = build_vocabulary([tokenize(f) for f in layout.read_formulas(tiny_dataset)], min_freq=1)
    net = Im2LatexNet(vocab.tokens, d_model=32, heads=2, layers=1, ff=64, dropout=0.0, encoder_channels=8, max_len=12)
    export_onnx(net, vocab.tokens, tmp_path, 200, 4, 13.0, [10.4, 13.0], 3, 1.0, 16.0)
    fast = light.OnnxReader(tmp_path, read_scales=[1.0], beam_width=1)
    assert fast.glyph_heights == [13.0] and fast.beam_width == 1
    greedy = script(net, vocab.tokens, 200, 4, [13.0], 1)
    assert fast(raw_images[:6]) == greedy([torch.from_numpy(i.copy()) for i in raw_images[:6]])


def test_a_missing_or_broken_onnx_model_is_one_line(tmp_path):
    with pytest.raises(Im2LatexError, match="cannot load ONNX model"):
        light.OnnxReader(tmp_path)
    (tmp_path / light.SETTINGS).write_text("{}")
    (tmp_path / light.ENCODER).write_bytes(b"not onnx")
    (tmp_path / light.DECODER).write_bytes(b"not onnx")
    with pytest.raises(Im2LatexError, match="cannot load ONNX model") as e:
        light.OnnxReader(tmp_path)
    assert "\n" not in str(e.value)
