"""How a model's outputs and a split's targets are laid out, per task (numpy; no torch).

A multiclass model outputs one logit per class and a split's targets are class indices ``(n,)``. A
multi-label model outputs one tensor too, so that the ONNX graph, the bundle and the engine keep one
shape: the condition logits ``(n, K)`` (sigmoid each), then each graded condition's severity logits
(``softmax``: one per level; ``ordinal``: one cumulative logit per step between levels, CORAL-style, Cao
et al. 2020). Its targets are ``(n, 2K)`` int64: presence 0/1 per condition, then the severity level per
condition (-1 where the condition is absent or its grade unknown).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from carelens.errors import ConfigError
from carelens.labels import LabelSpec

__all__ = ["SEVERITY_HEADS", "OutputLayout", "encode_findings", "sigmoid"]

SEVERITY_HEADS = ("softmax", "ordinal")


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    z = np.asarray(z, dtype=np.float64)
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    e = np.exp(z[~pos])
    out[~pos] = e / (1.0 + e)
    return out


@dataclass(frozen=True)
class OutputLayout:
    """The multi-label output of one spec: ``sizes`` severity levels per condition, ``head`` their kind."""

    sizes: tuple[int, ...]
    head: str = "softmax"

    def __post_init__(self) -> None:
        if self.head not in SEVERITY_HEADS:
            raise ConfigError(f"severity head must be one of {', '.join(SEVERITY_HEADS)}, got {self.head!r}")
        if any(s == 1 or s < 0 for s in self.sizes):
            raise ConfigError(f"a condition has 0 or >= 2 severity levels, got {list(self.sizes)}")

    @classmethod
    def of(cls, spec: LabelSpec, head: str = "softmax") -> OutputLayout:
        if not spec.multilabel:
            raise ConfigError(f"spec {spec.name!r} is {spec.task}, not multilabel")
        return cls(tuple(spec.severity_sizes), head)

    @property
    def n_conditions(self) -> int:
        return len(self.sizes)

    def severity_width(self, k: int) -> int:
        """Logits of condition ``k``'s severity head."""
        s = self.sizes[k]
        return 0 if s == 0 else s if self.head == "softmax" else s - 1

    @property
    def width(self) -> int:
        """Width of the model's logits."""
        return self.n_conditions + sum(self.severity_width(k) for k in range(self.n_conditions))

    def severity_slices(self) -> list[slice | None]:
        """Where each condition's severity logits sit in the logits (``None``: not graded)."""
        out: list[slice | None] = []
        start = self.n_conditions
        for k in range(self.n_conditions):
            w = self.severity_width(k)
            out.append(slice(start, start + w) if w else None)
            start += w
        return out

    # -- outputs -------------------------------------------------------------------------------------
    def check(self, logits: np.ndarray) -> np.ndarray:
        z = np.asarray(logits)
        if z.ndim != 2 or z.shape[1] != self.width:
            raise ConfigError(f"multi-label logits must be (n, {self.width}), got {z.shape}")
        return z

    def condition_logits(self, logits: np.ndarray) -> np.ndarray:
        return self.check(logits)[:, : self.n_conditions]

    def severity_proba(self, logits: np.ndarray) -> list[np.ndarray | None]:
        """Per condition, the (n, levels) severity distribution given the condition is present."""
        z = self.check(logits).astype(np.float64)
        out: list[np.ndarray | None] = []
        for sl in self.severity_slices():
            if sl is None:
                out.append(None)
            elif self.head == "softmax":
                e = np.exp(z[:, sl] - z[:, sl].max(1, keepdims=True))
                out.append(e / e.sum(1, keepdims=True))
            else:
                # P(level > j) for each step j, made non-increasing, then differenced into P(level = j)
                above = np.minimum.accumulate(sigmoid(z[:, sl]), axis=1)
                n = len(z)
                cum = np.concatenate([np.ones((n, 1)), above, np.zeros((n, 1))], axis=1)
                out.append(cum[:, :-1] - cum[:, 1:])
        return out

    # -- targets -------------------------------------------------------------------------------------
    def split_targets(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(presence (n, K) 0/1, severity level (n, K), -1 where absent or not graded)."""
        t = np.asarray(y)
        k = self.n_conditions
        if t.ndim != 2 or t.shape[1] != 2 * k:
            raise ConfigError(f"multi-label targets must be (n, {2 * k}), got {t.shape}")
        return t[:, :k], t[:, k:]

    def ungraded_targets(self, presence: np.ndarray) -> np.ndarray:
        """Targets (n, 2K) from presence (n, K) alone: no condition's grade known (-1)."""
        y = np.asarray(presence)
        if y.ndim != 2 or y.shape[1] != self.n_conditions:
            raise ConfigError(f"presence must be (n, {self.n_conditions}), got {y.shape}")
        return np.concatenate([y, -np.ones_like(y)], axis=1)


def encode_findings(spec: LabelSpec, findings: dict[str, str | None]) -> list[int]:
    """One multi-label target row (presence per condition, then severity level or -1) for ``findings``
    (condition id -> severity level id, ``None`` when the grade is not known)."""
    k = len(spec.classes)
    row = [0] * k + [-1] * k
    for cid, level in findings.items():
        i = spec.index(cid)
        row[i] = 1
        c = spec.classes[i]
        if level is not None and c.severity_levels:
            row[k + i] = c.level_index(level)
    return row
