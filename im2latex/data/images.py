"""Image files as uint8 grayscale arrays, without torch (the server's container imports this)."""
import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from im2latex import Im2LatexError

Image.MAX_IMAGE_PIXELS = 40_000_000  # a decompression bomb is refused, not decoded


def to_gray(image: Image.Image) -> np.ndarray:
    """A uint8 grayscale array; transparency (IM2LATEX-100K's PNGs have it) is composited on white."""
    if image.mode in ("RGBA", "LA") or image.mode == "P" and "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(white, rgba)
    return np.asarray(image.convert("L"), dtype=np.uint8)


def load_image(source: str | Path | bytes) -> np.ndarray:
    """Read an image file (path or bytes) as grayscale; an unreadable one raises Im2LatexError."""
    name = "image" if isinstance(source, bytes) else str(source)
    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:
            return to_gray(image)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError) as e:
        raise Im2LatexError(f"{name}: not a readable image ({e})") from None
