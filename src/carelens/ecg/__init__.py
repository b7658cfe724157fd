"""ECG from the signal (the ``ecg`` extra: wfdb, NeuroKit2): read WFDB / EDF / CSV records, check signal
quality, detect R-peaks with published detectors, measure rate and rhythm, and screen them against cited
thresholds mapped to triage levels."""

from carelens.ecg._io import EcgSignal, read_ecg, require, resample
from carelens.ecg._plot import strip_png
from carelens.ecg._quality import Quality, signal_quality
from carelens.ecg._rhythm import Rhythm, rhythm
from carelens.ecg._rpeaks import DEFAULT_METHOD, METHODS, detect_rpeaks, searchback
from carelens.ecg._screen import EcgAssessment, EcgFinding, RhythmRules, load_rules, screen

__all__ = [
    "DEFAULT_METHOD",
    "METHODS",
    "EcgAssessment",
    "EcgFinding",
    "EcgSignal",
    "Quality",
    "Rhythm",
    "RhythmRules",
    "detect_rpeaks",
    "load_rules",
    "read_ecg",
    "require",
    "resample",
    "rhythm",
    "screen",
    "searchback",
    "signal_quality",
    "strip_png",
]
