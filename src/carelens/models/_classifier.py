"""Backbone + pooled features + a separate head; multilabel and severity heads can follow."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from carelens.models._backbones import Backbone, build_backbone
from carelens.preprocess import PreprocessConfig, preprocess_batch
from carelens.tasks import OutputLayout

__all__ = ["Classifier", "MulticlassHead", "MultilabelHead", "build_classifier", "embed_images"]


class MulticlassHead(nn.Module):
    def __init__(self, in_features: int, n_classes: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, n_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(features))  # type: ignore[no-any-return]

    def linear(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight (outputs, C), bias): the head as one linear map (class-activation maps use its rows)."""
        return self.fc.weight.detach(), self.fc.bias.detach()


class MultilabelHead(nn.Module):
    """One logit per condition, then each graded condition's severity logits (:class:`OutputLayout`).

    ``ordinal`` severity is CORAL (Cao et al. 2020): one weight vector per condition and ordered steps as
    biases, so the cumulative probabilities P(level > j) share a direction and stay rank-consistent.
    """

    def __init__(self, in_features: int, layout: OutputLayout, dropout: float = 0.2) -> None:
        super().__init__()
        self.layout = layout
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_features, layout.n_conditions)
        graded = [k for k in range(layout.n_conditions) if layout.severity_width(k)]
        width = sum(layout.severity_width(k) for k in graded)
        if layout.head == "softmax":
            self.severity = nn.Linear(in_features, width)
            self.steps = None
        else:
            self.severity = nn.Linear(in_features, len(graded), bias=False)
            # initial steps spread so that the levels start equally likely
            self.steps = nn.Parameter(torch.cat([torch.linspace(1.0, -1.0, layout.severity_width(k)) for k in graded])
                                      if graded else torch.zeros(0))
        # which condition's weight vector each ordinal step uses
        self.register_buffer("step_owner", torch.tensor(
            [g for g, k in enumerate(graded) for _ in range(layout.severity_width(k))], dtype=torch.long))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.dropout(features)
        cond = self.fc(x)
        if self.steps is None:
            return torch.cat([cond, self.severity(x)], dim=1)
        owner: torch.Tensor = self.step_owner  # type: ignore[assignment]
        return torch.cat([cond, self.severity(x)[:, owner] + self.steps], dim=1)

    def linear(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.steps is None:
            return (torch.cat([self.fc.weight, self.severity.weight]).detach(),
                    torch.cat([self.fc.bias, self.severity.bias]).detach())
        owner: torch.Tensor = self.step_owner  # type: ignore[assignment]
        return (torch.cat([self.fc.weight, self.severity.weight[owner]]).detach(),
                torch.cat([self.fc.bias, self.steps]).detach())


class Classifier(nn.Module):
    """``forward`` returns logits; ``forward_all`` also the features the out-of-distribution gate reads and the last
    feature map. Those features are the pooled last features (what the head reads) followed by the mean and the
    standard deviation of each channel of a middle stage: a network fine-tuned on one kind of image maps blank
    frames, noise, documents and charts close to its classes in the last layer, not in the middle ones
    (bench/results/ood_ham10000_seeds.json)."""

    def __init__(self, backbone: Backbone, head: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        fmap, mid = self.backbone.forward_mid(x)  # (N, C, h, w), (N, M, h', w')
        pooled = fmap.mean(dim=(2, 3))  # (N, C) global average pool: the head's input
        m = mid.mean(dim=(2, 3))
        sd = ((mid - m[:, :, None, None]) ** 2).mean(dim=(2, 3)).add(1e-6).sqrt()
        return self.head(pooled), torch.cat([pooled, m, sd], dim=1), fmap

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logits alone (training): the gate's statistics are not computed."""
        return self.head(self.backbone(x).mean(dim=(2, 3)))  # type: ignore[no-any-return]


def build_classifier(backbone: str, n_classes: int, image_size: int, *, pretrained: bool = True,
                     dropout: float = 0.2, layout: OutputLayout | None = None, width: int = 32) -> Classifier:
    """A backbone with a multiclass head of ``n_classes``, or with ``layout`` a multi-label head."""
    bb = build_backbone(backbone, image_size, pretrained=pretrained, width=width)
    head: nn.Module = (MultilabelHead(bb.out_channels, layout, dropout) if layout is not None
                       else MulticlassHead(bb.out_channels, n_classes, dropout))
    return Classifier(bb, head)


@torch.inference_mode()
def embed_images(model: Classifier, pre: PreprocessConfig, images: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(logits, features as in :meth:`Classifier.forward_all`) for decoded uint8 images, through the one
    preprocessing function."""
    x = torch.from_numpy(preprocess_batch(images, pre))
    logits, feats, _ = model.forward_all(x)
    return logits.numpy(), feats.numpy()
