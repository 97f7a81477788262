"""Typed views of the sections of params.yaml; one loader. Fields have no defaults on purpose:
a missing or misspelt key fails loudly instead of silently taking a value nobody chose. The classes are pydantic
dataclasses: real dataclasses (asdict, replace) that validate their fields whenever one is built."""
from pathlib import Path

import yaml
from pydantic import ConfigDict, StrictBool, StrictFloat, StrictInt, StrictStr, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

from im2latex import Im2LatexError

# Strict per leaf type (StrictInt refuses '2', 2.0 and true; StrictFloat takes an int), not ConfigDict(strict=True):
# in strict mode a pydantic dataclass accepts only its own instances, not YAML's mapping, and a tuple not YAML's list.
_CLOSED = ConfigDict(extra="forbid")


@dataclass(frozen=True, config=_CLOSED)
class SyntheticConfig:
    train: StrictInt  # number of formulas per split
    validate: StrictInt
    test: StrictInt
    max_tokens: StrictInt  # longest generated formula
    dpi: tuple[StrictInt, StrictInt]  # each chunk of formulas is rendered at a dpi drawn from this range
    pad: tuple[StrictInt, StrictInt]  # white border added around the ink, in pixels
    noise: StrictFloat  # fraction of pixels turned into light gray specks
    font_sizes: list[StrictInt]  # document class sizes (10, 11, 12 pt), one drawn per chunk
    downsample: tuple[StrictFloat, StrictFloat]  # a chunk is rendered at dpi x f, then each image shrunk by f (antialiasing)
    bold: StrictFloat  # share of images with thickened strokes
    blur: StrictFloat  # share of images blurred a little
    binarise: StrictFloat  # share of images thresholded to black and white
    jpeg: StrictFloat  # share of images passed through a low-quality JPEG
    chunk: StrictInt  # formulas per LaTeX run (one page each) of the training split; each run draws one style
    eval_chunk: StrictInt  # the same for the test and validation splits: smaller, so that each spans many styles
    renderers: dict[StrictStr, StrictFloat]  # renderer -> weight: the chunks are shared out in proportion (rendering.RENDERERS)
    tinted: StrictFloat  # share of images on a tinted background with ink in a text colour's gray
    dark: StrictFloat  # share of images in dark mode (light ink on a dark background)
    markov: StrictFloat = 0.0  # share of the training formulas drawn from the real split's token pairs (data/markov.py)


@dataclass(frozen=True, config=_CLOSED)
class DataConfig:
    source: StrictStr  # synthetic | im2latex-100k | folder
    seed: StrictInt
    folder: StrictStr  # dataset in IM2LATEX-100K layout, for source=folder
    mirrors: list[StrictStr]  # base URLs of IM2LATEX-100K's files, tried in order, for source=im2latex-100k
    manifest: StrictStr  # URL of the record that publishes each file's size and md5: a cross-check of the md5s pinned in download.py
    synthetic: SyntheticConfig


@dataclass(frozen=True, config=_CLOSED)
class VocabConfig:
    min_freq: StrictInt  # tokens seen fewer times in the training split become <unk>


@dataclass(frozen=True, config=_CLOSED)
class PreprocessConfig:
    threshold: StrictInt  # a pixel darker than this is ink
    pad: StrictInt  # white border kept around the cropped ink, in pixels
    glyph_height: StrictFloat  # images are resized so that their glyph size (inputs.glyph_size) is this many pixels (0: not resized)
    max_height: StrictInt  # samples larger than these (after scaling) are dropped
    max_width: StrictInt
    max_tokens: StrictInt


def load_section(path: str | Path, section: str, cls: type):
    """Read one section of params.yaml into its dataclass."""
    try:
        params = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise Im2LatexError(f"cannot read {path}: {e}".splitlines()[0]) from None
    if not isinstance(params, dict) or section not in params:
        raise Im2LatexError(f"{path} has no '{section}' section")
    try:
        return TypeAdapter(cls).validate_python(params[section])
    except ValidationError as e:  # every problem, on one line: a renamed key is both unknown and missing
        raise Im2LatexError("params.yaml: " + "; ".join(_describe(section, error) for error in e.errors())) from None


def _describe(section: str, error: dict) -> str:
    """One pydantic error, named by its key's dotted path (data.synthetic.dpi[1])."""
    where = section + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"])
    if error["type"] == "missing":
        return f"{where} is missing"
    if error["type"] == "unexpected_keyword_argument":
        return f"{where} is an unknown key"
    return f"{where}: {error['msg'][0].lower()}{error['msg'][1:]}, got {error['input']!r}"


@dataclass(frozen=True, config=_CLOSED)
class ModelConfig:
    d_model: StrictInt
    heads: StrictInt
    layers: StrictInt  # decoder layers
    ff: StrictInt  # decoder feed-forward size
    dropout: StrictFloat
    encoder_channels: StrictInt  # width of the first ResNet stage (then x2, then d_model)
    encoder_positions: StrictInt  # positions per side of the encoder's 2-D table: images up to 8x this many pixels
    encoder_layers: StrictInt  # self-attention layers over the encoder's cells (heads and ff as the decoder's)
    max_len: StrictInt  # longest output, in tokens


@dataclass(frozen=True, config=_CLOSED)
class TrainConfig:
    seed: StrictInt
    batch_size: StrictInt
    lr: StrictFloat
    weight_decay: StrictFloat
    warmup_steps: StrictInt
    label_smoothing: StrictFloat
    max_epochs: StrictInt
    curriculum: StrictInt  # epochs that run from short formulas to long ones (0: none)
    grad_clip: StrictFloat  # largest gradient norm; 0 for none
    max_minutes: StrictFloat  # wall-clock budget, the learning rate decays to fit it; 0 for none (a budget that binds makes the result depend on the machine)
    precision: StrictStr  # auto | 32-true | bf16-mixed | 16-mixed (auto: bf16-mixed where the device has native bf16)
    accelerator: StrictStr  # auto | cpu | gpu
    devices: StrictInt
    strategy: StrictStr  # auto | ddp | ...
    workers: StrictInt  # data loader processes


@dataclass(frozen=True, config=_CLOSED)
class ReadConfig:
    """How the reader (the exported file that predict, evaluate and serve use) reads an image."""
    beam_width: StrictInt  # 1 = greedy
    length_penalty: StrictFloat  # beam hypotheses ranked by log-probability / ((5 + length) / 6) ** this; 0 = by the sum
    read_scales: list[StrictFloat]  # images are read with glyphs s x preprocess.glyph_height tall for each s
    agreement: StrictFloat  # of all sizes' beam hypotheses, the one closest to the others, each weighed by confidence ** this, wins


@dataclass(frozen=True, config=_CLOSED)
class EvaluateConfig:
    batch_size: StrictInt  # images handed to the reader at a time
    examples: StrictInt  # worst and best examples drawn in the picture
    folders: list[StrictStr]  # extra labelled folders (N.png + formulas.lst, or IM2LATEX-100K layout) scored too


@dataclass(frozen=True, config=_CLOSED)
class ExportConfig:
    parity_samples: StrictInt  # test images on which the TorchScript file must match the eager model


@dataclass(frozen=True, config=_CLOSED)
class ServeConfig:
    max_body_bytes: StrictInt  # larger requests get 413 before they are read
    max_pixels: StrictInt  # larger images get 413 before they are decoded (decompression bombs)
    max_images: StrictInt  # images in one batch request
    concurrency: StrictInt  # predictions running at once; more wait in the queue
    queue: StrictInt  # requests waiting beyond that get 503 with Retry-After
    allow_image_url: StrictBool  # GET /v1/predict?image_url= (off: 403)
    url_hosts: list[StrictStr]  # the only hosts image_url may name
    url_timeout_s: StrictFloat  # total deadline of one fetch, however slowly the server trickles
