"""The reader without torch: the network as two ONNX graphs (the encoder, and one decoder step with its key/value
cache, written by im2latex/export.py) run by ONNX Runtime, with the input normalisation, beam search and consensus
in NumPy. It reads as the TorchScript file does (im2latex/reader.py, im2latex/model/inputs.py: the same steps, in the
same order, checked against it by tests/test_onnx_reader.py), and it decodes every reading size of an image in one
beam search, which makes it faster. Imports no torch, so the server's container does without it."""
import json
from pathlib import Path

import numpy as np

from im2latex import Im2LatexError
from im2latex.tokens import strip_specials

ENCODER, DECODER, SETTINGS = "encoder.onnx", "decoder.onnx", "reader.json"
READ_BATCH = 16  # images read together, as FormulaReader.read


# --- input normalisation: im2latex/model/inputs.py in NumPy ---

def dark_ink(image: np.ndarray) -> np.ndarray:
    """inputs.dark_ink: light ink on a dark background inverted, a tinted background brightened to white."""
    if image.size == 0:
        return image
    border = np.sort(np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]]))
    background = float(border[(border.size - 1) // 2])  # torch's median: the lower middle value
    if background < 128:
        image, background = 255 - image, 255.0 - background
    if background < 230:
        image = np.clip(np.round(image.astype(np.float32) * np.float32(255.0 / max(background, 1.0))), 0, 255).astype(np.uint8)
    return image


def glyph_size(ink: np.ndarray, max_pixels: int = 120000) -> float:
    """inputs.glyph_size: upper quartile of the heights (3 pixels and up) of the 8-connected ink components."""
    shrink = 1
    while ink.size > max_pixels:
        h, w = ink.shape
        ink = np.pad(ink, ((0, h % 2), (0, w % 2))).reshape((h + 1) // 2, 2, (w + 1) // 2, 2).any((1, 3))
        shrink *= 2
    h, w = ink.shape
    labels = np.arange(1, h * w + 1, dtype=np.int64).reshape(h, w) * ink
    while True:  # every pixel takes the largest label of its component, with pointer jumping
        padded = np.pad(labels, 1)
        spread = np.max([padded[y:y + h, x:x + w] for y in range(3) for x in range(3)], axis=0) * ink
        spread = np.maximum(spread, spread.ravel()[np.maximum(spread.ravel() - 1, 0)].reshape(h, w) * ink)
        if np.array_equal(spread, labels):
            break
        labels = spread
    flat = labels.ravel()
    keep = flat > 0
    if not keep.any():
        return 0.0
    _, component = np.unique(flat[keep], return_inverse=True)
    rows = np.repeat(np.arange(h), w)[keep]
    top, bottom = np.full(component.max() + 1, h), np.full(component.max() + 1, -1)
    np.minimum.at(top, component, rows)
    np.maximum.at(bottom, component, rows)
    heights = (bottom - top + 1) * shrink
    heights = heights[heights >= 3]
    return float(np.quantile(heights.astype(np.float32), 0.75)) if heights.size else 0.0


def resize_weights(size: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """Torch's antialiased bilinear taps (aten's _compute_weights_aa) with its float32 roundings: for each output
    pixel the first input pixel and the (out, taps) weights, zero past each pixel's own taps."""
    f32, f64 = np.float32, np.float64
    scale = f32(size) / f32(out)
    support = scale if scale >= 1.0 else f32(1.0)
    invscale = f32(1.0 / f64(scale)) if scale >= 1.0 else f32(1.0)
    center = (f64(scale) * (np.arange(out) + 0.5)).astype(f32)
    first = np.maximum(((center - support).astype(f64) + 0.5).astype(np.int64), 0)
    taps = np.minimum(((center + support).astype(f64) + 0.5).astype(np.int64), size) - first
    j = np.arange(taps.max())
    x = (((j + first[:, None]).astype(f32) - center[:, None]).astype(f64) + 0.5) * f64(invscale)
    x = np.abs(x.astype(f32))
    w = np.where((x < 1) & (j < taps[:, None]), f32(1) - x, f32(0))
    total = np.zeros(out, f32)
    for k in j:  # summed in torch's order
        total += w[:, k]
    return first, (w / np.where(total == 0, f32(1), total)[:, None]).astype(f32)


def resize_axis(image: np.ndarray, out: int, axis: int) -> np.ndarray:
    """One pass of torch's separable resize along `axis`; float64 sums rounded once to float32 per tap are
    torch's fused multiply-adds, so the result is torch's to the bit."""
    image = np.moveaxis(image, axis, -1)
    first, w = resize_weights(image.shape[-1], out)
    taps = image[..., np.minimum(first[:, None] + np.arange(w.shape[1]), image.shape[-1] - 1)]
    total = taps[..., 0] * w[:, 0]
    for k in range(1, w.shape[1]):
        total = (total.astype(np.float64) + taps[..., k].astype(np.float64) * w[:, k]).astype(np.float32)
    return np.moveaxis(total, -1, axis)


def resize(image: np.ndarray, scale: float) -> np.ndarray:
    """inputs.resize: float32 (H, W), bilinear, antialiased, as torch computes it (width first, then height);
    within 2% of 1 unchanged."""
    if abs(scale - 1.0) <= 0.02:
        return image
    height, width = max(1, int(round(image.shape[0] * scale))), max(1, int(round(image.shape[1] * scale)))
    if width != image.shape[1]:
        image = resize_axis(image, width, 1)
    return resize_axis(image, height, 0) if height != image.shape[0] else image


def prepare_sizes(image: np.ndarray, threshold: int, pad: int, glyph_heights: list[float]) -> list[np.ndarray]:
    """inputs.prepare_sizes: uint8 (H, W) -> uint8 images cropped to the ink, scaled to each glyph height, padded."""
    image = dark_ink(image)
    ink = image < threshold
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    if rows.size == 0:
        return [image[:0, :0] for _ in glyph_heights]
    crop = image[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].astype(np.float32)
    measured = glyph_size(ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]) if max(glyph_heights) > 0 else 0.0
    out = []
    for glyph_height in glyph_heights:
        resized = crop
        if glyph_height > 0:
            resized = resize(crop, min(4.0, max(0.2, glyph_height / measured)) if measured > 0 else 1.0)
        padded = np.pad(resized, pad, constant_values=255.0)
        out.append(np.clip(np.round(padded), 0, 255).astype(np.uint8))
    return out


def to_batch(images: list[np.ndarray]) -> np.ndarray:
    """inputs.to_batch: float (B, 1, H, W), ink 1, background 0, padding -1."""
    batch = np.full((len(images), 1, max(i.shape[0] for i in images), max(i.shape[1] for i in images)), -1.0, np.float32)
    for n, image in enumerate(images):
        batch[n, 0, :image.shape[0], :image.shape[1]] = 1.0 - image.astype(np.float32) / 255.0
    return batch


# --- consensus: im2latex/reader.py in NumPy ---

def edit_distances(sequences: list[list[int]]) -> np.ndarray:
    """reader.edit_distances: Levenshtein distance between every pair of sequences (C, C), all pairs at once."""
    c = len(sequences)
    longest = max([len(s) for s in sequences] + [1])
    padded = np.full((c, longest), -1, dtype=np.int64)
    for i, s in enumerate(sequences):
        padded[i, :len(s)] = s
    lengths = np.array([len(s) for s in sequences])
    a, b = np.repeat(padded, c, 0), np.tile(padded, (c, 1))
    len_a, len_b = np.repeat(lengths, c), np.tile(lengths, c)
    steps = np.arange(longest + 1)
    row = np.broadcast_to(steps, (c * c, longest + 1))
    pairs = np.arange(c * c)
    out = row[pairs, len_b]
    for i in range(1, longest + 1):
        kept = np.minimum(row[:, :-1] + (a[:, i - 1:i] != b), row[:, 1:] + 1)
        row = np.concatenate([np.full((c * c, 1), i), kept], 1)
        row = np.minimum.accumulate(row - steps, 1) + steps
        out = np.where(len_a == i, row[pairs, len_b], out)
    return out.reshape(c, c)


def consensus(readings: list[list[int]], confidences: list[float], agreement: float) -> int:
    """reader.consensus: the reading with the least confidence-weighed edit distance to all the others."""
    if len(readings) == 1:
        return 0
    lengths = np.array([max(len(r), 1) for r in readings], dtype=np.float32)
    distance = edit_distances(readings).astype(np.float32) / np.maximum(lengths[:, None], lengths[None, :])
    confidence = np.array(confidences, dtype=np.float32)
    risk = (distance * confidence[None, :] ** np.float32(agreement)).sum(1)
    return int(np.where(risk <= risk.min(), confidence, -1.0).argmax())


class OnnxReader:
    """read(images): uint8 grayscale (H, W) arrays -> (LaTeX strings, confidences), as FormulaReader.read.
    `folder` holds encoder.onnx, decoder.onnx and reader.json (written by `export_onnx`). `read_scales` and
    `beam_width`, when given, replace the exported reading (e.g. one size, greedy: the fast setting)."""

    def __init__(self, folder: str | Path, threads: int = 0, read_scales: list[float] | None = None,
                 beam_width: int | None = None):
        import onnxruntime as ort  # here, so that `--help` and the tests' collection stay fast

        folder = Path(folder)
        try:
            s = json.loads((folder / SETTINGS).read_text())
            self.tokens, self.threshold, self.pad = s["tokens"], s["threshold"], s["pad"]
            self.glyph_heights = s["glyph_heights"] if read_scales is None else [s["glyph_height"] * r for r in read_scales]
            self.beam_width = s["beam_width"] if beam_width is None else beam_width
            self.length_penalty, self.agreement, self.max_len = s["length_penalty"], s["agreement"], s["max_len"]
            self.pad_id, self.start_id, self.end_id, self.max_run = s["pad_id"], s["start_id"], s["end_id"], s["max_run"]
            self.delta = np.array(s["delta"], dtype=np.int64)  # (V, 2): +1 opens, -1 closes a group (Im2LatexNet.delta)
            self.layers, self.heads, self.head_dim = s["layers"], s["heads"], s["head_dim"]
            self.max_height, self.max_width = s["max_height"], s["max_width"]
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            self.encoder, self.decoder = (ort.InferenceSession(str(folder / name), options, providers=["CPUExecutionProvider"])
                                          for name in (ENCODER, DECODER))
        except (OSError, ValueError, KeyError, TypeError, RuntimeError, ort.capi.onnxruntime_pybind11_state.Fail) as e:
            what = f"{e.args[0]!r} missing from {SETTINGS}" if isinstance(e, KeyError) else str(e).splitlines()[0]
            raise Im2LatexError(f"cannot load ONNX model {folder}: {what}") from None

    def encode(self, batches: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The decoder's memory of several batches (one per reading size) stacked along the batch: each batch is
        encoded as FormulaReader encodes it, and the cells a smaller batch lacks are hidden (bias -inf)."""
        parts = [self.encoder.run(None, {"images": batch}) for batch in batches]
        cells = max(p[0].shape[3] for p in parts)
        keys, values, biases = [], [], []
        for k, v, bias in parts:
            missing = cells - k.shape[3]
            keys.append(np.pad(k, ((0, 0), (0, 0), (0, 0), (0, missing), (0, 0))))
            values.append(np.pad(v, ((0, 0), (0, 0), (0, 0), (0, missing), (0, 0))))
            biases.append(np.pad(bias, ((0, 0), (0, 0), (0, 0), (0, missing)), constant_values=-np.inf))
        return np.concatenate(keys, 1), np.concatenate(values, 1), np.concatenate(biases, 0)

    def constrain(self, logp: np.ndarray, depth: np.ndarray, steps_left: int, tokens: np.ndarray) -> np.ndarray:
        """Im2LatexNet.constrain: balanced braces and \\left/\\right, no run longer than max_run of one token."""
        after = depth[:, None, :] + self.delta[None, :, :]
        bad = (after < 0).any(-1) | (after.sum(-1) > steps_left - 1)
        if tokens.shape[1] >= self.max_run:
            last = tokens[:, -1]
            run = (tokens[:, -self.max_run:] == last[:, None]).all(-1) & (self.delta[last] == 0).all(-1)
            bad[np.arange(len(last)), last] |= run
        bad[:, self.end_id] = (depth > 0).any(-1)
        bad[:, self.pad_id] = True
        bad[:, self.start_id] = True
        return np.where(bad, -np.inf, logp).astype(np.float32)

    def beams(self, mem_k: np.ndarray, mem_v: np.ndarray, mem_bias: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Im2LatexNet.beams on B memories at once (`encode`): token ids (B, width, L), summed log-probabilities and
        lengths (B, width)."""
        width, lp = self.beam_width, self.length_penalty
        b = mem_k.shape[1]
        n = b * width
        tokens = np.full((n, 1), self.start_id, dtype=np.int64)
        depth = np.zeros((n, 2), dtype=np.int64)
        done = np.zeros(n, dtype=bool)
        scores = np.zeros((b, width), dtype=np.float32)
        scores[:, 1:] = -np.inf
        lengths = np.zeros(n, dtype=np.float32)
        past_k = past_v = np.zeros((self.layers, n, self.heads, 0, self.head_dim), dtype=np.float32)
        vocab = len(self.delta)
        for t in range(self.max_len):
            logp, past_k, past_v = self.decoder.run(None, {
                "token": tokens[:, -1], "position": np.array([t], dtype=np.int64), "mem_k": mem_k, "mem_v": mem_v,
                "mem_bias": mem_bias, "past_k": past_k, "past_v": past_v})
            logp = self.constrain(logp, depth, self.max_len - t, tokens)
            logp[done] = -np.inf
            logp[done, self.pad_id] = 0.0
            total = scores.reshape(n, 1) + logp
            grown = lengths + ~done
            ranked = total / ((5.0 + grown[:, None]) / 6.0) ** lp if lp != 0.0 else total
            flat = np.argsort(-ranked.reshape(b, width * vocab), axis=1, kind="stable")[:, :width]
            scores = np.take_along_axis(total.reshape(b, width * vocab), flat, 1)
            origin = (flat // vocab + np.arange(b)[:, None] * width).reshape(n)
            nxt = (flat % vocab).reshape(n)
            tokens = np.concatenate([tokens[origin], nxt[:, None]], 1)
            depth = depth[origin] + self.delta[nxt] * ~done[origin, None]
            done = done[origin] | (nxt == self.end_id)
            lengths = grown[origin]
            past_k, past_v = past_k[:, origin], past_v[:, origin]
            if done.all():
                break
        if width == 1 and not done.all():  # greedy readings cut at max_len: FormulaReader's confidence (teacher
            logp = self.decoder.run(None, {  # forcing) counts the end token after them too
                "token": tokens[:, -1], "position": np.array([tokens.shape[1] - 1], dtype=np.int64), "mem_k": mem_k,
                "mem_v": mem_v, "mem_bias": mem_bias, "past_k": past_k, "past_v": past_v})[0]
            scores[~done, 0] += logp[~done, self.end_id]
            lengths[~done] += 1
        return tokens[:, 1:].reshape(b, width, -1), scores, lengths.reshape(b, width)

    def decode_best(self, batches: list[np.ndarray]) -> tuple[list[list[int]], list[float]]:
        """FormulaReader.decode_best: per image of the batches (the same images at several sizes), the candidate
        (every size's every beam) that `consensus` picks, and its confidence. The batches are encoded as FormulaReader
        encodes them; then each image's sizes are decoded together, attending to that image's cells only (a cell
        hidden from all its sizes is dropped), so one long formula does not hold the others' decoding up."""
        mem_k, mem_v, mem_bias = self.encode(batches)
        images = batches[0].shape[0]
        best, scores = [], []
        for i in range(images):
            rows = [i + size * images for size in range(len(batches))]
            cells = np.isfinite(mem_bias[rows, 0, 0, :]).any(0)
            hypotheses, logp, lengths = self.beams(mem_k[:, rows][:, :, :, cells], mem_v[:, rows][:, :, :, cells],
                                                   mem_bias[rows][..., cells])
            confidences = np.exp(logp / np.maximum(lengths, 1.0))
            readings = [strip_specials(hypotheses[r, k].tolist(), self.end_id, [self.pad_id, self.start_id])
                        for r in range(len(rows)) for k in range(self.beam_width)]
            found = [float(confidences[r, k]) for r in range(len(rows)) for k in range(self.beam_width)]
            chosen = consensus(readings, found, self.agreement)
            best.append(readings[chosen])
            scores.append(found[chosen])
        return best, scores

    def prepare(self, image: np.ndarray) -> list[np.ndarray]:
        """A uint8 (H, W) image prepared at each reading size (empty arrays when it is blank)."""
        return prepare_sizes(image, self.threshold, self.pad, self.glyph_heights)

    def read(self, images: list[np.ndarray]) -> tuple[list[str], list[float]]:
        """LaTeX and confidence of each uint8 (H, W) image; a blank image gives "" with confidence 0."""
        return self.read_prepared([self.prepare(image) for image in images])

    def read_prepared(self, images: list[list[np.ndarray]]) -> tuple[list[str], list[float]]:
        """`read` of images already prepared (`prepare`)."""
        where = [n for n, p in enumerate(images) if p[0].size > 0]
        texts, scores = [""] * len(images), [0.0] * len(images)
        where.sort(key=lambda n: images[n][0].shape[1])  # similar widths together, as FormulaReader
        for start in range(0, len(where), READ_BATCH):
            part = where[start:start + READ_BATCH]
            ids, confidences = self.decode_best([to_batch([images[n][k] for n in part]) for k in range(len(self.glyph_heights))])
            for n, row, score in zip(part, ids, confidences):
                texts[n], scores[n] = " ".join(self.tokens[i] for i in row), score
        return texts, scores

    def __call__(self, images: list[np.ndarray]) -> list[str]:
        return self.read(images)[0]
