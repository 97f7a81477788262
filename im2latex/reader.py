"""The reader, the product that `predict`, `evaluate` and the server use: FormulaReader reads images of any size
(input normalisation, several reading sizes, beam search, a consensus of the readings) and is what the
TorchScript file holds."""
from typing import List, Tuple

import torch
from torch import Tensor, nn

from im2latex import Im2LatexError
from im2latex.model.inputs import prepare_sizes, to_batch
from im2latex.model.network import Im2LatexNet, teacher_forcing
from im2latex.tokens import strip_specials


READ_BATCH = 16  # images decoded together by FormulaReader.read


def edit_distances(sequences: List[List[int]]) -> Tensor:
    """Levenshtein distance between every pair of token sequences (C, C), computed one row of the table at a
    time for all pairs at once (insertions as a running minimum along the row)."""
    c = len(sequences)
    longest = max([len(s) for s in sequences] + [1])
    padded = torch.full((c, longest), -1, dtype=torch.long)
    for i, s in enumerate(sequences):
        if len(s) > 0:
            padded[i, :len(s)] = torch.tensor(s, dtype=torch.long)
    lengths = torch.tensor([len(s) for s in sequences], dtype=torch.long)
    a, b = padded.repeat_interleave(c, 0), padded.repeat(c, 1)  # pair i * c + j: sequences i and j
    len_a, len_b = lengths.repeat_interleave(c), lengths.repeat(c)[:, None]
    steps = torch.arange(longest + 1)
    row = steps.expand(c * c, longest + 1)  # from a's empty prefix
    out = row.gather(1, len_b).squeeze(1)
    for i in range(1, longest + 1):
        kept = torch.minimum(row[:, :-1] + (a[:, i - 1:i] != b).long(), row[:, 1:] + 1)  # substitute / delete
        row = torch.cat([torch.full((c * c, 1), i, dtype=torch.long), kept], 1)
        row = torch.cummin(row - steps, 1)[0] + steps  # insert
        out = torch.where(len_a == i, row.gather(1, len_b).squeeze(1), out)
    return out.reshape(c, c)


def consensus(readings: List[List[int]], confidences: List[float], agreement: float) -> int:
    """Index of the reading closest to all the others (minimum Bayes risk): the least sum of its edit distances
    to each reading (over the longer length), each weighed by that reading's confidence ** agreement. A reading
    that several sizes or beams agree on wins over a lone confident one; a large `agreement` keeps the most
    confident reading. Of equal readings, the most confident."""
    if len(readings) == 1:
        return 0
    lengths = torch.tensor([max(len(r), 1) for r in readings], dtype=torch.float)
    distance = edit_distances(readings).float() / torch.maximum(lengths[:, None], lengths[None, :])
    confidence = torch.tensor(confidences, dtype=torch.float)
    risk = (distance * confidence[None, :] ** agreement).sum(1)
    # the same reading at several sizes ties: the most confident of them is the one reported
    return int(torch.where(risk <= risk.min(), confidence, torch.full_like(confidence, -1.0)).argmax())


class FormulaReader(nn.Module):
    """forward(images): uint8 grayscale images (H, W) of any size -> LaTeX strings (space-separated tokens).
    A blank image gives an empty string. Each image is read at every size in `glyph_heights` (glyph sizes in
    pixels), each reading keeping all its beam's hypotheses, and the one that agrees best with the others wins
    (`consensus`). `length_penalty`: see Im2LatexNet.beam_search."""

    def __init__(self, net: Im2LatexNet, tokens: List[str], threshold: int, pad: int, glyph_heights: List[float],
                 beam_width: int, length_penalty: float = 0.0, agreement: float = 16.0):
        super().__init__()
        self.net, self.tokens = net, tokens
        self.threshold, self.pad, self.glyph_heights, self.beam_width = threshold, pad, glyph_heights, beam_width
        self.length_penalty, self.agreement, self.read_batch = length_penalty, agreement, READ_BATCH

    @torch.jit.export
    def decode(self, batch: Tensor, beam_width: int) -> List[List[int]]:
        """Token ids for a prepared batch (B, 1, H, W): greedy when beam_width is 1."""
        with torch.no_grad():
            ids = self.net.greedy(batch) if beam_width <= 1 else self.net.beam_search(
                batch, beam_width, length_penalty=self.length_penalty)
        rows: List[List[int]] = ids.tolist()
        return [strip_specials(row, self.net.end_id, [self.net.pad_id, self.net.start_id]) for row in rows]

    @torch.jit.export
    def to_text(self, ids: List[int]) -> str:
        return " ".join([self.tokens[i] for i in ids])

    @torch.jit.export
    def confidence(self, batch: Tensor, ids: List[List[int]]) -> List[float]:
        """Per image, the geometric mean of the probabilities the network gives its own output tokens
        (end token included): 1.0 is certain, near 0 is a guess."""
        inputs, targets = teacher_forcing([torch.tensor(row, dtype=torch.long) for row in ids],
                                          self.net.pad_id, self.net.start_id, self.net.end_id)
        with torch.no_grad():
            logp = torch.log_softmax(self.net(batch, inputs).float(), dim=-1)
        mask = targets != self.net.pad_id
        picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1) * mask
        return (picked.sum(1) / mask.sum(1)).exp().tolist()

    @torch.jit.export
    def candidates(self, batches: List[Tensor]) -> Tuple[List[List[List[int]]], List[List[float]]]:
        """The same images prepared at several sizes, a batch per size -> per image, every hypothesis its beams
        ended with at every size (the greedy reading when beam_width is 1), and the confidence of each."""
        readings: List[List[List[int]]] = []
        scores: List[List[float]] = []
        for batch in batches:
            with torch.no_grad():
                if self.beam_width <= 1:
                    hypotheses, confidences = self.net.greedy(batch)[:, None], torch.zeros(0)
                else:  # the beam's own log-probabilities give the confidences that teacher forcing would
                    hypotheses, logp, lengths = self.net.beams(batch, self.beam_width, length_penalty=self.length_penalty)
                    confidences = (logp / lengths.clamp(min=1.0)).exp()
            for k in range(hypotheses.shape[1]):
                rows: List[List[int]] = hypotheses[:, k].tolist()
                ids = [strip_specials(row, self.net.end_id, [self.net.pad_id, self.net.start_id]) for row in rows]
                found: List[float] = self.confidence(batch, ids) if self.beam_width <= 1 else confidences[:, k].tolist()
                for n, score in enumerate(found):
                    if n == len(readings):
                        no_readings: List[List[int]] = []
                        no_scores: List[float] = []
                        readings.append(no_readings)
                        scores.append(no_scores)
                    readings[n].append(ids[n])
                    scores[n].append(score)
        return readings, scores

    @torch.jit.export
    def decode_best(self, batches: List[Tensor]) -> Tuple[List[List[int]], List[float]]:
        """Per image, the token ids of the candidate `consensus` picks, and its confidence."""
        readings, scores = self.candidates(batches)
        chosen = [consensus(r, c, self.agreement) for r, c in zip(readings, scores)]
        return [r[k] for r, k in zip(readings, chosen)], [c[k] for c, k in zip(scores, chosen)]

    @torch.jit.export
    def prepare(self, image: Tensor) -> List[Tensor]:
        """A uint8 (H, W) image prepared at each reading size (empty tensors when it is blank)."""
        return prepare_sizes(image, self.threshold, self.pad, self.glyph_heights)

    @torch.jit.export
    def read(self, images: List[Tensor]) -> Tuple[List[str], List[float]]:
        """LaTeX and confidence of each image; a blank image gives "" with confidence 0."""
        return self.read_prepared([self.prepare(image) for image in images])

    @torch.jit.export
    def read_prepared(self, images: List[List[Tensor]]) -> Tuple[List[str], List[float]]:
        """`read` of images already prepared (`prepare`): the server prepares each once, off its event loop."""
        where: List[int] = []
        for n in range(len(images)):
            if images[n][0].numel() > 0:
                where.append(n)
        texts = ["" for _ in images]
        scores = [0.0 for _ in images]
        if len(where) > 0:
            # decoded in batches of similar width: a batch costs its widest image's cells (and longest formula)
            # for every image in it, so a wide formula among narrow ones made their reading several times slower.
            # A stable sort: images of equal width keep their order, so the ONNX reader forms the same batches
            order: List[int] = torch.sort(torch.tensor([int(images[n][0].shape[1]) for n in where]), stable=True)[1].tolist()
            for start in range(0, len(order), self.read_batch):
                part = [where[i] for i in order[start:start + self.read_batch]]
                batches = [to_batch([images[n][k] for n in part]) for k in range(len(self.glyph_heights))]
                ids, confidences = self.decode_best(batches)
                for n, row, score in zip(part, ids, confidences):
                    texts[n] = self.to_text(row)
                    scores[n] = score
        return texts, scores

    def forward(self, images: List[Tensor]) -> List[str]:
        return self.read(images)[0]


def reading_sizes(glyph_height: float, read_scales: list[float]) -> list[float]:
    """The glyph sizes the reader reads an image at: the training size (preprocess.glyph_height) times each
    of read.read_scales."""
    if not read_scales or min(read_scales) <= 0:
        raise Im2LatexError(f"params.yaml: read.read_scales must list one or more positive factors, got {read_scales!r}")
    return [glyph_height * scale for scale in read_scales]
