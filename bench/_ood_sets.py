"""Out-of-distribution image sets for the benchmarks: far (natural photos, noise, blank) and near
(another medical modality). Natural photos come from packages installed here (scikit-image, scikit-learn)."""

from __future__ import annotations

import numpy as np

from carelens.data import open_dataset


def far_ood(seed: int = 0) -> dict[str, np.ndarray]:
    from skimage import data as sk
    from sklearn.datasets import load_sample_images

    out: dict[str, np.ndarray] = {}
    for name in ("astronaut", "chelsea", "coffee", "rocket", "camera", "hubble_deep_field", "immunohistochemistry",
                 "retina", "moon", "page", "text", "horse", "brick", "grass", "gravel", "logo", "motorcycle_left",
                 "coins", "clock", "cat"):
        try:
            img = getattr(sk, name)()
        except Exception:  # noqa: BLE001, S112 - some images need optional downloads; skip those
            continue
        img = np.asarray(img)
        if img.dtype == bool:
            img = img.astype(np.uint8) * 255
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        out[f"skimage_{name}"] = img[:, :, :3].astype(np.uint8)
    for k, img in enumerate(load_sample_images().images):
        out[f"sklearn_sample_{k}"] = img
    rng = np.random.default_rng(seed)
    for k in range(10):
        out[f"noise_{k}"] = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
        out[f"blank_{k}"] = np.full((224, 224, 3), int(rng.integers(0, 256)), np.uint8)
    return out


def modality(name: str, n: int = 200, seed: int = 0) -> list[np.ndarray]:
    """n images of another modality: 'xray' (PneumoniaMNIST test), 'ultrasound' (BUSI), 'dermoscopy' (HAM10000)."""
    key = {"xray": "pneumoniamnist", "ultrasound": "busi", "dermoscopy": "ham10000"}[name]
    ds = open_dataset(key)
    idx = np.random.default_rng(seed).choice(len(ds), min(n, len(ds)), replace=False)
    return [img for _, img in ds.iter_images(sorted(idx.tolist()))]
