"""Typed views of the sections of params.yaml; one loader. Fields have no defaults on purpose:
a missing or misspelt key fails loudly instead of silently taking a value nobody chose."""
import dataclasses
import typing
from pathlib import Path

import yaml

from im2latex import Im2LatexError


@dataclasses.dataclass(frozen=True)
class SyntheticConfig:
    train: int  # number of formulas per split
    validate: int
    test: int
    max_tokens: int  # longest generated formula
    dpi: tuple[int, int]  # each chunk of formulas is rendered at a dpi drawn from this range
    pad: tuple[int, int]  # white border added around the ink, in pixels
    noise: float  # fraction of pixels turned into light gray specks
    font_sizes: list[int]  # document class sizes (10, 11, 12 pt), one drawn per chunk
    downsample: tuple[float, float]  # a chunk is rendered at dpi x f, then each image shrunk by f (antialiasing)
    bold: float  # share of images with thickened strokes
    blur: float  # share of images blurred a little
    binarise: float  # share of images thresholded to black and white
    jpeg: float  # share of images passed through a low-quality JPEG
    chunk: int  # formulas per LaTeX run (one page each) of the training split; each run draws one style
    eval_chunk: int  # the same for the test and validation splits: smaller, so that each spans many styles


@dataclasses.dataclass(frozen=True)
class DataConfig:
    source: str  # synthetic | im2latex-100k | folder
    seed: int
    folder: str  # dataset in IM2LATEX-100K layout, for source=folder
    mirrors: list[str]  # base URLs of IM2LATEX-100K's files, tried in order, for source=im2latex-100k
    manifest: str  # URL of the record that publishes each file's size and md5
    synthetic: SyntheticConfig


@dataclasses.dataclass(frozen=True)
class VocabConfig:
    min_freq: int  # tokens seen fewer times in the training split become <unk>


@dataclasses.dataclass(frozen=True)
class PreprocessConfig:
    threshold: int  # a pixel darker than this is ink
    pad: int  # white border kept around the cropped ink, in pixels
    glyph_height: float  # images are resized so that their glyph size (inputs.glyph_size) is this many pixels (0: not resized)
    max_height: int  # samples larger than these (after scaling) are dropped
    max_width: int
    max_tokens: int


def _build(cls, values, where: str):
    if not dataclasses.is_dataclass(cls):
        origin = typing.get_origin(cls)
        if origin is tuple:
            types = typing.get_args(cls)
            if not isinstance(values, list) or len(values) != len(types):
                raise Im2LatexError(f"params.yaml: {where} must be a list of {len(types)} values, got {values!r}")
            return tuple(_build(t, v, f"{where}[{n}]") for n, (t, v) in enumerate(zip(types, values)))
        if origin is list:
            (item,) = typing.get_args(cls)
            if not isinstance(values, list):  # a string would become a list of its characters
                raise Im2LatexError(f"params.yaml: {where} must be a list, got {values!r}")
            return [_build(item, v, f"{where}[{n}]") for n, v in enumerate(values)]
        if cls is float and isinstance(values, int) and not isinstance(values, bool):
            return float(values)
        if not isinstance(values, cls) or isinstance(values, bool) and cls is not bool:
            raise Im2LatexError(f"params.yaml: {where} must be a {cls.__name__}, got {values!r}")
        return values
    if not isinstance(values, dict):
        raise Im2LatexError(f"params.yaml: {where} must be a mapping")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(values) - set(fields))
    missing = sorted(set(fields) - set(values))
    if unknown or missing:
        raise Im2LatexError(f"params.yaml: {where} has unknown keys {unknown} and lacks keys {missing}")
    return cls(**{name: _build(hints[name], values[name], f"{where}.{name}") for name in fields})


def load_section(path: str | Path, section: str, cls: type):
    """Read one section of params.yaml into its dataclass."""
    try:
        params = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as e:
        raise Im2LatexError(f"cannot read {path}: {e}".splitlines()[0]) from None
    if not isinstance(params, dict) or section not in params:
        raise Im2LatexError(f"{path} has no '{section}' section")
    return _build(cls, params[section], section)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    d_model: int
    heads: int
    layers: int  # decoder layers
    ff: int  # decoder feed-forward size
    dropout: float
    encoder_channels: int  # width of the first ResNet stage (then x2, then d_model)
    encoder_positions: int  # positions per side of the encoder's 2-D table: images up to 8x this many pixels
    encoder_layers: int  # self-attention layers over the encoder's cells (heads and ff as the decoder's)
    max_len: int  # longest output, in tokens


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    seed: int
    batch_size: int
    lr: float
    weight_decay: float
    warmup_steps: int
    label_smoothing: float
    max_epochs: int
    curriculum: int  # epochs that run from short formulas to long ones (0: none)
    grad_clip: float  # largest gradient norm; 0 for none
    max_minutes: float  # wall-clock budget, the learning rate decays to fit it; 0 for none (a budget that binds makes the result depend on the machine)
    precision: str  # 32-true | bf16-mixed | 16-mixed
    accelerator: str  # auto | cpu | gpu
    devices: int
    strategy: str  # auto | ddp | ...
    workers: int  # data loader processes


@dataclasses.dataclass(frozen=True)
class EvaluateConfig:
    beam_width: int  # 1 = greedy
    length_penalty: float  # beam hypotheses ranked by log-probability / ((5 + length) / 6) ** this; 0 = by the sum
    read_scales: list[float]  # images are read with glyphs s x preprocess.glyph_height tall for each s (evaluate, export, serve)
    agreement: float  # of all sizes' beam hypotheses, the one closest to the others, each weighed by confidence ** this, wins
    batch_size: int
    examples: int  # worst and best examples drawn in the picture
    folders: list[str]  # extra labelled folders (N.png + formulas.lst, or IM2LATEX-100K layout) scored too


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    parity_samples: int  # test images on which the TorchScript file must match the eager model


@dataclasses.dataclass(frozen=True)
class ServeConfig:
    max_body_bytes: int  # larger requests get 413 before they are read
    max_pixels: int  # larger images get 413 before they are decoded (decompression bombs)
    max_images: int  # images in one batch request
    concurrency: int  # predictions running at once; more wait in the queue
    queue: int  # requests waiting beyond that get 503 with Retry-After
    allow_image_url: bool  # GET /v1/predict?image_url= (off: 403)
    url_hosts: list[str]  # the only hosts image_url may name
    url_timeout_s: float  # total deadline of one fetch, however slowly the server trickles
