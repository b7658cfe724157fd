"""Figures as PNG bytes (matplotlib, Agg backend): the run folder's plots and the HTML report's, one
implementation each."""

from __future__ import annotations

import io
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_curve

from carelens.metrics import risk_coverage

__all__ = [
    "confusion_png",
    "curves_png",
    "ood_histogram_png",
    "operating_points_png",
    "reliability_png",
    "risk_coverage_png",
    "roc_png",
    "set_size_png",
]


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def confusion_png(cm: Sequence[Sequence[int]], class_ids: Sequence[str], *, xlabel: str = "predicted",
                  ylabel: str = "true", row_title: str = "row-normalised (recall)") -> bytes:
    """Counts and row-normalised shares side by side (rows: ``ylabel``, columns: ``xlabel``)."""
    m = np.asarray(cm, dtype=float)
    rows = m / np.maximum(m.sum(1, keepdims=True), 1)
    k = len(class_ids)
    longest = max((len(c) for c in class_ids), default=0)  # long names (triage levels) take room from the cells
    fig, axes = plt.subplots(1, 2, figsize=(4 + 1.1 * k + 0.1 * longest, 0.9 + 0.55 * k + 0.07 * longest))
    for ax, data, title, fmt in ((axes[0], m, "counts", "{:.0f}"), (axes[1], rows, row_title, "{:.2f}")):
        ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
        ax.set_xticks(range(k), class_ids, rotation=45, ha="right")
        ax.set_yticks(range(k), class_ids)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        for i in range(k):
            for j in range(k):
                ax.text(j, i, fmt.format(data[i, j]), ha="center", va="center",
                        color="white" if rows[i, j] > 0.5 else "black", fontsize=8)
    return _png(fig)


def reliability_png(before: Mapping[str, Any], after: Mapping[str, Any], split: str = "") -> bytes:
    """Reliability diagrams before and after temperature scaling (``metrics.reliability`` data)."""
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6), sharey=True)
    where = f" ({split})" if split else ""
    panels = ((f"before temperature scaling{where}", before), (f"after{where}", after))
    for ax, (name, r) in zip(axes, panels, strict=True):
        edges = np.asarray(r["edges"])
        mids = (edges[:-1] + edges[1:]) / 2
        acc = np.nan_to_num(np.asarray(r["accuracy"], dtype=float))
        ax.bar(mids, acc, width=edges[1] - edges[0], edgecolor="k", alpha=0.75, label="accuracy in bin")
        ax.plot([0, 1], [0, 1], "r--", label="perfect calibration")
        ax.set_title(name)
        ax.set_xlabel("confidence")
    axes[0].set_ylabel("accuracy")
    axes[0].legend(loc="upper left", fontsize=8)
    return _png(fig)


def risk_coverage_png(confidence: np.ndarray, correct: np.ndarray) -> bytes:
    cov, acc = risk_coverage(confidence, correct)
    fig, ax = plt.subplots(figsize=(4.5, 3.4))
    ax.plot(cov, acc)
    ax.set_xlabel("fraction of cases answered (most confident first)")
    ax.set_ylabel("accuracy on answered cases")
    ax.set_ylim(max(0.0, float(acc.min()) - 0.05), 1.01)
    ax.grid(alpha=0.3)
    return _png(fig)


def set_size_png(histogram: Sequence[int]) -> bytes:
    fig, ax = plt.subplots(figsize=(4.5, 3.4))
    ax.bar(range(1, len(histogram) + 1), histogram)
    ax.set_xlabel("prediction set size")
    ax.set_ylabel("cases")
    return _png(fig)


def roc_png(y: np.ndarray, proba: np.ndarray, class_ids: Sequence[str]) -> bytes:
    fig, ax = plt.subplots(figsize=(4.8, 4))
    for c, cid in enumerate(class_ids):
        pos = y == c
        if pos.any() and not pos.all():
            fpr, tpr, _ = roc_curve(pos, proba[:, c])
            ax.plot(fpr, tpr, label=cid)
        if len(class_ids) == 2:
            break  # one curve says it all for two classes
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def ood_histogram_png(in_scores: np.ndarray, out_scores: Mapping[str, np.ndarray], threshold: float) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 3.4))
    allv = np.concatenate([in_scores, *out_scores.values()]) if out_scores else in_scores
    bins = np.linspace(float(allv.min()), float(np.percentile(allv, 99.5)) + 1e-6, 40).tolist()
    ax.hist(in_scores, bins=bins, alpha=0.6, density=True, label="in-distribution (test)")
    for name, s in out_scores.items():
        ax.hist(np.clip(s, None, bins[-1]), bins=bins, alpha=0.5, density=True, label=name)
    ax.axvline(threshold, color="r", ls="--", label="threshold")
    ax.set_xlabel("OOD score (higher = more unusual)")
    ax.legend(fontsize=8)
    return _png(fig)


def curves_png(history: Sequence[Mapping[str, Any]]) -> bytes:
    """Training curves: train loss, and the validation measures per epoch (``val_*`` keys); a dotted
    line where the head phase ends and fine-tuning begins."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    x = list(range(1, len(history) + 1))
    axes[0].plot(x, [h["train_loss"] for h in history], label="train loss")
    axes[0].set_xlabel("epoch (head, then fine-tune)")
    axes[0].legend()
    keys = sorted({k for h in history for k in h if k.startswith("val_")})  # what the task measures per epoch
    for key in keys:
        axes[1].plot(x, [h.get(key, np.nan) for h in history], label=key[4:].replace("_", " "))
    n_head = sum(1 for h in history if h["phase"] == "head")
    for ax in axes:
        if 0 < n_head < len(history):
            ax.axvline(n_head + 0.5, color="grey", ls=":")
    axes[1].set_ylim(0, 1)
    axes[1].legend(loc="lower right")
    return _png(fig)


def operating_points_png(val: Sequence[Mapping[str, Any]], test: Sequence[Mapping[str, Any]] | None = None, *,
                         key: str = "alpha", name: Callable[[Any], str] | None = None,
                         labelled: Collection[Any] | None = None, shipped: Collection[Any] = ()) -> bytes:
    """The price of safety: critical-miss rate against over-triage rate, one point per operating point (validation
    cross-fitted, and test): by default per conformal level alpha; ``key`` names another (``critical_threshold``:
    the decision rules, None the set rule), ``name`` writes its label, ``labelled`` limits the labels to those values
    (all by default), ``shipped`` marks the ones a bundle ships."""
    label = name or (lambda v: f"α={v:g}")
    fig, ax = plt.subplots(figsize=(5.2, 3.8))
    for rows, style, legend in ((val, "o-", "validation (cross-fitted)"), (test or [], "s--", "test")):
        if not rows:
            continue
        x = [r["over_triage_rate"] for r in rows]
        y = [r["critical_miss_rate"] for r in rows]
        line = [(xi, yi) for r, xi, yi in zip(rows, x, y, strict=True) if r[key] is not None]
        ax.plot(*zip(*line, strict=True), style, label=legend, ms=4)
        lone = [(xi, yi) for r, xi, yi in zip(rows, x, y, strict=True) if r[key] is None]  # the set rule: no threshold
        if lone:
            ax.plot(*zip(*lone, strict=True), "x", ms=8, color="k" if style.startswith("o") else "0.5",
                    label=f"set rule ({legend.split(' ')[0]})")
        for r, xi, yi in zip(rows, x, y, strict=True):
            if labelled is None or r[key] in labelled:
                ax.annotate(label(r[key]), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
        marks = [(xi, yi) for r, xi, yi in zip(rows, x, y, strict=True) if r[key] in shipped]
        if marks:
            ax.plot(*zip(*marks, strict=True), "*", ms=13, color="C3", label=f"shipped ({legend.split(' ')[0]})")
    ax.set_xlabel("over-triage rate (routine cases sent to urgent care)")
    ax.set_ylabel("critical-miss rate")
    ax.set_xlim(0, 1)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)

