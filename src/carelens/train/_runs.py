"""Reading a finished training run back: its config, preprocessing and best model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from carelens.errors import DataError
from carelens.models import Classifier, build_classifier
from carelens.preprocess import PreprocessConfig, preprocess

__all__ = ["embed_images", "load_run_model"]


def load_run_model(run: str | Path) -> tuple[Classifier, PreprocessConfig, dict[str, Any]]:
    """The best checkpoint of ``run`` in eval mode, with the run's preprocessing and config."""
    run = Path(run)
    if not (run / "config.json").is_file() or not (run / "best.pt").is_file():
        raise DataError(f"{run} is not a training run with a best checkpoint (config.json, best.pt)")
    cfg = json.loads((run / "config.json").read_text())
    t = cfg["train"]
    pre = PreprocessConfig.from_dict(cfg["preprocess"])
    model = build_classifier(t["model"], len(cfg["class_ids"]), pre.image_size, pretrained=False, dropout=t["dropout"])
    model.load_state_dict(torch.load(run / "best.pt", map_location="cpu", weights_only=False)["model"])
    return model.eval(), pre, cfg


@torch.inference_mode()
def embed_images(model: Classifier, pre: PreprocessConfig, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(logits, pooled features) for decoded uint8 images, through the one preprocessing function."""
    x = torch.from_numpy(np.stack([preprocess(img, pre) for img in images]))
    logits, feats, _ = model.forward_all(x)
    return logits.numpy(), feats.numpy()
