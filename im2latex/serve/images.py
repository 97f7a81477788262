"""Request bytes -> grayscale images the network can take: decoding, pixel limits, and the size the
encoder's position table allows (read from the loaded model, so it follows the architecture)."""
import io

import numpy as np
from PIL import Image, UnidentifiedImageError

from im2latex.data.images import to_gray
from im2latex.serve.errors import ApiError

FORMATS = {"PNG", "JPEG"}


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
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
        return np.array(to_gray(image))  # a writable copy
    except (OSError, ValueError, Image.DecompressionBombError, SyntaxError):
        raise ApiError(400, "the image is truncated or corrupt") from None


def images_of(payloads: list[bytes], max_images: int, max_pixels: int, reader) -> list[list]:
    """The request's images decoded and prepared by `reader` (runtimes.open_reader) at each of its reading sizes,
    once: ApiError for the first one that is refused, or whose prepared formula is larger than the network reads."""
    if not payloads:
        raise ApiError(400, "no image: send multipart field 'file' or JSON {\"image\": base64}")
    if len(payloads) > max_images:
        raise ApiError(413, f"{len(payloads)} images, more than the {max_images} allowed in one request")
    prepared = [reader.prepare(decode_image(p, max_pixels)) for p in payloads]
    for n, sizes in enumerate(prepared):
        h, w = max(int(s.shape[0]) for s in sizes), max(int(s.shape[1]) for s in sizes)
        if h > reader.max_height or w > reader.max_width:
            raise ApiError(413, f"image {n + 1}: its formula is {w}x{h} pixels once cropped and scaled; the "
                                f"model reads at most {reader.max_width}x{reader.max_height}: crop or shrink it")
    return prepared
