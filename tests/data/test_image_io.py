from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from carelens.data import decode_image, read_image
from carelens.errors import ImageReadError


def _png(img: Image.Image, path: Path, **kw: object) -> Path:
    img.save(path, **kw)
    return path


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # 40 wide x 20 high, left half red; EXIF orientation 6 = rotate 90 degrees clockwise to view.
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :20] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    p = tmp_path / "rot.jpg"
    Image.fromarray(a).save(p, exif=exif.tobytes(), quality=95)
    out = read_image(p)
    assert out.shape == (40, 20, 3)  # rotated: now 20 wide, 40 high
    assert out[5, 10, 0] > 200 and out[35, 10, 0] < 60  # red half is now on top


def test_grey_rgba_16bit_palette_become_rgb(tmp_path: Path) -> None:
    grey = _png(Image.fromarray(np.full((8, 9), 77, np.uint8)), tmp_path / "g.png")
    rgba_arr = np.zeros((8, 8, 4), np.uint8)
    rgba_arr[..., 0] = 200
    rgba_arr[:, :4, 3] = 255  # left opaque red, right fully transparent
    rgba = _png(Image.fromarray(rgba_arr, "RGBA"), tmp_path / "a.png")
    sixteen = _png(Image.fromarray(np.full((6, 6), 65535 // 2, np.uint16)), tmp_path / "s.png")
    pal = _png(Image.fromarray(np.full((5, 5, 3), (10, 200, 30), np.uint8)).convert("P"), tmp_path / "p.png")
    g = read_image(grey)
    assert g.shape == (8, 9, 3) and (g == 77).all()
    a = read_image(rgba)
    assert tuple(a[0, 0]) == (200, 0, 0) and tuple(a[0, 7]) == (255, 255, 255)  # composited on white
    s = read_image(sixteen)
    assert Image.open(sixteen).mode.startswith("I") and s.dtype == np.uint8 and abs(int(s[0, 0, 0]) - 127) <= 1
    p = read_image(pal)
    assert p.shape == (5, 5, 3) and abs(int(p[0, 0, 1]) - 200) <= 8
    assert read_image(grey, mode="L").shape == (8, 9)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"this is a text file, not a picture\n" * 3, "not a recognised image"),
    ],
)
def test_bad_files_raise_with_the_file_name(tmp_path: Path, content: bytes, reason: str) -> None:
    p = tmp_path / "x.jpg"
    p.write_bytes(content)
    with pytest.raises(ImageReadError, match=reason) as info:
        read_image(p)
    assert str(p) in str(info.value)


def test_truncated_jpeg_is_an_error_not_half_an_image(tmp_path: Path) -> None:
    buf = io.BytesIO()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    data = buf.getvalue()
    with pytest.raises(ImageReadError, match="truncated"):
        decode_image(data[: len(data) // 2], name="half.jpg")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="cannot open"):
        read_image(tmp_path / "nope.png")


def _large_photo(h: int = 2048, w: int = 2200) -> Image.Image:
    """A textured image (smooth shading, edges and fine noise) of phone-photo proportions."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    base = 128 + 60 * np.sin(x / 97.0) * np.cos(y / 61.0) + 40 * ((x // 160 + y // 120) % 2)
    noise = np.random.default_rng(0).integers(-8, 9, (h, w, 3))
    a = np.clip(base[..., None] * np.array([1.0, 0.8, 0.6]) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(a)


def test_a_large_jpeg_is_decoded_at_a_reduced_scale_with_the_same_model_input(tmp_path: Path) -> None:
    from carelens.data import DECODE_MIN_SIDE
    from carelens.preprocess import PreprocessConfig, resize_image

    p = tmp_path / "photo.jpg"
    _large_photo().save(p, quality=90)
    reduced, full = read_image(p), read_image(p, min_side=None)
    assert full.shape == (2048, 2200, 3)
    assert reduced.shape == (1024, 1100, 3)  # DCT scaling by 1/2: both sides stay >= DECODE_MIN_SIDE
    assert min(reduced.shape[:2]) >= DECODE_MIN_SIDE
    cfg = PreprocessConfig(image_size=224)
    diff = np.abs(resize_image(reduced, cfg).astype(int) - resize_image(full, cfg).astype(int))
    assert diff.max() <= 3 and diff.mean() < 0.5  # what the model sees: within a few grey levels
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to view: applied after the reduced decode
    rotated = tmp_path / "rotated.jpg"
    _large_photo().save(rotated, quality=90, exif=exif.tobytes())
    assert read_image(rotated).shape == (1100, 1024, 3)
    png = tmp_path / "photo.png"
    _large_photo().save(png)
    assert read_image(png).shape == (2048, 2200, 3)  # no reduced decoding outside JPEG: every pixel read
    # smaller than twice the limit on one side: decoded whole (the data sets here all are)
    small = tmp_path / "small.jpg"
    _large_photo(2047, 4000).save(small, quality=90)
    assert read_image(small).shape == (2047, 4000, 3)


def test_the_pixel_limit_bounds_what_is_decoded(tmp_path: Path) -> None:
    from carelens.errors import ImageTooLargeError

    jpeg, png = io.BytesIO(), io.BytesIO()
    _large_photo().save(jpeg, "JPEG", quality=90)  # 2200x2048: 4.5 megapixels, decoded at 1100x1024
    _large_photo().save(png, "PNG")  # the same pixels, decoded whole
    assert decode_image(jpeg.getvalue(), max_pixels=2_000_000).shape == (1024, 1100, 3)
    with pytest.raises(ImageTooLargeError, match=r"2200x2048 pixels is over the 2,000,000 limit"):
        decode_image(png.getvalue(), max_pixels=2_000_000)
    with pytest.raises(ImageTooLargeError, match=r"2200x2048 \(decoded at 1100x1024\) pixels is over the 1,000,000"):
        decode_image(jpeg.getvalue(), max_pixels=1_000_000)
    # decoded at full size (min_side=None), every pixel counts
    with pytest.raises(ImageTooLargeError, match="2200x2048 pixels"):
        decode_image(jpeg.getvalue(), max_pixels=2_000_000, min_side=None)


def test_a_truncated_large_jpeg_still_fails_when_decoded_reduced(tmp_path: Path) -> None:
    buf = io.BytesIO()
    _large_photo().save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    with pytest.raises(ImageReadError, match="truncated|corrupt"):
        decode_image(data[: len(data) // 2])
