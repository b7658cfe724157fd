"""Reading one image file into a plain RGB (or grey) uint8 array, the same way everywhere.

Every colour mode is converted explicitly (no silent Pillow default): EXIF orientation is applied,
16-bit and 32-bit integer images are scaled from their full range to 8 bits, float images from their
own min/max, transparency is composited on white, palettes are expanded. A file that is empty,
truncated or not an image raises :class:`~carelens.errors.ImageReadError` naming the file.

A JPEG with both sides at least twice :data:`DECODE_MIN_SIDE` is decoded at a reduced scale (libjpeg's DCT scaling
by 1/2, 1/4 or 1/8, the largest that keeps both sides at or above it): a phone photo is never needed at full size
(that is at least twice any model input up to 512 px, and heatmaps are drawn at 1,024 px a side at most), and
decoding it whole costs most of a request. One rule for training, evaluation and serving alike, whatever the model; the images of the data
sets here are smaller and decode exactly as before. Measured on a 4032x3024 JPEG (`python bench/decode.py`).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from carelens.errors import ImageReadError, ImageTooLargeError, NotAnImageError

__all__ = ["DECODE_MIN_SIDE", "IMAGE_SUFFIXES", "MAX_PIXELS", "decode_image", "read_image", "to_rgb_array"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})
# The decoders Pillow may use: exactly the formats the error messages promise (its JPEG decoder also opens a
# phone camera's multi-picture JPEG). Pillow would otherwise try some 40 more (EPS, PSD, FITS, ...), each a
# parser exposed to uploads.
PILLOW_FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "WEBP")
# Above this, a file is treated as a decompression bomb, not an image to diagnose.
MAX_PIXELS = 80_000_000
# The fewest pixels a side a large JPEG is decoded at (see the module's notes); None in decode_image: full size.
DECODE_MIN_SIDE = 1024

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is an error, never half an image

ColorMode = Literal["RGB", "L"]


def read_image(path: str | Path, mode: ColorMode = "RGB", *, min_side: int | None = DECODE_MIN_SIDE) -> np.ndarray:
    """Decode ``path`` to an array of shape (H, W, 3) for RGB or (H, W) for L, dtype uint8 (a large JPEG at a reduced
    scale keeping at least ``min_side`` pixels a side; None: at full size).

    Raises:
        ImageReadError: the file is missing, empty, truncated, not an image or too large.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ImageReadError(p, f"cannot open the file ({exc.strerror or exc})") from None
    return decode_image(data, mode=mode, name=str(p), min_side=min_side)


def decode_image(data: bytes, mode: ColorMode = "RGB", *, name: str = "<bytes>", max_pixels: int = MAX_PIXELS,
                 min_side: int | None = DECODE_MIN_SIDE) -> np.ndarray:
    """Decode image bytes (as uploaded to the service, or read from a file); see :func:`read_image`."""
    if not data:
        raise ImageReadError(name, "the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=PILLOW_FORMATS) as img:
                size, bomb = img.size, max(MAX_PIXELS, max_pixels)  # the header's size: a decompression-bomb guard
                if size[0] * size[1] > bomb:
                    raise ImageTooLargeError(name, f"{size[0]}x{size[1]} pixels is over the {bomb:,} limit")
                if min_side is not None:
                    img.draft(None, (min_side, min_side))  # JPEG only (other formats ignore it); mode unchanged
                # the limit bounds the pixels decoded: a 48-megapixel phone JPEG decoded at a quarter of each side
                # is 3 megapixels in memory, while a PNG of that size is decoded whole
                if img.width * img.height > max_pixels:
                    shown = f"{size[0]}x{size[1]}" + (f" (decoded at {img.width}x{img.height})" if img.size != size
                                                      else "")
                    raise ImageTooLargeError(name, f"{shown} pixels is over the {max_pixels:,} limit; send a "
                                                   "smaller image")
                img.load()  # decodes fully: a truncated file fails here, not later
                return to_rgb_array(ImageOps.exif_transpose(img), mode)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise NotAnImageError(name, "not a recognised image format (is it really an image?)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(name, f"too many pixels ({exc})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageReadError(name, f"corrupt or truncated image data ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - a decoder's own failure (struct.error, IndexError ...) on bad bytes
        raise ImageReadError(name, f"the image data cannot be decoded ({type(exc).__name__})") from None


def to_rgb_array(img: Image.Image, mode: ColorMode = "RGB") -> np.ndarray:
    """Convert a Pillow image of any mode to uint8 RGB (H, W, 3) or L (H, W), explicitly."""
    m = img.mode
    if m in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # integer arithmetic, rounded to nearest: no float64 copy of a 16-bit image (4 bytes a pixel at most here)
        a = np.asarray(img)
        wide = np.uint32 if m.startswith("I;16") else np.int64
        full = 65535 if m.startswith("I;16") or a.max(initial=0) <= 65535 else 2**32 - 1
        x = np.clip(a, 0, full).astype(wide, copy=False)
        grey = ((x * 255 + full // 2) // full).astype(np.uint8)
        return _grey_out(grey, mode)
    if m == "F":
        a = np.asarray(img, dtype=np.float32)
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        scaled = (a - lo) * np.float32(255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
        return _grey_out(np.nan_to_num(scaled).round().astype(np.uint8), mode)
    if m == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        m = img.mode
    if m in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert("RGB")
    elif m in ("1", "L"):
        return _grey_out(np.asarray(img.convert("L")), mode)
    elif m != "RGB":
        img = img.convert("RGB")  # CMYK, YCbCr, LAB, HSV
    rgb = np.asarray(img, dtype=np.uint8)
    if mode == "L":
        return np.asarray(Image.fromarray(rgb).convert("L"), dtype=np.uint8)
    return np.ascontiguousarray(rgb)


def _grey_out(grey: np.ndarray, mode: ColorMode) -> np.ndarray:
    grey = np.ascontiguousarray(grey, dtype=np.uint8)
    if mode == "L":
        return grey
    return np.repeat(grey[:, :, None], 3, axis=2)
