"""Exports of the reader (im2latex/reader.py): TorchScript, the network, its decoding, its input normalisation and the
vocabulary in one file that plain `torch.jit.load` runs, with no project code; and ONNX, the network as two graphs
(encoder; one decoder step with its key/value cache) for the torch-free reader (im2latex/onnx_reader.py)."""
import contextlib
import json
import math
import os
import sys
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn

from im2latex import Im2LatexError
from im2latex.files import atomic_dir
from im2latex.model.network import MAX_RUN, Im2LatexNet
from im2latex.onnx_reader import DECODER, ENCODER, SETTINGS, OnnxReader
from im2latex.reader import FormulaReader

ONNX_OPSET = 17


def _import_path(filename: str | None) -> str | None:
    """`filename` relative to the sys.path entry it was imported from (`im2latex/export.py`, `torch/nn/...`)."""
    if not filename:
        return filename
    path = os.path.abspath(filename)
    roots = [os.path.abspath(p or ".") for p in sys.path]
    roots = [r for r in roots if path.startswith(r.rstrip(os.sep) + os.sep)]
    return os.path.relpath(path, max(roots, key=len)) if roots else os.path.basename(path)


@contextlib.contextmanager
def _relative_source_names():
    """TorchScript's debug info records the file each scripted function came from. Recording it relative
    to its import root keeps the checkout's (and the virtual environment's) location out of the file,
    so exports from clones at different paths are byte-identical."""
    original = torch._sources.get_source_lines_and_file
    holders = [m for m in (torch._sources, torch.jit.frontend, torch.jit.annotations, torch._jit_internal)
               if getattr(m, "get_source_lines_and_file", None) is original]

    def relative(obj, error_msg=None):
        lines, lineno, filename = original(obj, error_msg)
        return lines, lineno, _import_path(filename)
    for module in holders:
        module.get_source_lines_and_file = relative
    try:
        yield
    finally:
        for module in holders:
            module.get_source_lines_and_file = original


def script(net: Im2LatexNet, tokens: list[str], threshold: int, pad: int, glyph_heights: list[float],
           beam_width: int, length_penalty: float = 0.0, agreement: float = 16.0) -> torch.jit.ScriptModule:
    with warnings.catch_warnings(), _relative_source_names():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated for torch.export, which cannot hold a decoding loop
        return torch.jit.script(FormulaReader(net.eval(), tokens, threshold, pad, glyph_heights, beam_width, length_penalty,
                                              agreement))


def check_parity(net: Im2LatexNet, scripted: torch.jit.ScriptModule, batches: list[Tensor], beam_width: int) -> int:
    """Compare scripted and eager decoding token for token, the best hypothesis of the beam and the one the
    consensus picks; raises on the first mismatch. Returns images checked."""
    eager = FormulaReader(net.eval(), [], 0, 0, [1.0], beam_width, scripted.length_penalty, scripted.agreement)
    checked = 0
    for batch in batches:
        for a, b in ((eager.decode(batch, beam_width), scripted.decode(batch, beam_width)),
                     (eager.decode_best([batch])[0], scripted.decode_best([batch])[0])):
            for n, (x, y) in enumerate(zip(a, b)):
                if x != y:
                    raise Im2LatexError(f"export parity failed: image {checked + n} decodes to {y} scripted but {x} eager")
        checked += batch.shape[0]
    return checked


class _Encode(nn.Module):
    """images (B, 1, H, W) -> every decoder layer's memory keys and values (layers, B, heads, cells, head_dim), and
    the padding bias (B, 1, 1, cells): Im2LatexNet.encode as one graph."""

    def __init__(self, net: Im2LatexNet):
        super().__init__()
        self.net = net

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        memory = self.net.encode(images)
        return torch.stack([m[0] for m in memory]), torch.stack([m[1] for m in memory]), memory[0][2]


class _Step(nn.Module):
    """One decoding step of Im2LatexNet.step with its cache, for n rows reading B images' memory (n / B rows each,
    the beams): the newest token (n,) and its position (1,), the memory, the past keys and values (layers, n,
    heads, t, head_dim) -> log-probabilities (n, V) and the keys and values grown by one position."""

    def __init__(self, net: Im2LatexNet):
        super().__init__()
        self.net = net

    def forward(self, token: Tensor, position: Tensor, mem_k: Tensor, mem_v: Tensor, mem_bias: Tensor, past_k: Tensor,
                past_v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        net = self.net
        x = net.embed(token[:, None]) * math.sqrt(net.d_model) + net.pos.index_select(0, position)[None]
        keys, values = [], []
        for i, layer in enumerate(net.layers):  # DecoderLayer.forward with a cache, its beams grouped by image
            h = layer.norm1(x)
            k, v = layer.self_attn.keys_values(h)
            k, v = torch.cat([past_k[i], k], 2), torch.cat([past_v[i], v], 2)
            x = x + layer.self_attn(h, k, v, False)
            h = layer.norm2(x)
            grouped = h.reshape(mem_k.shape[1], -1, h.shape[-1])
            x = x + layer.cross_attn(grouped, mem_k[i], mem_v[i], False, mem_bias).reshape(x.shape)
            x = x + layer.ff(layer.norm3(x))
            keys.append(k)
            values.append(v)
        return torch.log_softmax(net.head(net.norm(x[:, -1])).float(), dim=-1), torch.stack(keys), torch.stack(values)


def export_onnx(net: Im2LatexNet, tokens: list[str], folder: str | Path, threshold: int, pad: int, glyph_height: float,
                glyph_heights: list[float], beam_width: int, length_penalty: float, agreement: float) -> None:
    """Write FOLDER/encoder.onnx, decoder.onnx and reader.json (the vocabulary and the reading settings)."""
    net = net.eval()
    layers, heads = len(net.layers), net.layers[0].self_attn.heads
    head_dim = net.d_model // heads
    images = torch.rand(2, 1, 40, 96)
    with torch.no_grad():
        mem_k, mem_v, mem_bias = _Encode(net).eval()(images)
    n, t = 6, 3  # three beams of each of the two images, three tokens in
    step_inputs = (torch.zeros(n, dtype=torch.long), torch.tensor([t]), mem_k, mem_v, mem_bias,
                   torch.zeros(layers, n, heads, t, head_dim), torch.zeros(layers, n, heads, t, head_dim))
    memory_axes = {"mem_k": {1: "images", 3: "cells"}, "mem_v": {1: "images", 3: "cells"}, "mem_bias": {0: "images", 3: "cells"}}
    stride = 8  # pixels per encoder cell (Encoder: a max pool and two stride-2 stages)
    settings = {"tokens": tokens, "threshold": threshold, "pad": pad, "glyph_height": glyph_height,
                "glyph_heights": glyph_heights, "beam_width": beam_width, "length_penalty": length_penalty,
                "agreement": agreement, "max_len": net.max_len, "max_run": MAX_RUN, "pad_id": net.pad_id,
                "start_id": net.start_id, "end_id": net.end_id, "delta": net.delta.tolist(), "layers": layers,
                "heads": heads, "head_dim": head_dim, "max_height": stride * int(net.encoder.pos_y.shape[0]),
                "max_width": stride * int(net.encoder.pos_x.shape[0])}
    with atomic_dir(folder) as tmp, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript-based exporter is deprecated for the torch.export one
        torch.onnx.export(_Encode(net).eval(), (images,), str(tmp / ENCODER), input_names=["images"],
                          output_names=["mem_k", "mem_v", "mem_bias"], opset_version=ONNX_OPSET, dynamo=False,
                          dynamic_axes={"images": {0: "images", 2: "height", 3: "width"}, **memory_axes})
        torch.onnx.export(_Step(net).eval(), step_inputs, str(tmp / DECODER),
                          input_names=["token", "position", "mem_k", "mem_v", "mem_bias", "past_k", "past_v"],
                          output_names=["logp", "k", "v"], opset_version=ONNX_OPSET, dynamo=False,
                          dynamic_axes={"token": {0: "rows"}, "logp": {0: "rows"}, **memory_axes,
                                        **{name: {1: "rows", 3: "steps"} for name in ("past_k", "past_v")},
                                        **{name: {1: "rows", 3: "steps + 1"} for name in ("k", "v")}})
        (tmp / SETTINGS).write_text(json.dumps(settings))


def onnx_agreement(scripted: torch.jit.ScriptModule, onnx: OnnxReader, images: list[Tensor]) -> float:
    """Share of `images` (uint8 (H, W)) that the ONNX reader reads exactly as the TorchScript file does."""
    if not images:
        return 1.0
    ours, theirs = onnx.read([i.numpy() for i in images])[0], scripted.read(images)[0]
    return sum(a == b for a, b in zip(ours, theirs)) / len(images)
