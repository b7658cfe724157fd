"""PTB-XL records (Wagner et al., Sci. Data 7:154, 2020) in their published layout: ``ptbxl_database.csv``,
``scp_statements.csv`` and ``records100/`` (12 leads, 100 Hz, 10 s).

Labels: the five diagnostic superclasses (NORM, MI, STTC, CD, HYP) as a multi-label target, from every
``scp_codes`` key whose statement is diagnostic, whatever its likelihood (the rule of PhysioNet's example
code). Split: the recommended ``strat_fold`` (1-8 train, 9 validation, 10 test); no patient spans two folds.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from carelens.data import read_table
from carelens.ecg._io import read_ecg
from carelens.errors import DataError

__all__ = ["PTBXL_FOLDS", "PTBXL_SUPERCLASSES", "PtbxlSet", "read_ptbxl"]

PTBXL_SUPERCLASSES = ("NORM", "MI", "STTC", "CD", "HYP")
PTBXL_FOLDS = {"train": "1-8", "validation": 9, "test": 10}  # the recommended strat_fold split (PtbxlSet.split)


@dataclass(frozen=True)
class PtbxlSet:
    signals: np.ndarray  # (n, 12, 1000) float32, millivolts
    labels: np.ndarray  # (n, 5) 0/1 over PTBXL_SUPERCLASSES
    fold: np.ndarray  # (n,) strat_fold
    patient: np.ndarray  # (n,)
    ecg_id: np.ndarray  # (n,)
    leads: list[str]

    def subset(self, mask: np.ndarray) -> PtbxlSet:
        return PtbxlSet(self.signals[mask], self.labels[mask], self.fold[mask], self.patient[mask], self.ecg_id[mask],
                        self.leads)

    def fold_groups(self, k: int) -> np.ndarray:
        """Each record's group (0 to ``k`` - 1) when the folds it holds are dealt into ``k`` contiguous groups of
        nearly equal size (folds 1-9 in 3: 1-3, 4-6, 7-9): patients stay within one, as they do within a fold."""
        folds = np.unique(self.fold)
        if not 2 <= k <= len(folds):
            raise DataError(f"{len(folds)} folds cannot be dealt into {k} groups; choose 2 to {len(folds)}")
        last = [g[-1] for g in np.array_split(folds, k)]
        return np.searchsorted(last, self.fold)

    def split(self) -> tuple[PtbxlSet, PtbxlSet, PtbxlSet]:
        """(train, validation, test): the recommended ``strat_fold`` split, folds 1-8 / 9 / 10."""
        return self.subset(self.fold <= 8), self.subset(self.fold == 9), self.subset(self.fold == 10)


def read_ptbxl(root: str | Path, *, keep_unlabelled: bool = False) -> PtbxlSet:
    """Every record of ``root`` (records without a diagnostic superclass are left out unless ``keep_unlabelled``)."""
    base = Path(root)
    db, statements = base / "ptbxl_database.csv", base / "scp_statements.csv"
    if not db.is_file() or not statements.is_file():
        raise DataError(f"{base} is not a PTB-XL folder (ptbxl_database.csv and scp_statements.csv are needed)")
    classes = {(r.get("") or r.get("Unnamed: 0") or "").strip(): r["diagnostic_class"].strip()
               for r in read_table(statements, "SCP statement table") if (r.get("diagnostic") or "").strip() in ("1", "1.0")}
    sigs, labels, folds, patients, ids = [], [], [], [], []
    leads: list[str] = []
    for r in read_table(db, "PTB-XL database"):
        codes = ast.literal_eval(r["scp_codes"])
        y = np.asarray([any(classes.get(c) == sc for c in codes) for sc in PTBXL_SUPERCLASSES], np.int64)
        if not y.any() and not keep_unlabelled:
            continue
        sig = read_ecg(base / r["filename_lr"])
        if sig.samples.shape != (1000, 12):
            raise DataError(f"record {r['ecg_id']} has shape {sig.samples.shape}; expected 1000 samples x 12 leads")
        sigs.append(np.nan_to_num(sig.samples.T).astype(np.float32))
        leads = sig.leads
        labels.append(y)
        folds.append(int(r["strat_fold"]))
        patients.append(str(r["patient_id"]))
        ids.append(int(r["ecg_id"]))
    return PtbxlSet(np.stack(sigs), np.stack(labels), np.asarray(folds), np.asarray(patients), np.asarray(ids), leads)
