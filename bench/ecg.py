"""ECG benchmarks (issue 15). Usage: python bench/ecg.py CASE [CASE ...]

Cases:
  ecg_rpeaks   R-peak detection on all 48 MIT-BIH Arrhythmia records, lead MLII (chosen by name: the first
               channel, except record 114 where it is the second), against the reference beat annotations
               with the standard 150 ms matching window (wfdb.processing.compare_annotations). Ventricular
               flutter episodes (between the '[' and ']' annotations, record 207) are left out of the comparison,
               as ANSI/AAMI EC57 and PhysioNet's bxb do. Heart rate: 60 / median RR, from the detections and from
               the reference beats of the same record (outside the flutter spans too). Also: the rhythm screen's irregular-rhythm flag against
               the records whose rhythm annotations are mostly atrial fibrillation or flutter.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import write_result

from carelens.ecg import DEFAULT_METHOD, detect_rpeaks, read_ecg, rhythm, screen
from carelens.settings import data_root

BEATS = set("NLRBAaJSVrFejnE/fQ?")  # the beat annotation codes (PhysioNet's `isqrs`)


def _excluded(ann: Any) -> list[tuple[int, int]]:
    spans, start = [], None
    for s, sym in zip(ann.sample, ann.symbol, strict=True):
        if sym == "[":
            start = s
        elif sym == "]" and start is not None:
            spans.append((start, s))
            start = None
    return spans


def _keep(x: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    m = np.ones(len(x), bool)
    for a, b in spans:
        m &= ~((x >= a) & (x <= b))
    return x[m]


def _af_share(ann: Any, n: int) -> float:
    """Share of the record under an (AFIB or (AFL rhythm annotation."""
    covered, current, since = 0, None, 0
    for s, sym, aux in zip(ann.sample, ann.symbol, ann.aux_note, strict=True):
        if sym == "+" and aux:
            if current in ("(AFIB", "(AFL"):
                covered += s - since
            current, since = aux.strip("\x00").strip(), s
    if current in ("(AFIB", "(AFL"):
        covered += n - since
    return covered / n


def rpeaks() -> None:
    import wfdb
    from wfdb import processing

    root = data_root() / "ecg_mitbih"
    records = [r.strip() for r in (root / "RECORDS").read_text().split() if r.strip()]
    t0 = time.perf_counter()
    per: dict[str, Any] = {}
    tp = fn = fp = 0
    af_true, af_flag = [], []
    for rec in records:
        sig = read_ecg(root / rec)
        lead = sig.lead_index()
        x = np.nan_to_num(sig.samples[:, lead])
        ann = wfdb.rdann(str(root / rec), "atr")
        spans = _excluded(ann)
        ref = _keep(np.asarray([s for s, y in zip(ann.sample, ann.symbol, strict=True) if y in BEATS]), spans)
        t = time.perf_counter()
        peaks = detect_rpeaks(x, sig.fs)
        secs = time.perf_counter() - t
        kept = _keep(peaks, spans)
        c = processing.compare_annotations(ref, kept, int(0.15 * sig.fs))
        tp, fn, fp = tp + c.tp, fn + c.fn, fp + c.fp
        hr, hr_ref = rhythm(kept, sig.fs).heart_rate_bpm, rhythm(ref, sig.fs).heart_rate_bpm
        a, _ = screen(sig, lead)
        af = _af_share(ann, len(x))
        af_true.append(af > 0.5)
        af_flag.append(any(f.id == "irregular_rhythm" for f in a.findings))
        per[rec] = {"lead": sig.leads[lead], "sensitivity": round(c.sensitivity, 5),
                    "ppv": round(c.positive_predictivity, 5), "fn": int(c.fn), "fp": int(c.fp),
                    "hr_bpm": hr, "hr_ref_bpm": hr_ref, "hr_abs_err_bpm": round(abs(hr - hr_ref), 2),
                    "af_share": round(af, 3), "irregular_flag": af_flag[-1], "triage": a.triage.level,
                    "detect_s": round(secs, 2)}
        print(rec, per[rec], flush=True)
    wall = time.perf_counter() - t0
    errs = [v["hr_abs_err_bpm"] for v in per.values()]
    yt, yf = np.asarray(af_true), np.asarray(af_flag)
    metrics = {"sensitivity": tp / (tp + fn), "ppv": tp / (tp + fp), "fn": fn, "fp": fp, "beats": tp + fn,
               "hr_abs_err_bpm": float(np.mean(errs)), "hr_abs_err_bpm_max": float(np.max(errs)),
               "records_hr_within_1bpm": int(sum(e <= 1 for e in errs)), "records": len(per),
               "af_records": int(yt.sum()), "af_records_flagged": int((yt & yf).sum()),
               "non_af_records_flagged": int((~yt & yf).sum()), "per_record": per, "wall_s": round(wall, 1)}
    targets = {"sensitivity": 0.995, "ppv": 0.995, "hr_abs_err_bpm_max": 1.0}
    baseline = {"name": "Pan-Tompkins 1985 as published on MIT-BIH (all records)",
                "metrics": {"sensitivity": 0.9976, "ppv": 0.9956}}
    print(write_result("ecg_rpeaks", "MIT-BIH Arrhythmia Database (48 records, 30 min each)", wall, metrics, targets,
                       baseline, split="all records",
                       notes=f"command: python bench/ecg.py ecg_rpeaks; detector {DEFAULT_METHOD} on lead "
                             "MLII; 150 ms window; '['..']' flutter spans excluded"))


CASES = {"ecg_rpeaks": rpeaks}

if __name__ == "__main__":
    for c in sys.argv[1:] or list(CASES):
        if c not in CASES:
            raise SystemExit(f"unknown case {c!r}; known: {', '.join(CASES)}")
        CASES[c]()
