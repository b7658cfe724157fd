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
from carelens.data._scan import near_duplicate_pairs, scan_dataset
from carelens.data._splits import Splits
from carelens.errors import ConfigError

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
    n = len(ds)
    labels = ds.labels
    ok = scan.ok

    # -- which split each example is in ------------------------------------------------------
    split_of: list[str | None]
    strategy: str | None
    if splits is not None:
        split_of, strategy = [splits.assignment.get(e.id) for e in ds], splits.strategy
    elif ds.has_official_split:
        split_of, strategy = [e.split for e in ds], "official"
    else:
        split_of, strategy = [None] * n, None

    # -- classes -------------------------------------------------------------------------------
    counts = ds.class_counts()
    readable = Counter(labels[i] for i in range(n) if ok[i])
    group_sets: dict[str, set[str]] = defaultdict(set)
    for e in ds:
        group_sets[e.label].add(e.group if e.group is not None else f"id:{e.id}")
    nonzero = [readable.get(c, 0) for c in counts if readable.get(c, 0) > 0]
    imbalance = float(max(nonzero) / min(nonzero)) if nonzero else float("nan")
    target = target_per_class or max(min_per_class, int(np.median(list(counts.values()))))
    classes = []
    for c, cnt in counts.items():
        r = readable.get(c, 0)
        per_split = Counter(split_of[i] for i in range(n) if labels[i] == c and split_of[i] is not None)
        classes.append(
            ClassAudit(
                id=c,
                count=cnt,
                readable=r,
                groups=len(group_sets.get(c, ())),
                share=round(r / max(int(ok.sum()), 1), 4),
                deficit=max(0, target - r),
                too_few_to_validate=r < min_per_class,
                per_split=dict(sorted(per_split.items())),  # type: ignore[arg-type]
            )
        )

    # -- files ---------------------------------------------------------------------------------
    unreadable = [
        {"id": ds[i].id, "path": str(ds[i].path) if ds[i].path else "", "error": err}
        for i, err in sorted(scan.errors.items())
    ]
    tiny = [
        {"id": ds[i].id, "width": int(scan.width[i]), "height": int(scan.height[i])}
        for i in range(n)
        if ok[i] and min(scan.width[i], scan.height[i]) < tiny_side
    ]

    # -- duplicates ----------------------------------------------------------------------------
    by_hash: dict[str, list[int]] = defaultdict(list)
    for i in range(n):
        if ok[i]:
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

    cross_class = [pair(*p) for p in all_pairs if labels[p[0]] != labels[p[1]]]
    cross_group = [
        pair(*p) for p in all_pairs
        if ds[p[0]].group is not None and ds[p[1]].group is not None and ds[p[0]].group != ds[p[1]].group
    ]
    leaks = [
        pair(*p) for p in all_pairs
        if split_of[p[0]] is not None and split_of[p[1]] is not None and split_of[p[0]] != split_of[p[1]]
    ]
    group_labels: dict[str, set[str]] = defaultdict(set)
    for e in ds:
        if e.group is not None:
            group_labels[e.group].add(e.label)
    spanning = [{"group": g, "labels": sorted(ls)} for g, ls in sorted(group_labels.items()) if len(ls) > 1]

    # -- plain-language findings ---------------------------------------------------------------
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
    if cross_class:
        warn.append(f"{len(cross_class)} duplicate pair(s) carry different labels (label noise).")
    if cross_group:
        warn.append(f"{len(cross_group)} duplicate pair(s) have different group ids: probably one subject under two ids.")
    if leaks:
        warn.append(f"{len(leaks)} duplicate pair(s) cross splits (leakage): test figures would be optimistic.")
    if spanning:
        warn.append(f"{len(spanning)} group(s) carry more than one label.")

    return AuditReport(
        dataset={"name": ds.name, "source": ds.source, "root": str(ds.root), "fingerprint": ds.fingerprint()},
        spec=ds.spec.name if ds.spec else None,
        n_examples=n,
        n_readable=int(ok.sum()),
        classes=classes,
        imbalance_ratio=round(imbalance, 2),
        target_per_class=target,
        min_per_class=min_per_class,
        unreadable=unreadable,
        tiny_images=tiny,
        exact_duplicates=[[ds[i].id for i in idx] for idx in exact_sets],
        near_duplicates=[pair(a, b, r, "near") for a, b, r in near],
        cross_class_duplicates=cross_class,
        cross_group_duplicates=cross_group,
        split_leaks=leaks,
        groups_spanning_classes=spanning,
        split_strategy=strategy,
        warnings=warn,
        seconds=round(time.perf_counter() - t0, 2),
    )
