"""`carelens audit`: what a user must know about a dataset before training on it."""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from carelens.data._dataset import Dataset
from carelens.data._scan import ScanResult, near_duplicate_pairs, scan_dataset
from carelens.data._splits import Splits
from carelens.errors import ConfigError
from carelens.labels import label_problems

__all__ = ["AuditReport", "ClassAudit", "audit_dataset"]

# With a 10% validation split, 100 examples leave ~10 for validation: just enough for a 90%
# class-conditional conformal guarantee ((1 - alpha) / alpha = 9) and a very rough recall.
DEFAULT_MIN_PER_CLASS = 100


@dataclass
class ClassAudit:
    id: str
    count: int
    readable: int
    groups: int
    share: float
    deficit: int  # examples still to collect to reach the target
    too_few_to_validate: bool
    per_split: dict[str, int] = field(default_factory=dict)


@dataclass
class AuditReport:
    dataset: dict[str, Any]
    spec: str | None
    n_examples: int
    n_readable: int
    classes: list[ClassAudit]
    imbalance_ratio: float
    target_per_class: int
    min_per_class: int
    unreadable: list[dict[str, str]]
    tiny_images: list[dict[str, Any]]
    exact_duplicates: list[list[str]]
    near_duplicates: list[dict[str, Any]]
    cross_class_duplicates: list[dict[str, Any]]
    cross_group_duplicates: list[dict[str, Any]]
    split_leaks: list[dict[str, Any]]
    groups_spanning_classes: list[dict[str, Any]]
    multilabel: dict[str, Any] | None  # multi-label data: co-occurrence, condition x severity cells
    excluded_files: list[str]  # left out on purpose by the reader (segmentation masks ...)
    split_strategy: str | None
    warnings: list[str]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.to_dict(), indent=1), encoding="utf-8")
        return p


def audit_dataset(
    ds: Dataset,
    *,
    splits: Splits | None = None,
    target_per_class: int | None = None,
    min_per_class: int = DEFAULT_MIN_PER_CLASS,
    tiny_side: int = 32,
    near_threshold: float = 0.99,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> AuditReport:
    """Read every image once and report counts, imbalance, bad files, duplicates and leakage.

    Args:
        ds: the dataset, with its spec applied if there is one.
        splits: a split to check for leakage; official splits (MedMNIST) are used when absent.
        target_per_class: examples wanted per class; default the larger of ``min_per_class`` and
            the median class count.
        min_per_class: below this a class is flagged as too small to validate.
        tiny_side: images whose shorter side is below this many pixels are listed.
        near_threshold: fingerprint correlation at or above which two images are near-duplicates.
    """
    if not 0.5 < near_threshold <= 1.0:
        raise ConfigError(f"near_threshold must be in (0.5, 1], got {near_threshold}")
    t0 = time.perf_counter()
    scan = scan_dataset(ds, workers=workers, progress=progress)
    split_of, strategy = _split_of(ds, splits)
    classes, imbalance, target = _class_audit(ds, scan, split_of, target_per_class, min_per_class)
    unreadable, tiny = _file_findings(ds, scan, tiny_side)
    dupes = _duplicate_findings(ds, scan, split_of, near_threshold)
    spanning = [] if ds.multilabel else _groups_spanning_classes(ds)
    multi = _multilabel_audit(ds, scan.ok, min_per_class) if ds.multilabel else None
    return AuditReport(
        dataset={"name": ds.name, "source": ds.source, "root": str(ds.root), "fingerprint": ds.fingerprint()},
        spec=ds.spec.name if ds.spec else None,
        n_examples=len(ds),
        n_readable=int(scan.ok.sum()),
        classes=classes,
        imbalance_ratio=round(imbalance, 2),
        target_per_class=target,
        min_per_class=min_per_class,
        unreadable=unreadable,
        tiny_images=tiny,
        **dupes,
        groups_spanning_classes=spanning,
        multilabel=multi,
        excluded_files=list(ds.excluded),
        split_strategy=strategy,
        warnings=[*ds.notes,
                  *(label_problems(ds.class_counts()) if ds.spec is None and not ds.multilabel else []),
                  *_warnings(classes, imbalance, min_per_class, unreadable, tiny, tiny_side, dupes, spanning),
                  *(multi["warnings"] if multi else [])],
        seconds=round(time.perf_counter() - t0, 2),
    )


def _split_of(ds: Dataset, splits: Splits | None) -> tuple[list[str | None], str | None]:
    """Which split each example is in, and how the split was made (None when there is none)."""
    if splits is not None:
        return [splits.assignment.get(e.id) for e in ds], splits.strategy
    if ds.has_official_split:
        return [e.split for e in ds], "official"
    return [None] * len(ds), None


def _class_audit(ds: Dataset, scan: ScanResult, split_of: list[str | None], target_per_class: int | None,
                 min_per_class: int) -> tuple[list[ClassAudit], float, int]:
    """Per class: readable examples, the groups they come from, share, deficit to the target, per split; the imbalance ratio."""
    n, ok = len(ds), scan.ok
    counts = ds.class_counts()
    members = [_classes_of(e) for e in ds]  # multi-label: every condition of the image
    readable = Counter(c for i in range(n) if ok[i] for c in members[i])
    group_sets: dict[str, set[str]] = defaultdict(set)
    for e, cs, readable_file in zip(ds, members, ok, strict=True):
        for c in cs if readable_file else ():  # like `readable`: an unreadable file is no example of its group
            group_sets[c].add(e.group if e.group is not None else f"id:{e.id}")
    nonzero = [readable.get(c, 0) for c in counts if readable.get(c, 0) > 0]
    imbalance = float(max(nonzero) / min(nonzero)) if nonzero else float("nan")
    target = target_per_class or max(min_per_class, int(np.median(list(counts.values()))))
    classes = []
    for c, cnt in counts.items():
        r = readable.get(c, 0)
        per_split = Counter(split_of[i] for i in range(n) if c in members[i] and split_of[i] is not None)
        classes.append(ClassAudit(
            id=c, count=cnt, readable=r, groups=len(group_sets.get(c, ())), share=round(r / max(int(ok.sum()), 1), 4),
            deficit=max(0, target - r), too_few_to_validate=r < min_per_class,
            per_split=dict(sorted(per_split.items())),  # type: ignore[arg-type]
        ))
    return classes, imbalance, target


def _classes_of(e: Any) -> tuple[str, ...]:
    return tuple(e.findings) if e.findings is not None else (e.label,)


# A (condition, severity) cell needs this many images for a 70/10/20 split to leave ~3 for validation and ~6
# for testing: below it, the severity figures of that cell cannot be checked.
MIN_CELL = 30


def _multilabel_audit(ds: Dataset, ok: np.ndarray, min_per_class: int) -> dict[str, Any]:
    """Label co-occurrence, positives per condition, condition x severity counts, and cells too small."""
    conditions = ds.spec.class_ids if ds.spec else sorted({c for e in ds for c in (e.findings or {})})
    rows = [e.findings or {} for i, e in enumerate(ds) if ok[i]]
    co = {a: {b: sum(1 for f in rows if a in f and b in f) for b in conditions} for a in conditions}
    cells: dict[str, dict[str, int]] = {}
    for c in conditions:
        levels = ds.spec.get(c).level_ids if ds.spec else []
        counts = Counter(str(f[c]) if f[c] is not None else "unknown" for f in rows if c in f)
        cells[c] = {lv: counts.get(lv, 0) for lv in levels} | ({"unknown": counts["unknown"]} if counts["unknown"] else {})
    small = [f"{c}/{lv} ({n})" for c, lvs in cells.items() for lv, n in lvs.items() if lv != "unknown" and n < MIN_CELL]
    cardinality = Counter(len(f) for f in rows)
    warnings = []
    if small:
        warnings.append(f"{len(small)} condition x severity cell(s) have fewer than {MIN_CELL} images, too few to "
                        f"validate that grade: {', '.join(small[:12])}{' ...' if len(small) > 12 else ''}")
    return {"positives": {c: co[c][c] for c in conditions}, "co_occurrence": co, "severity_cells": cells,
            "small_cells": small, "min_cell": MIN_CELL,
            "conditions_per_image": {str(k): v for k, v in sorted(cardinality.items())},
            "no_finding": cardinality.get(0, 0), "warnings": warnings}


def _file_findings(ds: Dataset, scan: ScanResult, tiny_side: int) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """Files that cannot be read, and images smaller than ``tiny_side`` on a side."""
    unreadable = [
        {"id": ds[i].id, "path": str(ds[i].path) if ds[i].path else "", "error": err}
        for i, err in sorted(scan.errors.items())
    ]
    tiny = [
        {"id": ds[i].id, "width": int(scan.width[i]), "height": int(scan.height[i])}
        for i in range(len(ds))
        if scan.ok[i] and min(scan.width[i], scan.height[i]) < tiny_side
    ]
    return unreadable, tiny


def _duplicate_findings(ds: Dataset, scan: ScanResult, split_of: list[str | None],
                        near_threshold: float) -> dict[str, Any]:
    """Exact (pixel hash) and near (thumbnail correlation) duplicates, and those that cross a class, a group
    or a split."""
    labels = ds.labels
    by_hash: dict[str, list[int]] = defaultdict(list)
    for i in range(len(ds)):
        if scan.ok[i]:
            by_hash[scan.pixel_hash[i]].append(i)
    exact_sets = [idx for idx in by_hash.values() if len(idx) > 1]
    exact_pairs = {(a, b) for idx in exact_sets for k, a in enumerate(idx) for b in idx[k + 1 :]}
    near = [(a, b, r) for a, b, r in near_duplicate_pairs(scan.thumbs, near_threshold) if (a, b) not in exact_pairs]
    all_pairs = [(a, b, 1.0, "exact") for a, b in sorted(exact_pairs)] + [(a, b, r, "near") for a, b, r in near]

    def pair(a: int, b: int, r: float, kind: str) -> dict[str, Any]:
        return {
            "a": ds[a].id, "b": ds[b].id, "kind": kind, "similarity": round(r, 5),
            "labels": [labels[a], labels[b]], "groups": [ds[a].group, ds[b].group],
            "splits": [split_of[a], split_of[b]],
        }

    def differ(x: Any, y: Any) -> bool:
        return x is not None and y is not None and x != y

    return {
        "exact_duplicates": [[ds[i].id for i in idx] for idx in exact_sets],
        "near_duplicates": [pair(a, b, r, "near") for a, b, r in near],
        "cross_class_duplicates": [pair(*p) for p in all_pairs if labels[p[0]] != labels[p[1]]],
        "cross_group_duplicates": [pair(*p) for p in all_pairs if differ(ds[p[0]].group, ds[p[1]].group)],
        "split_leaks": [pair(*p) for p in all_pairs if differ(split_of[p[0]], split_of[p[1]])],
    }


def _groups_spanning_classes(ds: Dataset) -> list[dict[str, Any]]:
    group_labels: dict[str, set[str]] = defaultdict(set)
    for e in ds:
        if e.group is not None:
            group_labels[e.group].add(e.label)
    return [{"group": g, "labels": sorted(ls)} for g, ls in sorted(group_labels.items()) if len(ls) > 1]


def _warnings(classes: list[ClassAudit], imbalance: float, min_per_class: int, unreadable: list[Any],
              tiny: list[Any], tiny_side: int, dupes: dict[str, Any], spanning: list[Any]) -> list[str]:
    """The findings in plain language, each with what it means for the model."""
    warn: list[str] = []
    for c in classes:
        if c.too_few_to_validate:
            warn.append(
                f"class {c.id!r} has {c.readable} readable examples: a 70/10/20 split leaves about "
                f"{round(c.readable * 0.1)} for validation and {round(c.readable * 0.2)} for testing, too few to "
                f"validate its recall. Collect at least {min_per_class - c.readable} more."
            )
    if imbalance >= 10:
        warn.append(
            f"imbalance ratio {imbalance:.0f}:1 - a model can look accurate by predicting the majority class; "
            "judge it by balanced accuracy and per-class recall."
        )
    if unreadable:
        warn.append(f"{len(unreadable)} file(s) cannot be read and will be skipped in training.")
    if tiny:
        warn.append(f"{len(tiny)} image(s) are smaller than {tiny_side}px on a side.")
    if dupes["cross_class_duplicates"]:
        warn.append(f"{len(dupes['cross_class_duplicates'])} duplicate pair(s) carry different labels (label noise).")
    if dupes["cross_group_duplicates"]:
        warn.append(f"{len(dupes['cross_group_duplicates'])} duplicate pair(s) have different group ids: probably one "
                    "subject under two ids.")
    if dupes["split_leaks"]:
        warn.append(f"{len(dupes['split_leaks'])} duplicate pair(s) cross splits (leakage): test figures would be "
                    "optimistic.")
    if spanning:
        warn.append(f"{len(spanning)} group(s) carry more than one label.")
    return warn
