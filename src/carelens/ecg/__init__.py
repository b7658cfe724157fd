"""ECG from the signal (the ``ecg`` extra: wfdb, NeuroKit2): read WFDB / EDF / CSV records, check signal
quality, detect R-peaks with published detectors, measure rate and rhythm, screen them against cited
thresholds mapped to triage levels, and cut MIT-BIH beats into the AAMI inter-patient classification set."""

from carelens.ecg._beats import AAMI, AAMI_CLASSES, BEAT_WINDOW, DS1, DS2, BeatSet, beat_features, read_mitbih_beats
from carelens.ecg._io import EcgSignal, read_ecg, require, resample
from carelens.ecg._plot import StripWindow, evidence_window, longest_gap_window, strip_png
from carelens.ecg._ptbxl import PTBXL_FOLDS, PTBXL_SUPERCLASSES, PtbxlSet, read_ptbxl
from carelens.ecg._quality import Quality, signal_quality
from carelens.ecg._rhythm import FAST_RUN_BPM, Rhythm, fast_run, rhythm
from carelens.ecg._rpeaks import (
    DEFAULT_METHOD,
    METHODS,
    LeadChoice,
    detect_best_lead,
    detect_rpeaks,
    detector_agreement,
    local_peaks,
    localise,
    searchback,
    signal_searchback,
)
from carelens.ecg._screen import (
    VENTRICULAR_BEATS,
    BeatClassifier,
    BeatSummary,
    EcgAssessment,
    EcgFinding,
    RhythmRules,
    confirmed_longest_rr,
    load_rules,
    screen,
)

__all__ = [
    "AAMI",
    "AAMI_CLASSES",
    "BEAT_WINDOW",
    "DEFAULT_METHOD",
    "DS1",
    "DS2",
    "FAST_RUN_BPM",
    "METHODS",
    "PTBXL_FOLDS",
    "PTBXL_SUPERCLASSES",
    "VENTRICULAR_BEATS",
    "BeatClassifier",
    "BeatSet",
    "BeatSummary",
    "EcgAssessment",
    "EcgFinding",
    "EcgSignal",
    "LeadChoice",
    "PtbxlSet",
    "Quality",
    "Rhythm",
    "RhythmRules",
    "StripWindow",
    "beat_features",
    "confirmed_longest_rr",
    "detect_best_lead",
    "detect_rpeaks",
    "detector_agreement",
    "evidence_window",
    "fast_run",
    "load_rules",
    "local_peaks",
    "localise",
    "longest_gap_window",
    "read_ecg",
    "read_mitbih_beats",
    "read_ptbxl",
    "require",
    "resample",
    "rhythm",
    "screen",
    "searchback",
    "signal_quality",
    "signal_searchback",
    "strip_png",
]
