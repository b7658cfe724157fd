"""Symptom tables as matrices, honest splits by unique symptom pattern, and simulated partial reporting."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from carelens.errors import DataError
from carelens.labels import LabelSpec, load_spec
from carelens.symptoms._vocabulary import Vocabulary, clean_symptom_name, load_kaggle_vocabulary

__all__ = ["SymptomTable", "load_kaggle_table", "partial_reports", "split_patterns", "unique_cases"]


@dataclass
class SymptomTable:
    X: np.ndarray  # (n, n_symptoms) 0/1
    y: np.ndarray  # (n,) class index into spec.class_ids
    vocab: Vocabulary
    spec: LabelSpec


def load_kaggle_table(root: Path, file: str = "Training.csv", *, unique: bool = True) -> SymptomTable:
    """Training.csv as a matrix over the cleaned vocabulary; ``unique`` drops the 4,616 exact duplicates."""
    vocab = load_kaggle_vocabulary(root)
    spec = load_spec("symptoms_kaggle41")
    path = root / "disease_prediction" / file
    if not path.is_file():
        raise DataError(f"{path} not found")
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    header = [clean_symptom_name(h) for h in rows[0]]
    label_col = header.index("prognosis")
    col_of = {sid: j for j, sid in enumerate(vocab.ids)}
    X = np.zeros((len(rows) - 1, len(vocab.ids)), np.int8)
    labels = []
    for i, row in enumerate(rows[1:]):
        for j, (h, v) in enumerate(zip(header, row, strict=False)):
            if j != label_col and v.strip() == "1" and h in col_of:
                X[i, col_of[h]] = 1  # the duplicated fluid_overload columns OR together
        labels.append(row[label_col])
    ids = spec.map_labels(labels)
    y = np.asarray([spec.index(c) for c in ids if c is not None])
    if unique:
        _, keep = np.unique(np.c_[X, y], axis=0, return_index=True)
        keep.sort()
        X, y = X[keep], y[keep]
    return SymptomTable(X, y, vocab, spec)


def split_patterns(X: np.ndarray, y: np.ndarray, fractions: tuple[float, float, float] = (0.6, 0.2, 0.2),
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices of a split by symptom pattern, stratified by label: every row with the same pattern (the same
    row of ``X``) falls in one split, so that validation and test measure patterns the model never saw. A table of
    cases repeats its patterns (the synthetic livestock table: 43,778 rows, 83 patterns); split row by row, its
    test rows would be training rows again. A pattern's label for the stratification is its first row's."""
    first, group, _ = _distinct(X)
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[], [], []]
    label = y[first]
    for c in np.unique(label):
        idx = rng.permutation(np.nonzero(label == c)[0])
        n = len(idx)
        a = max(1, round(fractions[0] * n))
        b = a + max(1, round(fractions[1] * n)) if n >= 3 else a
        parts[0] += idx[:a].tolist()
        parts[1] += idx[a:b].tolist()
        parts[2] += idx[b:].tolist()
    return tuple(np.nonzero(np.isin(group, p))[0] for p in parts)  # type: ignore[return-value]


def unique_cases(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct (pattern, label) rows in the order they first appear, with how often each occurs."""
    first, _, counts = _distinct(np.c_[X, y])
    return X[first], y[first], counts


def _distinct(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The distinct rows numbered in the order they first appear: (the row where each first appears, each row's
    number, how many rows each has)."""
    _, first, inverse, counts = np.unique(rows, axis=0, return_index=True, return_inverse=True, return_counts=True)
    order = np.argsort(first, kind="stable")
    number = np.empty_like(order)
    number[order] = np.arange(len(order))
    return first[order], number[inverse.ravel()], counts[order]


def partial_reports(X: np.ndarray, y: np.ndarray, n_reported: int | tuple[int, int], per_row: int,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Rows where a patient names only some of their symptoms (chosen at random)."""
    rng = np.random.default_rng(seed)
    out_x, out_y = [], []
    for x, label in zip(X, y, strict=True):
        present = np.nonzero(x)[0]
        for _ in range(per_row):
            k = n_reported if isinstance(n_reported, int) else int(rng.integers(n_reported[0], n_reported[1] + 1))
            pick = rng.choice(present, min(k, len(present)), replace=False)
            row = np.zeros_like(x)
            row[pick] = 1
            out_x.append(row)
            out_y.append(label)
    return np.asarray(out_x), np.asarray(out_y)
