"""Backbone + pooled features + a separate head; multilabel and severity heads can follow."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from carelens.models._backbones import Backbone, build_backbone
from carelens.preprocess import PreprocessConfig, preprocess

__all__ = ["Classifier", "MulticlassHead", "build_classifier", "embed_images"]


class MulticlassHead(nn.Module):
    def __init__(self, in_features: int, n_classes: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, n_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(features))  # type: ignore[no-any-return]


class Classifier(nn.Module):
    """``forward`` returns logits; ``forward_all`` also the pooled features and the last feature map."""

    def __init__(self, backbone: Backbone, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        fmap = self.backbone(x)  # (N, C, h, w)
        features = fmap.mean(dim=(2, 3))  # (N, C) global average pool
        return self.head(features), features, fmap

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x)[0]


def build_classifier(backbone: str, n_classes: int, image_size: int, *, pretrained: bool = True,
                     dropout: float = 0.2) -> Classifier:
    bb = build_backbone(backbone, image_size, pretrained=pretrained)
    return Classifier(bb, MulticlassHead(bb.out_channels, n_classes, dropout))


@torch.inference_mode()
def embed_images(model: Classifier, pre: PreprocessConfig, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(logits, pooled features) for decoded uint8 images, through the one preprocessing function."""
    x = torch.from_numpy(np.stack([preprocess(img, pre) for img in images]))
    logits, feats, _ = model.forward_all(x)
    return logits.numpy(), feats.numpy()
