"""Request bytes -> grayscale images the network can take: decoding, pixel limits, and the size the
encoder's position table allows (read from the loaded model, so it follows the architecture)."""
import io
import math
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from im2latex.data.preprocessing import to_gray
from im2latex.model.inputs import prepare
from im2latex.serve.errors import ApiError

FORMATS = {"PNG", "JPEG"}


def decode_image(data: bytes, max_pixels: int) -> torch.Tensor:
    """PNG/JPEG bytes -> uint8 grayscale (H, W), transparency on white; size checked before decoding."""
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as e:
        raise ApiError(413, f"image refused before decoding: {e}".split(", could")[0]) from None
    except (UnidentifiedImageError, OSError, ValueError):
        raise ApiError(400, "not an image (PNG or JPEG expected)") from None
    if image.format not in FORMATS:
        raise ApiError(415, f"{image.format} images are not supported: send PNG or JPEG")
    if image.width * image.height > max_pixels:
        raise ApiError(413, f"image is {image.width}x{image.height} pixels, more than the {max_pixels} allowed")
    try:
        image.load()
        return torch.from_numpy(np.array(to_gray(image)))  # a writable copy
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        raise ApiError(400, "the image is truncated or corrupt") from None


@dataclass(frozen=True)
class NetworkLimits:
    """What the exported model can read: its input normalisation and the largest prepared image."""
    threshold: int
    pad: int
    glyph_height: float
    max_height: int
    max_width: int

    @classmethod
    def of(cls, reader: torch.jit.ScriptModule) -> "NetworkLimits":
        """Read from a loaded FormulaReader: the encoder has one position per feature row/column, and
        each feature covers `stride` pixels, measured by running the encoder once on a blank probe."""
        encoder = reader.net.encoder
        with torch.no_grad():
            cells = encoder(torch.zeros(1, 1, 64, 64)).shape[1]  # (64 / stride) ** 2 features
        stride = 64 // math.isqrt(cells)
        return cls(reader.threshold, reader.pad, max(reader.glyph_heights),
                   stride * int(encoder.pos_y.shape[0]), stride * int(encoder.pos_x.shape[0]))

    def check(self, image: torch.Tensor, number: int) -> None:
        """ApiError 413 when `image`, once prepared as the model prepares it, is too tall or wide."""
        h, w = prepare(image, self.threshold, self.pad, self.glyph_height).shape
        if h > self.max_height or w > self.max_width:
            raise ApiError(413, f"image {number + 1}: its formula is {w}x{h} pixels once cropped and scaled; the "
                                f"model reads at most {self.max_width}x{self.max_height}: crop or shrink it")


def images_of(payloads: list[bytes], max_images: int, max_pixels: int, limits: NetworkLimits) -> list[torch.Tensor]:
    """Decoded, checked images of a request, or ApiError for the first one that is refused."""
    if not payloads:
        raise ApiError(400, "no image: send multipart field 'file' or JSON {\"image\": base64}")
    if len(payloads) > max_images:
        raise ApiError(413, f"{len(payloads)} images, more than the {max_images} allowed in one request")
    images = [decode_image(p, max_pixels) for p in payloads]
    for n, image in enumerate(images):
        limits.check(image, n)
    return images
