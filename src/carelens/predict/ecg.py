"""Signal bundles at work: a beat classifier for the ECG screen (the record's beats cut as the bundle was
trained, :func:`carelens.ecg.beat_features`, classified, counted per class and per hour, the longest fast run of
each class measured), and the assessment of a whole recording by a record model (its leads picked by name,
resampled, cut into the bundle's windows)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from carelens.bundle import SignalBundle
from carelens.ecg import BeatClassifier, BeatSummary, EcgSignal, beat_features, fast_run, read_ecg, resample
from carelens.errors import DataError
from carelens.policy import Assessment, DecisionPolicy, ModelRef, decide_multilabel
from carelens.predict.engine import Result

__all__ = ["MAX_WINDOWS", "assess_record", "assess_recordings", "beat_classifier", "record_windows"]

MAX_WINDOWS = 6  # a longer recording is read as its first six windows (one minute for PTB-XL's 10 s)


def beat_classifier(bundle: SignalBundle) -> BeatClassifier:
    """The screen's beat classifier from a beat bundle; it refuses (DataError) a recording sampled below the rate the
    bundle's beats are cut at, and the screen then goes on without beat classes, saying why."""
    ids = bundle.spec.class_ids
    rate = float(bundle.spec.window["fs"])

    def classify(x: np.ndarray, fs: float, peaks: np.ndarray) -> tuple[BeatSummary, np.ndarray]:
        if fs < rate:
            raise DataError(f"the beat model {bundle.name!r} reads beats sampled at {rate:g} Hz and this recording is "
                            f"sampled at {fs:g} Hz: its beats would have to be upsampled, which the model never saw "
                            "(the MIT-BIH beat model on PTB-XL's 100 Hz strips called ventricular or supraventricular "
                            "ectopy in 184 of 500)")
        waves, rr, kept = beat_features(x, fs, peaks)
        hours = len(x) / fs / 3600
        labels = np.full(len(peaks), "", dtype=object)
        if not len(waves):
            zero = dict.fromkeys(ids, 0)
            return BeatSummary(model=f"{bundle.name} {bundle.version}", counts=zero, share=dict.fromkeys(ids, 0.0),
                               per_hour=dict.fromkeys(ids, 0.0), uncertain_share=0.0,
                               out_of_distribution_share=0.0), labels
        proba, in_set, ind = bundle.classify(waves, rr)
        top = proba.argmax(1)
        # each beat's class where the OOD gate recognises the beat; "" where not (its class is not to be trusted)
        labels[np.flatnonzero(kept)[ind]] = np.asarray(ids, dtype=object)[top[ind]]
        counts = {c: int((top == i).sum()) for i, c in enumerate(ids)}
        # a run counts only beats like the training beats: a class called on a beat the OOD gate does not recognise
        # (noise, an artefact) is no evidence of a tachycardia (record 105's noise: a 39-beat "ventricular run" of
        # which half the beats were out of distribution; 2 beats counting in-distribution ones only)
        cut = np.asarray(peaks)[kept]  # the R-peaks of the classified beats
        runs = {c: fast_run((top == i) & ind, cut, fs) for i, c in enumerate(ids)}
        return BeatSummary(
            model=f"{bundle.name} {bundle.version}", counts=counts,
            share={c: round(n / len(top), 4) for c, n in counts.items()},
            per_hour={c: round(n / hours, 1) for c, n in counts.items()},
            fast_run={c: r[0] for c, r in runs.items()}, fast_run_s={c: r[1] for c, r in runs.items()},
            uncertain_share=round(float((in_set.sum(1) > 1).mean()), 4),
            out_of_distribution_share=round(float((~ind).mean()), 4)), labels

    return classify


def _lead_key(name: str) -> str:
    return name.strip().upper()


def record_windows(bundle: SignalBundle, sig: EcgSignal) -> np.ndarray:
    """The recording as the record model reads it: (windows, leads, samples), its leads in the bundle's order
    (matched by name, case-insensitively: aVR = AVR), at the bundle's rate, in consecutive windows of the
    bundle's length (at most :data:`MAX_WINDOWS`); missing samples as 0."""
    need = bundle.spec.leads
    have = {_lead_key(n): i for i, n in enumerate(sig.leads)}
    missing = [n for n in need if _lead_key(n) not in have]
    if missing:
        raise DataError(f"{sig.name}: model {bundle.name!r} reads the {len(need)} leads {', '.join(need)}; this "
                        f"recording lacks {', '.join(missing)} (it has {', '.join(sig.leads)})")
    fs, seconds = bundle.spec.window["fs"], bundle.spec.window["seconds"]
    x = resample(sig, fs).samples[:, [have[_lead_key(n)] for n in need]]
    n = round(fs * seconds)
    if len(x) < n:
        raise DataError(f"{sig.name}: model {bundle.name!r} reads {seconds:g} s windows; this recording is "
                        f"{len(x) / fs:.1f} s long")
    k = min(len(x) // n, MAX_WINDOWS)
    windows: np.ndarray = np.nan_to_num(x[: k * n]).T.reshape(len(need), k, n).transpose(1, 0, 2)
    return windows.astype(np.float32)


def assess_record(bundle: SignalBundle, sig: EcgSignal, policy: DecisionPolicy | None = None) -> Assessment:
    """One assessment of the recording: each condition's calibrated probability averaged over its windows, present
    and kept decided on that average; out of distribution when most windows are. Decided by the bundle's own
    policy (its decision rule) unless ``policy`` is given."""
    if bundle.multilabel is None:
        raise DataError(f"model {bundle.name!r} classifies heartbeats; send the recording to the ECG screen")
    proba, _, _, ind, pval = bundle.classify_records(record_windows(bundle, sig))
    p = proba.mean(0)
    ml = bundle.multilabel
    return decide_multilabel(p, ml.present(p), ml.kept(p), [None] * len(p), spec=bundle.labels,
                             model=ModelRef(name=bundle.name, version=bundle.version), coverage=1 - ml.alpha,
                             in_distribution=bool(ind.mean() > 0.5), ood_score=float(np.median(pval)),
                             policy=policy or bundle.policy(), source="signal")


def assess_recordings(bundle: SignalBundle, paths: Iterable[str | Path],
                      policy: DecisionPolicy | None = None) -> Iterator[Result]:
    """`carelens predict` for a record model: one result per recording (a WFDB record, .edf or .csv); one that
    cannot be read or lacks the model's leads is that result's error, the others are still assessed."""
    for path in paths:
        try:
            yield Result(str(path), assess_record(bundle, read_ecg(path), policy))
        except DataError as exc:
            yield Result(str(path), error=str(exc))
