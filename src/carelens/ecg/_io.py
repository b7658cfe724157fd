"""ECG signals from files: WFDB records (``.hea`` + ``.dat``, read by the ``wfdb`` package), EDF, and CSV
(one column per lead, a header with the lead names, and either a ``time`` column in seconds or a stated
sampling rate). Everything becomes one :class:`EcgSignal` in millivolts."""

from __future__ import annotations

import csv
import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from carelens.errors import DataError, MissingExtraError

__all__ = ["EcgSignal", "bandpass", "read_ecg", "require", "resample"]

MIN_SECONDS = 5.0  # shorter than this holds too few beats for a rate or a rhythm
MAX_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class EcgSignal:
    samples: np.ndarray  # (n, leads), millivolts; NaN where the recorder marked a sample invalid
    fs: float
    leads: list[str]
    name: str

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.fs

    def lead_index(self, lead: str | int | None = None) -> int:
        """The lead to analyse: by name (case-insensitive) or position; by default MLII, else II, else the first."""
        if lead is None:
            names = [n.upper() for n in self.leads]
            return next((names.index(n) for n in ("MLII", "II") if n in names), 0)
        if isinstance(lead, int) or str(lead).isdigit():
            i = int(lead)
            if not 0 <= i < len(self.leads):
                raise DataError(f"lead {i} does not exist; this record has {len(self.leads)}: {', '.join(self.leads)}")
            return i
        names = [n.upper() for n in self.leads]
        if str(lead).upper() not in names:
            raise DataError(f"lead {lead!r} is not in this record; its leads are {', '.join(self.leads)}")
        return names.index(str(lead).upper())


def _checked(samples: np.ndarray, fs: float, leads: list[str], name: str) -> EcgSignal:
    if not np.isfinite(fs) or not 50 <= fs <= 10_000:
        raise DataError(f"{name}: sampling rate {fs} Hz is not plausible for an ECG (50 to 10,000 Hz)")
    x = np.asarray(samples, np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] != len(leads):
        raise DataError(f"{name}: expected one column per lead ({len(leads)}), got shape {x.shape}")
    sec = len(x) / fs
    if not MIN_SECONDS <= sec <= MAX_SECONDS:
        raise DataError(f"{name}: {sec:.1f} s of signal; an ECG for screening needs {MIN_SECONDS:g} s to 24 h")
    return EcgSignal(x, float(fs), leads, name)


def require(module: str) -> Any:
    """An optional package of the ``ecg`` extra, or an error that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(f"ECG support needs the {module.split('.')[0]} package: pip install 'carelens[ecg]'") from None


def _wfdb(path: Path) -> EcgSignal:
    wfdb = require("wfdb")

    stem = path.with_suffix("") if path.suffix in (".hea", ".dat") else path
    if not stem.with_suffix(".hea").is_file():
        raise DataError(f"{stem}.hea not found: a WFDB record is its .hea header plus the .dat signal file")
    try:
        rec = wfdb.rdrecord(str(stem))
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read WFDB record {stem.name}: {exc}") from None
    units = [str(u).lower() for u in rec.units]
    scale = np.asarray([1e-3 if u in ("uv", "µv") else 1.0 for u in units])  # microvolts -> mV
    return _checked(rec.p_signal * scale, float(rec.fs), [str(n) for n in rec.sig_name], stem.name)


def _edf(path: Path) -> EcgSignal:
    edf = require("wfdb.io.convert.edf")
    try:
        rec = edf.read_edf(str(path))
    except (OSError, ValueError, IndexError) as exc:
        raise DataError(f"cannot read EDF file {path.name}: {exc}") from None
    units = [str(u).lower() for u in rec.units]
    scale = np.asarray([1e-3 if u in ("uv", "µv") else 1.0 for u in units])
    return _checked(rec.p_signal * scale, float(rec.fs), [str(n) for n in rec.sig_name], path.stem)


def _csv(path: Path, fs: float | None) -> EcgSignal:
    with path.open(newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        raise DataError(f"{path.name}: a CSV ECG needs a header row (lead names) and samples")
    header = [h.strip() for h in rows[0]]
    try:
        data = np.asarray([[float(v) if v.strip() else np.nan for v in r] for r in rows[1:] if r], np.float64)
    except ValueError as exc:
        raise DataError(f"{path.name}: every value after the header must be a number ({exc})") from None
    time_col = next((i for i, h in enumerate(header) if h.lower() in ("time", "t", "seconds", "time_s")), None)
    if time_col is not None:
        dt = np.diff(data[:, time_col])
        if len(dt) == 0 or (dt <= 0).any():
            raise DataError(f"{path.name}: the {header[time_col]!r} column must increase")
        fs_from_time = 1.0 / float(np.median(dt))
        fs = fs or fs_from_time
        data = np.delete(data, time_col, axis=1)
        header = [h for i, h in enumerate(header) if i != time_col]
    if fs is None:
        raise DataError(f"{path.name}: give the sampling rate (--fs, or an 'fs' form field) or a 'time' column in seconds")
    return _checked(data, float(fs), header, path.stem)


def read_ecg(path: str | Path, fs: float | None = None) -> EcgSignal:
    """A WFDB record (the ``.hea``/``.dat`` path or the record name without suffix), an ``.edf`` or a ``.csv``."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".csv":
        return _csv(p, fs)
    if suffix == ".edf":
        return _edf(p)
    if suffix in (".hea", ".dat") or p.with_suffix(".hea").is_file() or Path(f"{p}.hea").is_file():
        return _wfdb(Path(f"{p}.hea") if Path(f"{p}.hea").is_file() else p)
    raise DataError(f"{p}: not an ECG this reads (a WFDB record .hea + .dat, an .edf, or a .csv with lead columns)")


def resample(sig: EcgSignal, fs: float) -> EcgSignal:
    """The signal at ``fs`` Hz (polyphase filtering: no aliasing when going down)."""
    if abs(sig.fs - fs) < 1e-9:
        return sig
    from fractions import Fraction

    ratio = Fraction(fs / sig.fs).limit_denominator(1000)
    x = np.nan_to_num(sig.samples)
    from scipy.signal import resample_poly  # on use: the image serving path stays without scipy.signal

    return EcgSignal(resample_poly(x, ratio.numerator, ratio.denominator, axis=0), float(fs), sig.leads, sig.name)


def bandpass(x: np.ndarray, fs: float, lo: float, hi: float) -> np.ndarray:
    """``x`` through a second-order Butterworth band-pass, forwards and backwards (no phase shift); the upper edge
    kept under the Nyquist frequency of a slowly sampled recording."""
    from scipy.signal import butter, sosfiltfilt  # on use: the image serving path stays without scipy.signal

    sos = butter(2, [lo, min(hi, 0.45 * fs)], btype="bandpass", fs=fs, output="sos")
    return np.asarray(sosfiltfilt(sos, np.asarray(x, np.float64)))
