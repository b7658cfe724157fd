"""PTB-XL records (Wagner et al., Sci. Data 7:154, 2020) in their published layout: ``ptbxl_database.csv``,
``scp_statements.csv`` and ``records100/`` (12 leads, 100 Hz, 10 s).

Labels: the five diagnostic superclasses (NORM, MI, STTC, CD, HYP) as a multi-label target, from every
``scp_codes`` key whose statement is diagnostic, whatever its likelihood (the rule of PhysioNet's example
code). Split: the recommended ``strat_fold`` (1-8 train, 9 validation, 10 test); no patient spans two folds.
"""

from __future__ import annotations

import ast
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from carelens.data import read_table
from carelens.ecg._io import read_ecg
from carelens.errors import DataError
from carelens.settings import cache_dir

__all__ = ["PTBXL_FOLDS", "PTBXL_SUPERCLASSES", "PtbxlSet", "read_ptbxl"]

PTBXL_SUPERCLASSES = ("NORM", "MI", "STTC", "CD", "HYP")
PTBXL_FOLDS = {"train": "1-8", "validation": 9, "test": 10}  # the recommended strat_fold split (PtbxlSet.split)
CACHE_VERSION = 1  # raise when what read_ptbxl returns changes: older cached reads are then left unread


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


def read_ptbxl(root: str | Path, *, keep_unlabelled: bool = False, cache: bool = True) -> PtbxlSet:
    """Every record of ``root`` (records without a diagnostic superclass are left out unless ``keep_unlabelled``).

    ``cache``: keep what was read under :func:`carelens.settings.cache_dir` (``ptbxl/``) and read it from there
    next time, as long as both tables are byte for byte the same and every record file has the same size and
    modification time (wfdb parses headers slowly: about 27 ms a record here, ten minutes for the full PTB-XL)."""
    base = Path(root)
    db, statements = base / "ptbxl_database.csv", base / "scp_statements.csv"
    if not db.is_file() or not statements.is_file():
        raise DataError(f"{base} is not a PTB-XL folder (ptbxl_database.csv and scp_statements.csv are needed)")
    classes = {(r.get("") or r.get("Unnamed: 0") or "").strip(): r["diagnostic_class"].strip()
               for r in read_table(statements, "SCP statement table") if (r.get("diagnostic") or "").strip() in ("1", "1.0")}
    rows = []
    for r in read_table(db, "PTB-XL database"):
        codes = ast.literal_eval(r["scp_codes"])
        y = np.asarray([any(classes.get(c) == sc for c in codes) for sc in PTBXL_SUPERCLASSES], np.int64)
        if y.any() or keep_unlabelled:
            rows.append((r, y))
    try:
        cached = _cache_file(base, [r["filename_lr"] for r, _ in rows], (db, statements)) if cache else None
    except OSError:  # no cache folder can be made (a read-only home): read the records
        cached = None
    if cached is not None and cached.is_file():
        with np.load(cached) as z:
            return PtbxlSet(z["signals"], z["labels"], z["fold"], z["patient"], z["ecg_id"], z["leads"].tolist())
    sigs: list[np.ndarray] = []
    leads: list[str] = []
    for r, _ in rows:
        sig = read_ecg(base / r["filename_lr"])
        if sig.samples.shape != (1000, 12):
            raise DataError(f"record {r['ecg_id']} has shape {sig.samples.shape}; expected 1000 samples x 12 leads")
        sigs.append(np.nan_to_num(sig.samples.T).astype(np.float32))
        leads = sig.leads
    s = PtbxlSet(np.stack(sigs), np.stack([y for _, y in rows]), np.asarray([int(r["strat_fold"]) for r, _ in rows]),
                 np.asarray([str(r["patient_id"]) for r, _ in rows]), np.asarray([int(r["ecg_id"]) for r, _ in rows]),
                 leads)
    if cached is not None:
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_name(f"{cached.stem}.{os.getpid()}.partial.npz")  # two processes never share one
            np.savez(tmp, signals=s.signals, labels=s.labels, fold=s.fold, patient=s.patient, ecg_id=s.ecg_id,
                     leads=np.asarray(s.leads))
            tmp.replace(cached)
        except OSError:
            pass  # a read-only cache folder: read the records again next time
    return s


def _cache_file(base: Path, records: list[str], tables: tuple[Path, ...]) -> Path:
    """Where a read of these records is kept: named by a digest of the tables' bytes and each record file's name,
    size and modification time (a changed table or record reads afresh)."""
    h = hashlib.sha256(f"ptbxl-cache-{CACHE_VERSION}".encode())
    for t in tables:
        h.update(t.read_bytes())
    for rec in records:
        for ext in (".hea", ".dat"):
            f = base / (rec + ext)
            st = f.stat() if f.is_file() else None
            h.update(f"{rec}{ext}:{st.st_size if st else -1}:{st.st_mtime_ns if st else -1}\n".encode())
    return cache_dir() / "ptbxl" / f"{h.hexdigest()[:32]}.npz"
