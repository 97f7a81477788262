"""Image normalisation shared by preprocessing, training and the exported model (TorchScript-able),
so images from the wild are prepared exactly as the training images were."""
from typing import List

import torch
import torch.nn.functional as F
from torch import Tensor


def prepare(image: Tensor, threshold: int, pad: int, scale: float) -> Tensor:
    """uint8 grayscale (H, W) -> uint8 (h, w): cropped to the pixels darker than `threshold`, padded
    with `pad` white pixels, resized by `scale`. A blank image gives a (0, 0) tensor."""
    ink = image < threshold
    rows, cols = ink.any(1).nonzero(), ink.any(0).nonzero()
    if rows.numel() == 0:
        return image[:0, :0]
    crop = image[int(rows[0, 0]):int(rows[-1, 0]) + 1, int(cols[0, 0]):int(cols[-1, 0]) + 1].float()
    crop = F.pad(crop[None, None], [pad, pad, pad, pad], mode="constant", value=255.0)
    if scale != 1.0:
        h, w = crop.shape[-2], crop.shape[-1]
        size = [max(1, int(round(h * scale))), max(1, int(round(w * scale)))]
        crop = F.interpolate(crop, size=size, mode="bilinear", antialias=True, align_corners=False)
    return crop[0, 0].round().clamp(0, 255).to(torch.uint8)


def to_batch(images: List[Tensor]) -> Tensor:
    """uint8 images -> float (B, 1, H, W) with ink = 1 and background 0, padded to the largest."""
    h = max([int(i.shape[0]) for i in images])
    w = max([int(i.shape[1]) for i in images])
    batch = torch.zeros(len(images), 1, h, w)
    for n, image in enumerate(images):
        batch[n, 0, :image.shape[0], :image.shape[1]] = 1.0 - image.float() / 255.0
    return batch
