"""`carelens evaluate`: run a bundle over a split once, save every prediction, derive every figure."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from carelens.bundle import Bundle
from carelens.data import Dataset, Splits, load_run_splits, split_dataset
from carelens.errors import DataError
from carelens.labels import TRIAGE_LEVELS, LabelSpec, triage_rank
from carelens.metrics import (
    binary_calibration_report,
    calibration_report,
    classification_metrics,
    coverage_report,
    decisions,
    ece_noise_floor,
    risk_coverage,
    softmax,
)
from carelens.policy import critical_miss_rate, level_agreement, ood_at_floor, over_triage_rate
from carelens.predict import Engine
from carelens.steps import multilabel_report
from carelens.tasks import encode_findings, sigmoid

__all__ = ["EdgeCase", "Evaluation", "evaluate", "metrics_from_predictions", "multilabel_metrics_from_predictions",
           "resolve_splits", "save_predictions"]


@dataclass
class EdgeCase:
    case: str
    kind: str  # natural_photo | blank | noise | blur | other_modality
    top: str
    probability: float
    confidence: str
    in_distribution: bool
    triage: str
    ood_raw: float

    @property
    def handled(self) -> bool:
        """An edge case is handled when the model says it is unsure or out of distribution."""
        return self.confidence == "uncertain" or not self.in_distribution


@dataclass
class Evaluation:
    bundle: Bundle
    dataset: Dataset
    split: str
    ids: list[str]
    arrays: dict[str, np.ndarray]  # y, logits, proba, in_set, ood_raw, ood_p, in_distribution, triage_rank
    metrics: dict[str, Any]
    assessments: list[dict[str, Any]]
    edge_cases: list[EdgeCase] = field(default_factory=list)
    edge_ood: dict[str, np.ndarray] = field(default_factory=dict)

    @cached_property
    def called(self) -> np.ndarray:
        """The class the bundle calls for each image (multi-class: probability x its finding weights)."""
        return decisions(self.arrays["proba"], self.bundle.policy().finding_weights)


def resolve_splits(bundle: Bundle, ds: Dataset, splits_file: Path | None) -> tuple[Dataset, Splits]:
    """The exact split the model was trained with: from a file, or re-made and checked by digest."""
    if splits_file is not None:
        return load_run_splits(splits_file, ds)
    info = bundle.spec.split
    fractions, seed = (tuple(info.fractions), info.seed) if info else ((0.7, 0.1, 0.2), 0)
    s = split_dataset(ds, fractions, seed)  # type: ignore[arg-type]
    if info and s.assignment_digest() != info.assignment_sha256:
        raise DataError(
            "re-making the split of this data does not reproduce the split the model was trained with, so the "
            "'test' images could include training images. Pass the run's split file: --splits RUN/splits.json"
        )
    return ds, s


def _or_none(v: float) -> float | None:
    return None if np.isnan(v) else v


def metrics_from_predictions(a: dict[str, np.ndarray], spec: LabelSpec, coverage_target: float,
                             weights: Sequence[float] | None = None) -> dict[str, Any]:
    """Every headline figure from the saved predictions (so scripts can recompute and check them); ``weights``:
    the bundle's finding weights (the class it calls: probability x weight)."""
    y = a["y"]
    class_ids = spec.class_ids
    m = classification_metrics(y, a["proba"], class_ids, weights)
    before, after = calibration_report(a["proba_raw"], y), calibration_report(a["proba"], y)
    cov = coverage_report(a["in_set"].astype(bool), y, class_ids)
    levels = [TRIAGE_LEVELS[r] for r in a["triage_rank"]]
    _, rc_acc = risk_coverage(a["proba"].max(1), (decisions(a["proba"], weights) == y).astype(float))
    return {
        **{k: m[k] for k in ("n", "accuracy", "balanced_accuracy", "macro_auc", "macro_f1", "weighted_f1",
                             "per_class", "per_class_recall", "confusion_matrix", "worst_classes",
                             "majority_baseline_accuracy") if k in m},
        **({"medmnist_acc": m["medmnist_acc"]} if "medmnist_acc" in m else {}),
        "ece_before": before["ece"], "ece": after["ece"], "mce": after["mce"], "brier": after["brier"],
        "ece_floor": ece_noise_floor(a["proba"]),  # a perfectly calibrated model would show this on as many images
        "nll": after["nll"], "reliability_before": before["reliability"], "reliability": after["reliability"],
        "coverage_target": coverage_target, **cov,
        "ood_pass_rate": float(a["in_distribution"].mean()),
        "critical_miss_rate": _or_none(critical_miss_rate(levels, y, spec)),
        "critical_classes": [c.id for c in spec.classes if c.is_critical],  # none: the rate is undefined
        "over_triage_rate": _or_none(over_triage_rate(levels, y, spec)),
        "triage_agreement": level_agreement(levels, y, spec),  # each case's level against its own
        "selective_accuracy_at_80": float(rc_acc[max(int(0.8 * len(rc_acc)) - 1, 0)]),
        "risk_coverage_aurc": float(np.mean(1 - rc_acc)),
    }


def multilabel_metrics_from_predictions(a: dict[str, np.ndarray], bundle: Bundle) -> dict[str, Any]:
    """A multi-label bundle's figures from its saved predictions: per-condition P/R/F1/AUC, micro/macro F1,
    subset accuracy, Hamming loss, severity accuracy / weighted F1 / MAE / QWK, the false-negative rate achieved
    against its target, conditions kept per image, calibration per condition, triage rates."""
    assert bundle.multilabel is not None and bundle.layout is not None
    spec = bundle.labels
    m = multilabel_report(bundle.multilabel, bundle.layout, spec, a["logits"], a["y"], a["in_distribution"],
                          bundle.policy())  # decided as the bundle decides (its severity floor), not by the default
    presence, _ = bundle.layout.split_targets(a["y"])
    per: dict[str, Any] = {}
    for k, cid in enumerate(spec.class_ids):
        before = binary_calibration_report(a["proba_raw"][:, k], presence[:, k])
        after = binary_calibration_report(a["proba"][:, k], presence[:, k])
        per[cid] = {"ece_before": before["ece"], "ece": after["ece"], "reliability_before": before["reliability"],
                    "reliability": after["reliability"]}
    m["per_label_calibration"] = per
    m["critical_miss_rate"] = _or_none(m["critical_miss_rate"])
    m["over_triage_rate"] = _or_none(m["over_triage_rate"])
    return m


def _edge_images(ds: Dataset, test_idx: list[int], other: Dataset | None) -> list[tuple[str, str, np.ndarray]]:
    out: list[tuple[str, str, np.ndarray]] = [
        ("blank white", "blank", np.full((224, 224, 3), 255, np.uint8)),
        ("blank black", "blank", np.zeros((224, 224, 3), np.uint8)),
        ("uniform noise", "noise", np.random.default_rng(0).integers(0, 256, (224, 224, 3), dtype=np.uint8)),
    ]
    if test_idx:
        src = ds.load_image(test_idx[0])
        blurred = np.asarray(Image.fromarray(src).filter(ImageFilter.GaussianBlur(radius=max(src.shape[:2]) / 10)))
        out.append((f"heavy blur of {ds[test_idx[0]].id}", "blur", blurred))
    try:
        from skimage import data as sk

        for name in ("astronaut", "chelsea", "coffee", "rocket"):
            out.append((f"natural photo: {name}", "natural_photo", np.asarray(getattr(sk, name)())[:, :, :3]))
    except ImportError:
        pass
    if other is not None:
        idx = np.random.default_rng(0).choice(len(other), min(20, len(other)), replace=False)
        for i, img in other.iter_images(sorted(idx.tolist())):
            out.append((f"other modality: {other.name} {other[i].id}", "other_modality", img))
    return out


def evaluate(bundle: Bundle, ds: Dataset, splits: Splits, *, split: str = "test", other: Dataset | None = None,
             batch_size: int = 32, lanes: int = 1, progress: Callable[[int], None] | None = None) -> Evaluation:
    """Assess every readable image of ``split`` once and derive the metrics from those predictions. ``lanes``: batches
    in progress at once (:class:`carelens.predict.Engine`), for a bundle loaded with cores / lanes threads (the `make
    demo` bundle, fp32, on its 1,704 HAM10000 test images: 139-144 images/s with one lane of two threads, 164 with
    two lanes of one)."""
    class_ids = bundle.spec.class_ids
    if ds.spec is not None and ds.spec.class_ids != class_ids:
        raise DataError(f"the data's classes {ds.spec.class_ids} differ from the bundle's {class_ids}")
    engine = Engine(bundle, batch_size=batch_size, lanes=lanes)
    idx = splits.indices(ds, split)
    if not idx:
        raise DataError(f"the {split} split of {ds.name} is empty")
    index = {c: i for i, c in enumerate(class_ids)}
    spec = bundle.labels

    def target(i: int) -> Any:
        return encode_findings(spec, dict(ds[i].findings or {})) if spec.multilabel else index[ds[i].label]

    keys = ("y", "logits", "proba", "in_set", "ood_raw", "ood_p", "in_distribution", "triage_rank")
    rows: dict[str, list[Any]] = {k: [] for k in keys}
    ids: list[str] = []
    assessments: list[dict[str, Any]] = []

    def batch(chunk: list[int]) -> tuple[list[str], dict[str, list[Any]], list[dict[str, Any]]]:
        """One batch of the split, decoded, run and decided (in a lane of its own with ``lanes`` > 1)."""
        read = list(ds.iter_images(chunk))  # unreadable files are skipped with a warning
        out: dict[str, list[Any]] = {k: [] for k in keys}
        if not read:
            return [], out, []
        inf = engine.infer([img for _, img in read], fmap=False)
        decided = [engine.decide(inf, n) for n in range(len(read))]
        out["y"] = [target(i) for i, _ in read]
        for key, arr in (("logits", inf.logits), ("proba", inf.proba), ("in_set", inf.in_set),
                         ("ood_raw", inf.ood_raw), ("ood_p", inf.ood_p), ("in_distribution", inf.in_distribution)):
            out[key] = list(arr)
        out["triage_rank"] = [triage_rank(a.triage.level) for a in decided]
        return [ds[i].id for i, _ in read], out, [a.model_dump(mode="json") for a in decided]

    for done_ids, done, dumped in engine.map_batches(batch, idx):
        ids += done_ids
        for k in keys:
            rows[k] += done[k]
        assessments += dumped
        if progress:
            progress(len(done_ids))
    arrays = {k: np.asarray(v) for k, v in rows.items()}
    if bundle.layout is not None:  # multi-label: uncalibrated per-condition probabilities
        arrays["proba_raw"] = sigmoid(bundle.layout.condition_logits(arrays["logits"]))
        metrics = multilabel_metrics_from_predictions(arrays, bundle)
    else:
        arrays["proba_raw"] = softmax(arrays["logits"])
        metrics = metrics_from_predictions(arrays, bundle.labels, engine.coverage, bundle.policy().finding_weights)
    # what the shipped out-of-distribution rule (never lowered) buys: the rates had such input been put at the floor
    at_floor = ood_at_floor([TRIAGE_LEVELS[r] for r in arrays["triage_rank"]], arrays["in_distribution"],
                            engine.policy.floor_when_unsure)
    metrics["critical_miss_rate_ood_at_floor"] = _or_none(critical_miss_rate(at_floor, arrays["y"], spec))
    metrics["over_triage_rate_ood_at_floor"] = _or_none(over_triage_rate(at_floor, arrays["y"], spec))
    facts_rows: list[dict[str, Any]] = []
    if bundle.facts is not None:
        by_id = {ds[i].id: ds[i] for i in idx}
        facts_rows = [dict(by_id[i].facts) for i in ids]  # the assessed (readable) images, in order
    if bundle.facts is not None and any(facts_rows):
        metrics["facts_fusion"] = bundle.facts.measure(arrays["proba"], arrays["in_set"].astype(bool), facts_rows,
                                                       arrays["y"], class_ids, spec=bundle.labels,
                                                       in_distribution=arrays["in_distribution"], policy=engine.policy)

    edges: list[EdgeCase] = []
    edge_scores: dict[str, list[float]] = {}
    cases = _edge_images(ds, idx, other)
    inf = engine.infer([img for _, _, img in cases])
    for n, (name, kind, _) in enumerate(cases):
        a = engine.decide(inf, n)
        edges.append(EdgeCase(name, kind, a.top[0].id, a.top[0].probability, a.confidence, a.in_distribution,
                              a.triage.level, float(inf.ood_raw[n])))
        edge_scores.setdefault(kind, []).append(float(inf.ood_raw[n]))
    metrics["edge_cases_handled"] = float(np.mean([e.handled for e in edges]))
    metrics["edge_cases"] = len(edges)
    metrics.update(
        model={"name": bundle.name, "version": bundle.version}, dataset=ds.name, split=split,
        data_fingerprint=ds.fingerprint(), bundle_data_fingerprint=bundle.spec.data_fingerprint,
        date=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        anchors=bundle.labels.reference.get("anchors", {}),
    )
    return Evaluation(bundle, ds, split, ids, arrays, metrics, assessments, edges,
                      {k: np.asarray(v) for k, v in edge_scores.items()})


def save_predictions(ev: Evaluation, out: Path) -> Path:
    p = out / "predictions.npz"
    np.savez_compressed(p, **{"ids": np.asarray(ev.ids), **ev.arrays})  # type: ignore[arg-type]
    return p
