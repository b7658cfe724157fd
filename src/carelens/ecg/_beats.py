"""Heartbeats from the MIT-BIH Arrhythmia Database as a classification set, the way the literature compares
methods fairly (ANSI/AAMI EC57 classes, the de Chazal 2004 inter-patient division).

* AAMI classes: N (normal, bundle branch blocks, escapes), S (supraventricular ectopic), V (ventricular
  ectopic), F (fusion of ventricular and normal); Q (paced, unclassifiable) is left out, as usual.
* DS1 (training) and DS2 (test) hold different patients; the four paced records are excluded. An intra-patient
  random split puts beats of one patient on both sides and inflates accuracy to ~99%: never used here.
* Each beat: a window of one lead around its R-peak (band-passed 0.5-40 Hz, resampled to 180 Hz, scaled by
  the record's median R amplitude; with it, the beat minus the record's median beat) and RR-interval features (previous, next, local mean of the 10 preceding,
  and the record's mean RR; ratios to the record mean), which carry most of the S information.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from carelens.ecg._io import bandpass, read_ecg, require
from carelens.ecg._rpeaks import detect_rpeaks

__all__ = ["AAMI", "AAMI_CLASSES", "BEAT_WINDOW", "DS1", "DS2", "BeatSet", "beat_features", "read_mitbih_beats"]

AAMI_CLASSES = ("N", "S", "V", "F")
AAMI: dict[str, str] = {**dict.fromkeys("NLRej", "N"), **dict.fromkeys("AaJS", "S"), **dict.fromkeys("VE", "V"), "F": "F"}
DS1 = ("101", "106", "108", "109", "112", "114", "115", "116", "118", "119", "122", "124", "201", "203", "205", "207",
       "208", "209", "215", "220", "223", "230")
DS2 = ("100", "103", "105", "111", "113", "117", "121", "123", "200", "202", "210", "212", "213", "214", "219", "221",
       "222", "228", "231", "232", "233", "234")
FS = 180.0  # beats are resampled to this rate
BEFORE_S, AFTER_S = 0.25, 0.45  # window around the R-peak: P wave before, T wave after
BEAT_WINDOW = {"fs": FS, "before_s": BEFORE_S, "after_s": AFTER_S}  # how a beat is cut: kept in signal bundles
MATCH_S = 0.15  # a detected beat takes the label of a reference beat within this distance


@dataclass(frozen=True)
class BeatSet:
    waves: np.ndarray  # (n, 2, L) float32: the beat, and the beat minus the record's median beat
    rr: np.ndarray  # (n, 6) float32
    y: np.ndarray  # (n,) index into AAMI_CLASSES
    record: np.ndarray  # (n,) record name: the patient
    sample: np.ndarray  # (n,) R-peak sample index in the record

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, mask: np.ndarray) -> BeatSet:
        return BeatSet(self.waves[mask], self.rr[mask], self.y[mask], self.record[mask], self.sample[mask])

    def split_late(self, share: float = 0.2) -> tuple[BeatSet, BeatSet]:
        """(earlier beats, the last ``share`` in time of every record): a validation split of the same patients,
        for choosing the epoch and fitting calibration when every patient of the training records is needed."""
        late = np.zeros(len(self), bool)
        for rec in np.unique(self.record):
            m = self.record == rec
            late[m] = self.sample[m] > np.quantile(self.sample[m], 1 - share)
        return self.subset(~late), self.subset(late)


def beat_features(x: np.ndarray, fs: float, peaks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(windows (n, 2, L), RR features (n, 6), kept) for the R-peaks of one lead; ``kept`` marks the peaks whose
    window and neighbours exist (the first and last beats are dropped)."""
    from scipy.signal import resample_poly  # on use: image serving stays without scipy.signal

    f = bandpass(np.nan_to_num(np.asarray(x, np.float64)), fs, 0.5, 40.0)
    g = resample_poly(f, int(FS), round(fs)) if round(fs) != FS else f
    p = np.round(np.asarray(peaks) * FS / fs).astype(np.int64)
    a, b = int(BEFORE_S * FS), int(AFTER_S * FS)
    rr = np.diff(np.asarray(peaks, np.float64)) / fs
    kept = np.zeros(len(p), bool)
    kept[1:-1] = (p[1:-1] - a >= 0) & (p[1:-1] + b <= len(g))
    idx = np.flatnonzero(kept)
    scale = float(np.median(np.abs(g[np.clip(p, 0, len(g) - 1)]))) or 1.0
    if not len(idx):
        return np.zeros((0, 2, a + b), np.float32), np.zeros((0, 6), np.float32), kept
    beats = np.stack([g[p[i] - a : p[i] + b] for i in idx]) / scale
    # second channel: the beat minus the record's median beat (how this beat differs from this patient's usual
    # one), which carries across patients better than the raw shape
    waves = np.stack([beats, beats - np.median(beats, axis=0)], axis=1).astype(np.float32)
    mean_rr = float(np.median(rr)) if len(rr) else 1.0
    local = np.asarray([rr[max(0, i - 10) : i].mean() if i > 0 else rr[0] for i in range(len(rr))])
    pre, post, loc = rr[idx - 1], rr[idx], local[idx - 1]
    feats = np.stack([pre, post, loc, pre / mean_rr, post / mean_rr, pre / np.maximum(loc, 1e-3)], axis=1)
    return waves, feats.astype(np.float32), kept


def read_mitbih_beats(root: str | Path, records: tuple[str, ...] = DS1 + DS2, *, detected: bool = False) -> BeatSet:
    """The AAMI N/S/V/F beats of ``records`` on lead MLII (V5 where a record has no MLII).

    ``detected``: centre the windows on this package's own R-peak detections (each labelled by the reference
    beat within 150 ms; detections matching none are left out, reference beats never found are lost), the
    end-to-end setting; otherwise on the reference annotations."""
    wfdb = require("wfdb")
    parts = []
    for rec in records:
        sig = read_ecg(Path(root) / rec)
        lead = sig.lead_index()
        x = sig.samples[:, lead]
        ann = wfdb.rdann(str(Path(root) / rec), "atr")
        ref = np.asarray(ann.sample)
        sym = np.asarray(ann.symbol)
        is_beat = np.isin(sym, list(AAMI) + ["/", "f", "Q", "?"])
        ref, sym = ref[is_beat], sym[is_beat]
        if detected:
            peaks = detect_rpeaks(np.nan_to_num(x), sig.fs)
            j = np.clip(np.searchsorted(ref, peaks), 1, len(ref) - 1)
            nearest = np.where(np.abs(ref[j - 1] - peaks) <= np.abs(ref[j] - peaks), j - 1, j)
            labels = np.where(np.abs(ref[nearest] - peaks) <= MATCH_S * sig.fs, sym[nearest], "")
        else:
            peaks, labels = ref, sym
        waves, rr, kept = beat_features(x, sig.fs, peaks)
        lab = labels[kept]
        use = np.isin(lab, list(AAMI))
        y = np.asarray([AAMI_CLASSES.index(AAMI[s]) for s in lab[use]], np.int64)
        parts.append(BeatSet(waves[use], rr[use], y, np.full(len(y), rec), peaks[kept][use]))
    return BeatSet(*(np.concatenate([getattr(b, k) for b in parts]) for k in ("waves", "rr", "y", "record", "sample")))
