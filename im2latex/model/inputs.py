"""Image normalisation shared by preprocessing, training and the exported model (TorchScript-able),
so images from the wild are prepared exactly as the training images were: crop to the ink, measure
the glyph size, rescale so that glyphs are `glyph_height` pixels tall, pad."""
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

# above this many pixels an ink crop's glyphs are measured at half resolution, or less (`measurable`)
MAX_MEASURED_PIXELS = 120000


def measurable(ink: Tensor, max_pixels: int) -> Tuple[Tensor, int]:
    """A boolean ink crop halved (2x2 max pool) until it has at most `max_pixels` pixels, and the factor it shrank by:
    the glyph measure's cost grows with pixels x component size."""
    shrink = 1
    while ink.numel() > max_pixels:
        ink = F.max_pool2d(ink[None, None].float(), 2, 2, ceil_mode=True)[0, 0] > 0
        shrink *= 2
    return ink, shrink


def upper_quartile(heights: Tensor) -> float:
    """The upper quartile of component heights, leaving out those under 3 pixels; 0 when none is left."""
    heights = heights[heights >= 3]
    if heights.numel() == 0:
        return 0.0
    return float(torch.quantile(heights.float(), 0.75))


def glyph_size(ink: Tensor, max_pixels: int = MAX_MEASURED_PIXELS) -> float:
    """Upper quartile of the heights of the connected ink components (8-connected) of a boolean (H, W) crop,
    leaving out specks and rules under 3 pixels tall; 0 when there is none. It tracks the font size and the
    dpi, so dividing by it normalises both. The quartile rather than the median: at low resolution small
    glyphs fall under 3 pixels and neighbours touch, which raised the median by up to 11% against the same
    formula at 300 dpi and scattered it more; the quartile moves by 2-3% (bench/bench_glyph_measure.py)."""
    ink, shrink = measurable(ink, max_pixels)
    h, w = ink.shape[0], ink.shape[1]
    mask = ink.float()
    labels = torch.arange(1, h * w + 1, dtype=torch.float32).view(h, w) * mask
    for _ in range(h * w):  # every pixel takes the largest label of its component
        spread = F.max_pool2d(labels[None, None], 3, 1, 1)[0, 0] * mask
        # a label is the number of a pixel of the same component: taking that pixel's label too (pointer
        # jumping) doubles the distance a label travels per step, so long strokes need few steps
        spread = torch.maximum(spread, spread.flatten()[(spread.flatten() - 1).clamp(min=0).long()].view(h, w) * mask)
        if bool(torch.equal(spread, labels)):
            break
        labels = spread
    flat = labels.flatten()
    keep = flat > 0
    if not bool(keep.any()):
        return 0.0
    _, component = torch.unique(flat[keep], return_inverse=True)
    rows = torch.arange(h).view(h, 1).expand(h, w).flatten()[keep]
    n = int(component.max()) + 1
    top = torch.full([n], h, dtype=torch.long).scatter_reduce(0, component, rows, "amin")
    bottom = torch.full([n], -1, dtype=torch.long).scatter_reduce(0, component, rows, "amax")
    return upper_quartile((bottom - top + 1) * shrink)


def resize(image: Tensor, scale: float) -> Tensor:
    """A float (H, W) image resized by `scale` (bilinear, antialiased); within 2% of 1 it is left as it is."""
    if abs(scale - 1.0) <= 0.02:
        return image
    size = [max(1, int(round(image.shape[0] * scale))), max(1, int(round(image.shape[1] * scale)))]
    return F.interpolate(image[None, None], size=size, mode="bilinear", antialias=True, align_corners=False)[0, 0]


def prepare(image: Tensor, threshold: int, pad: int, glyph_height: float) -> Tensor:
    """uint8 grayscale (H, W) -> uint8 (h, w): turned into dark ink on white (`dark_ink`), cropped to the pixels darker than `threshold`, resized so
    that its glyph size (`glyph_size`) is `glyph_height` pixels (0: not resized), padded with `pad` white pixels.
    A blank image gives a (0, 0) tensor."""
    return prepare_sizes(image, threshold, pad, [glyph_height])[0]


def dark_ink(image: Tensor) -> Tensor:
    """A uint8 (H, W) image as dark ink on a white background: light ink on a dark background (dark mode) is
    inverted, and a tinted background (its border's median under 230) is brightened to white. An image with a
    white background is returned as it is, so the training images pass unchanged."""
    if image.numel() == 0:
        return image
    border = torch.cat([image[0], image[-1], image[:, 0], image[:, -1]])
    background = float(border.float().median())
    if background < 128:
        image = 255 - image
        background = 255.0 - background
    if background < 230:
        image = (image.float() * (255.0 / max(background, 1.0))).round().clamp(0, 255).to(torch.uint8)
    return image


def prepare_sizes(image: Tensor, threshold: int, pad: int, glyph_heights: List[float]) -> List[Tensor]:
    """`prepare` at each of `glyph_heights`, the crop and the glyph size computed once."""
    crop, ink = ink_crop(image, threshold)
    measured = glyph_size(ink) if crop.numel() > 0 and max(glyph_heights) > 0 else 0.0
    return scale_and_pad(crop, measured, pad, glyph_heights)


def ink_crop(image: Tensor, threshold: int) -> Tuple[Tensor, Tensor]:
    """uint8 grayscale (H, W) -> the image as dark ink on white (`dark_ink`) cropped to its pixels darker than
    `threshold`, and that crop's ink mask; two (0, 0) tensors for a blank image."""
    image = dark_ink(image)
    ink = image < threshold
    rows, cols = ink.any(1).nonzero(), ink.any(0).nonzero()
    if rows.numel() == 0:
        return image[:0, :0], ink[:0, :0]
    top, bottom, left, right = int(rows[0, 0]), int(rows[-1, 0]) + 1, int(cols[0, 0]), int(cols[-1, 0]) + 1
    return image[top:bottom, left:right], ink[top:bottom, left:right]


def scale_and_pad(crop: Tensor, measured: float, pad: int, glyph_heights: List[float]) -> List[Tensor]:
    """A uint8 ink crop whose glyph size is `measured`, resized to each of `glyph_heights` (0: not resized) and
    padded with `pad` white pixels; a blank crop stays blank."""
    if crop.numel() == 0:
        return [crop for _ in glyph_heights]
    out: List[Tensor] = []
    for glyph_height in glyph_heights:
        resized = crop.float()
        if glyph_height > 0:
            resized = resize(resized, min(4.0, max(0.2, glyph_height / measured)) if measured > 0 else 1.0)
        padded = F.pad(resized[None, None], [pad, pad, pad, pad], mode="constant", value=255.0)
        out.append(padded[0, 0].round().clamp(0, 255).to(torch.uint8))
    return out


def to_batch(images: List[Tensor]) -> Tensor:
    """uint8 images -> float (B, 1, H, W) with ink = 1 and background 0, padded to the largest with -1,
    which the network reads as background and its decoder never attends to (see Im2LatexNet.encode)."""
    h = max([int(i.shape[0]) for i in images])
    w = max([int(i.shape[1]) for i in images])
    batch = torch.full((len(images), 1, h, w), -1.0)
    for n, image in enumerate(images):
        batch[n, 0, :image.shape[0], :image.shape[1]] = 1.0 - image.float() / 255.0
    return batch
