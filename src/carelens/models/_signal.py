"""1-D CNNs for ECG. BeatNet, for heartbeats: the waveform through three convolution blocks, pooled, joined with the
RR-interval features (which carry most of the supraventricular information), then a linear head.

Returns (logits, features) like the image classifier, so that the same temperature, conformal sets and
out-of-distribution gate (on ``features``) apply."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BeatNet", "RecordNet"]


def _block(cin: int, cout: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm1d(cout), nn.ReLU())


class BeatNet(nn.Module):
    """``reads``: the input channels the network uses (of :func:`carelens.ecg.beat_features`' two: 0 the beat, 1 the
    beat minus the record's median beat). By default only the difference: the raw shape differs between patients
    far more than the difference does, and on MIT-BIH's inter-patient split (3 seeds, ``bench/ecg.py``) the
    network reading both reached balanced accuracy 0.76 on average against 0.78 for the difference alone. The
    graph still takes both channels, so every beat classifier reads the same input."""

    def __init__(self, n_classes: int, n_rr: int = 6, width: int = 32, reads: tuple[int, ...] = (1,)) -> None:
        super().__init__()
        self.reads = list(reads)
        self.conv = nn.Sequential(_block(len(reads), width // 2, 7), nn.MaxPool1d(2), _block(width // 2, width, 5), nn.MaxPool1d(2),
                                  _block(width, 2 * width, 3), nn.AdaptiveAvgPool1d(1))
        self.rr = nn.Sequential(nn.BatchNorm1d(n_rr), nn.Linear(n_rr, width), nn.ReLU())
        self.embed = nn.Sequential(nn.Linear(3 * width, 2 * width), nn.ReLU(), nn.Dropout(0.2))
        self.head = nn.Linear(2 * width, n_classes)

    def forward(self, wave: torch.Tensor, rr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = wave[:, self.reads]
        f = self.embed(torch.cat([self.conv(x).flatten(1), self.rr(torch.log(rr.clamp_min(1e-3)))], dim=1))
        return self.head(f), f


class RecordNet(nn.Module):
    """A 1-D CNN over a whole multi-lead recording (PTB-XL: 12 leads x 10 s at 100 Hz) for a multi-label target:
    four convolution blocks, global average pooling, one logit per label. Returns (logits, features)."""

    def __init__(self, n_labels: int, leads: int = 12, width: int = 32) -> None:
        super().__init__()
        self.conv = nn.Sequential(_block(leads, width, 7), nn.MaxPool1d(2), _block(width, width, 7), nn.MaxPool1d(2),
                                  _block(width, 2 * width, 5), nn.MaxPool1d(2), _block(2 * width, 2 * width, 5),
                                  nn.AdaptiveAvgPool1d(1))
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(2 * width, n_labels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.conv(x).flatten(1)
        return self.head(self.drop(f)), f
