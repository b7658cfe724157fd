"""The one preprocessing function, used by training, evaluation and serving alike (no torch here).

uint8 image (H, W, 3) -> resize to a square -> [optional augmentation on uint8] -> float32 (3, S, S)
normalised as ``(x / 255 - mean) / std``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from PIL import Image

from carelens.errors import ConfigError

__all__ = ["PreprocessConfig", "normalize", "preprocess", "resize_image"]

ResizeMode = Literal["stretch", "pad", "center_crop"]


@dataclass(frozen=True)
class PreprocessConfig:
    image_size: int = 224  # must match the exported ONNX input
    resize: ResizeMode = "stretch"
    color: Literal["RGB", "L"] = "RGB"
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)  # EfficientNet-Lite's normalisation on [0, 1] pixels
    std: tuple[float, ...] = (0.5, 0.5, 0.5)

    def __post_init__(self) -> None:
        if not 8 <= self.image_size <= 1024:
            raise ConfigError(f"image_size must be in [8, 1024], got {self.image_size}")
        if self.resize not in ("stretch", "pad", "center_crop"):
            raise ConfigError(f"resize must be stretch, pad or center_crop, got {self.resize!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError("mean and std need 3 values each, std > 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PreprocessConfig:
        tuples: dict[str, Any] = {k: tuple(d[k]) for k in ("mean", "std") if k in d}
        return cls(**{**d, **tuples})


def resize_image(img: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """(H, W, 3) uint8 -> (S, S, 3) uint8 by the configured mode (grey models get grey replicated)."""
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    pil = Image.fromarray(img)
    if cfg.color == "L":
        pil = pil.convert("L").convert("RGB")
    s = cfg.image_size
    if cfg.resize == "center_crop":
        side = min(pil.size)
        left, top = (pil.width - side) // 2, (pil.height - side) // 2
        pil = pil.crop((left, top, left + side, top + side))
    elif cfg.resize == "pad":
        side = max(pil.size)
        canvas = Image.new("RGB", (side, side), (0, 0, 0))
        canvas.paste(pil, ((side - pil.width) // 2, (side - pil.height) // 2))
        pil = canvas
    if pil.size != (s, s):
        pil = pil.resize((s, s), Image.Resampling.BILINEAR, reducing_gap=None)
    return np.asarray(pil, dtype=np.uint8)


def normalize(batch: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """(N, S, S, 3) uint8 -> (N, 3, S, S) float32, (x / 255 - mean) / std as one multiply-add per value."""
    std = np.asarray(cfg.std, np.float32)
    scale = (1.0 / (255.0 * std))[None, :, None, None]
    offset = (-np.asarray(cfg.mean, np.float32) / std)[None, :, None, None]
    x = batch.transpose(0, 3, 1, 2).astype(np.float32, order="C")  # one pass: channels-first copy, already contiguous
    x *= scale
    x += offset
    return x


def preprocess(img: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """One decoded image -> one model input (3, S, S) float32."""
    return np.asarray(normalize(resize_image(img, cfg)[None], cfg)[0])
