"""ResNet encoder with a 2-D positional encoding, Transformer decoder with a 1-D one, and decoding
(greedy and beam search, batched, with cached keys/values, constrained to balanced braces).
Written for TorchScript: the exported file holds all of this."""
import math
from pathlib import Path
from typing import List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock

from im2latex.tokens import END, PAD, START
from im2latex.files import atomic_file

# Decoding stops a token from running longer than this (braces exempt). A model that has lost its place in
# the image tends to fill the rest with `\qquad \qquad …` until max_len; real formulas rarely repeat a
# token more than 4 times in a row (17 of 1,000 real validation formulas, nearly all of them spacing).
MAX_RUN = 4


def teacher_forcing(rows: List[Tensor], pad: int, start: int, end: int) -> Tuple[Tensor, Tensor]:
    """Token id rows -> decoder inputs `start + ids` and targets `ids + end`, both (B, longest + 1), padded."""
    longest = max([int(row.shape[0]) for row in rows]) + 1
    inputs = torch.full((len(rows), longest), pad, dtype=torch.long)
    targets = torch.full((len(rows), longest), pad, dtype=torch.long)
    for n, row in enumerate(rows):
        length = int(row.shape[0])
        inputs[n, 0] = start
        inputs[n, 1:length + 1] = row
        targets[n, :length] = row
        targets[n, length] = end
    return inputs, targets


def sinusoid(positions: int, channels: int) -> Tensor:
    """(positions, channels) sinusoidal encoding, as in 'Attention is all you need'."""
    pos = torch.arange(positions, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, channels, 2, dtype=torch.float32) * (-math.log(10000.0) / channels))
    table = torch.zeros(positions, channels)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: channels // 2])
    return table


def cell_bias(images: Tensor) -> Tensor:
    """Attention bias (B, 1, 1, h * w) over the encoder's grid of cells: -inf on the cells lying wholly in
    batch padding (pixels below 0, see to_batch), so a short formula reads the same alone as beside a wide
    one. The cells: a 2x2 max pool, then two stride-2 convolutions centred on even pixels."""
    inside = F.max_pool2d((images[:, :1] >= 0).float(), 2)[:, :, ::4, ::4]
    return torch.zeros_like(inside).masked_fill(inside == 0, float("-inf")).flatten(1)[:, None, None, :]


class Encoder(nn.Module):
    """Grayscale image (B, 1, H, W), ink = 1 -> features (B, H/8 * W/8, d_model) with 2-D positions, then
    `layers` self-attention layers over them: each cell sees the whole formula before the decoder reads it."""

    def __init__(self, channels: int, d_model: int, max_side: int, layers: int = 0, heads: int = 4, ff: int = 512):
        super().__init__()
        c = channels

        def layer(cin: int, cout: int, stride: int) -> nn.Sequential:
            down = None if stride == 1 and cin == cout else nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            return nn.Sequential(BasicBlock(cin, cout, stride, down), BasicBlock(cout, cout))

        self.cnn = nn.Sequential(
            nn.Conv2d(1, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            layer(c, c, 1), layer(c, 2 * c, 2), layer(2 * c, d_model, 2))
        half = d_model // 2
        self.register_buffer("pos_y", sinusoid(max_side, half), persistent=False)
        self.register_buffer("pos_x", sinusoid(max_side, d_model - half), persistent=False)
        self.layers = nn.ModuleList([EncoderLayer(d_model, heads, ff) for _ in range(layers)])
        # the cells as the decoder reads them: without this norm (ReLU features plus positions, of any scale) the
        # decoder's first 1,490 steps reached validation token accuracy 0.58 instead of 0.66 (docs/experiments.md, run Z)
        self.norm = nn.LayerNorm(d_model)

    def forward(self, images: Tensor) -> Tensor:
        features = self.cnn(images.clamp(min=0.0))  # (B, d, h, w); batch padding reads as background
        b, d, h, w = features.shape
        pos = torch.cat([self.pos_y[:h, None, :].expand(h, w, self.pos_y.shape[1]),
                         self.pos_x[None, :w, :].expand(h, w, self.pos_x.shape[1])], dim=-1)
        x = features.permute(0, 2, 3, 1).reshape(b, h * w, d) + pos.reshape(1, h * w, d)
        if len(self.layers) > 0:
            bias = cell_bias(images)
            for layer in self.layers:
                x = layer(x, bias)
        return self.norm(x)


@torch.jit.unused
def attend(q: Tensor, k: Tensor, v: Tensor, bias: Optional[Tensor], dropout: float, causal: bool) -> Tensor:
    """Attention in training (eager): under CPU bf16 autocast PyTorch's kernel runs in bf16, which at these sizes (tens
    of queries, a few hundred keys) is slower than float32; in float32 training makes 12-20% more steps per second."""
    if q.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            return F.scaled_dot_product_attention(q.float(), k.float(), v.float(), bias, dropout, causal)
    return F.scaled_dot_product_attention(q, k, v, bias, dropout, causal)


class Attention(nn.Module):
    """Multi-head attention whose keys/values are projected separately, so they can be cached."""

    def __init__(self, d_model: int, heads: int, dropout: float):
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.query, self.key_value, self.out = nn.Linear(d_model, d_model), nn.Linear(d_model, 2 * d_model), nn.Linear(d_model, d_model)

    def split(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.heads, d // self.heads).transpose(1, 2)

    def keys_values(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        k, v = self.key_value(x).chunk(2, dim=-1)
        return self.split(k), self.split(v)

    def forward(self, x: Tensor, k: Tensor, v: Tensor, causal: bool, bias: Optional[Tensor] = None) -> Tensor:
        q = self.split(self.query(x))
        dropout = self.dropout if self.training else 0.0
        if torch.jit.is_scripting():
            y = F.scaled_dot_product_attention(q, k, v, bias, dropout, causal)
        else:
            y = attend(q, k, v, bias, dropout, causal)
        b, h, n, dh = y.shape
        return self.out(y.transpose(1, 2).reshape(b, n, h * dh))


class EncoderLayer(nn.Module):
    """Pre-norm self-attention and feed-forward over the encoder's cells (padding cells hidden by `bias`)."""

    def __init__(self, d_model: int, heads: int, ff: int):
        super().__init__()
        self.attn = Attention(d_model, heads, 0.0)
        self.norm1, self.norm2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, ff), nn.GELU(), nn.Linear(ff, d_model))

    def forward(self, x: Tensor, bias: Tensor) -> Tensor:
        h = self.norm1(x)
        k, v = self.attn.keys_values(h)
        x = x + self.attn(h, k, v, False, bias)
        return x + self.ff(self.norm2(x))


class DecoderLayer(nn.Module):
    def __init__(self, d_model: int, heads: int, ff: int, dropout: float):
        super().__init__()
        self.self_attn, self.cross_attn = Attention(d_model, heads, dropout), Attention(d_model, heads, dropout)
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(d_model), nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.ff = nn.Sequential(nn.Linear(d_model, ff), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff, d_model))
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, mem_k: Tensor, mem_v: Tensor, mem_bias: Tensor, past_k: Optional[Tensor],
                past_v: Optional[Tensor], group: int = 1) -> Tuple[Tensor, Tensor, Tensor]:
        """x: the new positions (all of them in training, one when decoding with a cache). `group` rows of x in a
        row read one image's memory (the beams of beam search): their queries go to it together, so it is read
        once rather than once per beam."""
        h = self.norm1(x)
        k, v = self.self_attn.keys_values(h)
        if past_k is not None and past_v is not None:
            k, v = torch.cat([past_k, k], dim=2), torch.cat([past_v, v], dim=2)
        x = x + self.drop(self.self_attn(h, k, v, causal=past_k is None and x.shape[1] > 1))
        h = self.norm2(x)
        if group > 1:
            b, n, d = h.shape
            x = x + self.drop(self.cross_attn(h.reshape(b // group, group * n, d), mem_k, mem_v, False, mem_bias).reshape(b, n, d))
        else:
            x = x + self.drop(self.cross_attn(h, mem_k, mem_v, False, mem_bias))
        x = x + self.drop(self.ff(self.norm3(x)))
        return x, k, v


class Im2LatexNet(nn.Module):
    """The whole network. `tokens` (the vocabulary) is kept so decoding can forbid unbalanced braces."""

    def __init__(self, tokens: List[str], d_model: int, heads: int, layers: int, ff: int, dropout: float,
                 encoder_channels: int, max_len: int, encoder_positions: int = 512, encoder_layers: int = 0):
        super().__init__()
        self.max_len, self.d_model = max_len, d_model
        self.pad_id, self.start_id, self.end_id, self.max_run = PAD, START, END, MAX_RUN
        self.encoder = Encoder(encoder_channels, d_model, encoder_positions, encoder_layers, heads, ff)
        self.embed = nn.Embedding(len(tokens), d_model)
        # scaled by sqrt(d_model) when used: unit-size embeddings that do not drown the positional encoding
        nn.init.normal_(self.embed.weight, std=d_model ** -0.5)
        self.register_buffer("pos", sinusoid(max_len + 2, d_model), persistent=False)
        self.layers = nn.ModuleList([DecoderLayer(d_model, heads, ff, dropout) for _ in range(layers)])
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, len(tokens))
        # +1 opens, -1 closes: column 0 braces { }, column 1 \left \right
        delta = torch.zeros(len(tokens), 2, dtype=torch.long)
        for i, t in enumerate(tokens):
            delta[i, 0] = 1 if t == "{" else -1 if t == "}" else 0
            # \left( opens and \right) closes; \leftarrow and \rightarrow are arrows, not delimiters
            delta[i, 1] = (1 if t.startswith("\\left") and len(t) > 5 and not t[5].isalpha() else
                           -1 if t.startswith("\\right") and len(t) > 6 and not t[6].isalpha() else 0)
        self.register_buffer("delta", delta, persistent=False)

    def encode(self, images: Tensor) -> List[Tuple[Tensor, Tensor, Tensor]]:
        """Memory keys/values of every decoder layer, computed once per image, each with the attention bias
        that hides the feature cells lying in batch padding (cell_bias)."""
        memory = self.encoder(images)
        bias = cell_bias(images)
        out: List[Tuple[Tensor, Tensor, Tensor]] = []
        for layer in self.layers:
            k, v = layer.cross_attn.keys_values(memory)
            out.append((k, v, bias))
        return out

    def forward(self, images: Tensor, tokens: Tensor) -> Tensor:
        """Teacher forcing: logits (B, T, V) for the next token after each of `tokens` (B, T)."""
        memory = self.encode(images)
        x = self.embed(tokens) * math.sqrt(self.d_model) + self.pos[: tokens.shape[1]]
        for i, layer in enumerate(self.layers):
            x, _, _ = layer(x, memory[i][0], memory[i][1], memory[i][2], None, None)
        return self.head(self.norm(x))

    def step(self, tokens: Tensor, position: int, memory: List[Tuple[Tensor, Tensor, Tensor]],
             cache: List[Tuple[Tensor, Tensor]], use_cache: bool, group: int = 1) -> Tuple[Tensor, List[Tuple[Tensor, Tensor]]]:
        """Log-probabilities of the next token. With the cache only the newest token is fed; without it,
        the whole prefix `tokens` (B, position + 1) is recomputed (kept to measure what the cache saves).
        Each `group` rows of `tokens` read one image's `memory` (see DecoderLayer)."""
        if use_cache:
            x = self.embed(tokens[:, -1:]) * math.sqrt(self.d_model) + self.pos[position: position + 1]
        else:
            x = self.embed(tokens) * math.sqrt(self.d_model) + self.pos[: tokens.shape[1]]
        new_cache: List[Tuple[Tensor, Tensor]] = []
        for i, layer in enumerate(self.layers):
            mk, mv, mb = memory[i]
            past_k: Optional[Tensor] = None
            past_v: Optional[Tensor] = None
            if use_cache and position > 0:
                past_k, past_v = cache[i]
            x, k, v = layer(x, mk, mv, mb, past_k, past_v, group)
            new_cache.append((k, v))
        return F.log_softmax(self.head(self.norm(x[:, -1])).float(), dim=-1), new_cache

    def constrain(self, logp: Tensor, depth: Tensor, steps_left: int, tokens: Tensor) -> Tensor:
        """Forbid what would close an unopened group, the end while a group is open, and any token after
        which the remaining steps could not close every open group: the output is always balanced.
        Also forbid a token that is not a brace from running more than MAX_RUN times in a row."""
        after = depth[:, None, :] + self.delta[None, :, :]  # (B, V, 2) open groups after each candidate
        bad = (after < 0).any(-1) | (after.sum(-1) > steps_left - 1)
        if tokens.shape[1] >= self.max_run:
            last = tokens[:, -1]
            run = (tokens[:, -self.max_run:] == last[:, None]).all(-1) & (self.delta[last] == 0).all(-1)
            bad = bad | ((F.one_hot(last, bad.shape[1]) > 0) & run[:, None])
        bad[:, self.end_id] = (depth > 0).any(-1)
        bad[:, self.pad_id] = True
        bad[:, self.start_id] = True
        return logp.masked_fill(bad, float("-inf"))

    @torch.jit.export
    def greedy(self, images: Tensor, max_len: int = 0, use_cache: bool = True) -> Tensor:
        """Token ids (B, L) of the most likely formula of each image, ending with the end token (or cut at max_len)."""
        max_len = max_len if max_len > 0 else self.max_len
        memory = self.encode(images)
        b = images.shape[0]
        tokens = torch.full((b, 1), self.start_id, dtype=torch.long, device=images.device)
        depth = torch.zeros(b, 2, dtype=torch.long, device=images.device)
        done = torch.zeros(b, dtype=torch.bool, device=images.device)
        cache: List[Tuple[Tensor, Tensor]] = []
        for t in range(max_len):
            logp, cache = self.step(tokens, t, memory, cache, use_cache)
            nxt = self.constrain(logp, depth, max_len - t, tokens).argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, self.pad_id), nxt)
            depth = depth + self.delta[nxt] * (~done)[:, None].long()
            tokens = torch.cat([tokens, nxt[:, None]], dim=1)
            done = done | (nxt == self.end_id)
            if bool(done.all()):
                break
        return tokens[:, 1:]

    @torch.jit.export
    def beam_search(self, images: Tensor, width: int, max_len: int = 0, use_cache: bool = True,
                    length_penalty: float = 0.0) -> Tensor:
        """Beam search, batched over images and beams; returns the best hypothesis per image (B, L).
        Hypotheses are ranked by their summed log-probability divided by ((5 + length) / 6) ** length_penalty
        (GNMT's): 0 ranks by the sum, which favours finishing early; higher values favour longer readings."""
        tokens, logp, lengths = self.beams(images, width, max_len, use_cache, length_penalty)
        ranks = logp / ((5.0 + lengths) / 6.0) ** length_penalty
        return tokens[torch.arange(tokens.shape[0], device=images.device), ranks.argmax(-1)]

    @torch.jit.export
    def beams(self, images: Tensor, width: int, max_len: int = 0, use_cache: bool = True,
              length_penalty: float = 0.0) -> Tuple[Tensor, Tensor, Tensor]:
        """Every final hypothesis of beam_search: token ids (B, width, L), their summed log-probabilities and
        their lengths (B, width; the end token counted)."""
        max_len = max_len if max_len > 0 else self.max_len
        b, dev = images.shape[0], images.device
        memory = self.encode(images)  # shared by each image's beams (rows b * width ... b * width + width - 1)
        n = b * width
        tokens = torch.full((n, 1), self.start_id, dtype=torch.long, device=dev)
        depth = torch.zeros(n, 2, dtype=torch.long, device=dev)
        done = torch.zeros(n, dtype=torch.bool, device=dev)
        scores = torch.zeros(b, width, device=dev)
        scores[:, 1:] = float("-inf")  # all beams start identical: keep one
        lengths = torch.zeros(n, device=dev)  # tokens written by each beam, its end token included
        cache: List[Tuple[Tensor, Tensor]] = []
        vocab = int(self.delta.shape[0])
        for t in range(max_len):
            logp, cache = self.step(tokens, t, memory, cache, use_cache, width)
            logp = self.constrain(logp, depth, max_len - t, tokens)
            # a finished beam continues only with padding, at no cost
            finished = torch.full_like(logp, float("-inf"))
            finished[:, self.pad_id] = 0.0
            logp = torch.where(done[:, None], finished, logp)
            total = scores.reshape(n, 1) + logp
            grown = lengths + (~done).float()  # a finished beam keeps its length
            ranked = total / ((5.0 + grown[:, None]) / 6.0) ** length_penalty if length_penalty != 0.0 else total
            flat = ranked.reshape(b, width * vocab).topk(width, dim=-1)[1]
            scores = total.reshape(b, width * vocab).gather(1, flat)
            beam = torch.div(flat, vocab, rounding_mode="floor")
            nxt = (flat % vocab).reshape(n)
            origin = (beam + torch.arange(b, device=dev)[:, None] * width).reshape(n)
            tokens = torch.cat([tokens.index_select(0, origin), nxt[:, None]], dim=1)
            depth = depth.index_select(0, origin) + self.delta[nxt] * (~done.index_select(0, origin))[:, None].long()
            done = done.index_select(0, origin) | (nxt == self.end_id)
            lengths = grown.index_select(0, origin)
            cache = [(k.index_select(0, origin), v.index_select(0, origin)) for k, v in cache]
            if bool(done.all()):
                break
        return tokens[:, 1:].reshape(b, width, -1), scores, lengths.reshape(b, width)


def save_model(net: Im2LatexNet, tokens: List[str], model: dict, path: Union[str, Path]) -> None:
    """The trained weights with what is needed to rebuild the network (`model`: its keyword arguments)."""
    with atomic_file(path, "wb") as f:
        torch.save({"tokens": tokens, "model": model, "state_dict": net.state_dict()}, f)


def load_model(path: Union[str, Path]) -> Tuple[Im2LatexNet, List[str]]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    net = Im2LatexNet(state["tokens"], **state["model"])
    net.load_state_dict(state["state_dict"])
    return net.eval(), state["tokens"]
