"""`carelens predict` for clinical (tabular) bundles: one assessment, with each input's contribution, per row
of a CSV of cases. A row the bundle refuses (unknown input, value out of range, required input missing) is
reported as that row's error; the other rows are still assessed."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from carelens.bundle import TabularBundle
from carelens.errors import DataError, FactsError
from carelens.policy import DecisionPolicy
from carelens.predict.engine import Result

__all__ = ["predict_table"]


def predict_table(bundle: TabularBundle, path: str | Path, policy: DecisionPolicy | None = None) -> Iterator[Result]:
    """Results in row order; an input column left empty is a missing value."""
    p = Path(path)
    if p.suffix.lower() != ".csv" or not p.is_file():
        raise DataError(f"{p}: a clinical model reads a CSV of cases (one row per case, one column per input)")
    with p.open(newline="", encoding="utf-8-sig") as f:
        for n, row in enumerate(csv.DictReader(f), start=2):
            name = f"{p.name}:{n}"
            given = {k: v for k, v in row.items() if k and v is not None and v.strip() not in ("", "?")}
            try:
                a, contributions = bundle.assess(bundle.check(given), policy)
            except FactsError as exc:
                yield Result(name, error=str(exc))
                continue
            yield Result(name, a, contributions=contributions)
