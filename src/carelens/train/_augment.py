"""Augmentation presets per imaging domain (albumentations, on resized uint8 images)."""

from __future__ import annotations

import albumentations as A
import numpy as np

__all__ = ["augment_batch", "build_augment"]


def build_augment(preset: str, image_size: int, seed: int) -> A.Compose | None:
    """Flips, rotation, scale/crop, brightness/contrast, slight blur, tuned per domain.

    ``xray``: no vertical flip and no horizontal flip (anatomy has a side), small rotations.
    ``ultrasound``: horizontal flip only, no colour change beyond brightness/contrast.
    ``dermoscopy`` / ``photo`` / ``default``: both flips and full rotation (lesions have no "up").
    ``fundus``: horizontal flip (a left eye mirrored looks like a right one), small rotations, a mild crop.
    ``flips``: flips and quarter turns only, nothing cropped or rescaled: for labels that count or measure
    what is in the image (severity by the number or size of marks), which a crop could change.
    """
    if preset == "none":
        return None
    if preset == "flips":
        return A.Compose([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5), A.RandomRotate90(p=0.5)], seed=seed)
    s = image_size
    crop = A.RandomResizedCrop(size=(s, s), scale=(0.75, 1.0), ratio=(0.9, 1.1), p=1.0)
    light = A.RandomBrightnessContrast(brightness_limit=0.15, contrast_limit=0.15, p=0.6)
    blur = A.GaussianBlur(blur_limit=(3, 3), p=0.1)
    if preset == "xray":
        ops = [A.Affine(rotate=(-7, 7), scale=(0.95, 1.05), p=0.7), crop, light, blur]
    elif preset == "fundus":
        ops = [A.HorizontalFlip(p=0.5), A.Affine(rotate=(-15, 15), p=0.5),
               A.RandomResizedCrop(size=(s, s), scale=(0.85, 1.0), ratio=(0.95, 1.05), p=1.0), light, blur]
    elif preset == "ultrasound":
        ops = [A.HorizontalFlip(p=0.5), A.Affine(rotate=(-10, 10), p=0.5), crop, light, blur]
    else:
        ops = [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5), A.RandomRotate90(p=0.5),
               A.Affine(rotate=(-20, 20), p=0.5), crop, light, blur]
        if preset in ("dermoscopy", "photo", "default"):
            ops.append(A.HueSaturationValue(hue_shift_limit=5, sat_shift_limit=10, val_shift_limit=0, p=0.3))
    return A.Compose(ops, seed=seed)


def augment_batch(aug: A.Compose | None, images: np.ndarray) -> np.ndarray:
    if aug is None:
        return images
    return np.stack([aug(image=img)["image"] for img in images])
