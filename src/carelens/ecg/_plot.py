"""The ECG strip as a PNG: the lead over seconds on the usual grid, the detected beats marked, and where a strip
should start to show what the screen found. matplotlib comes with the ``ecg`` extra (the light serving install
answers ECG requests with a clear "not installed")."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from carelens.ecg._io import require
from carelens.ecg._screen import EcgAssessment

__all__ = ["StripWindow", "evidence_window", "longest_gap_window", "strip_png"]


@dataclass(frozen=True)
class StripWindow:
    """Where a strip starts, what it shows (a caption), and an interval to shade (start, end in seconds), if any."""

    start_s: float
    caption: str
    highlight: tuple[float, float] | None = None


def longest_gap_window(peaks: np.ndarray, fs: float, seconds: float = 10.0) -> StripWindow | None:
    """The ``seconds`` centred on the longest interval between two detected beats, that interval shaded; None with
    fewer than three beats."""
    p = np.asarray(peaks, np.int64)
    if len(p) < 3:
        return None
    i = int(np.argmax(np.diff(p)))
    a, b = p[i] / fs, p[i + 1] / fs
    return StripWindow(max(0.0, (a + b) / 2 - seconds / 2),
                       f"around the longest RR interval ({b - a:.2f} s at {(a + b) / 2:.0f} s)", (a, b))


def evidence_window(a: EcgAssessment, peaks: np.ndarray, fs: float, seconds: float = 10.0) -> StripWindow:
    """The strip that shows the screen's evidence: around the longest gap between beats when the screen found a
    pause (the first seconds of a recording may hold none of it), else the first ``seconds``."""
    if any(f.id == "pause" for f in a.findings):
        gap = longest_gap_window(peaks, fs, seconds)
        if gap is not None:
            return gap
    return StripWindow(0.0, f"the first {seconds:g} s")


def strip_png(x: np.ndarray, fs: float, peaks: np.ndarray, *, start_s: float = 0.0, seconds: float = 10.0,
              title: str = "", highlight: tuple[float, float] | None = None) -> bytes:
    """``seconds`` of the lead from ``start_s`` (millivolts; 0.2 s grid) with the detected beats marked and
    ``highlight`` (start, end in seconds) shaded."""
    mpl = require("matplotlib")
    mpl.use("Agg")
    plt = require("matplotlib.pyplot")
    a = max(0, int(start_s * fs))
    b = min(len(x), a + int(seconds * fs))
    t = np.arange(a, b) / fs
    fig, ax = plt.subplots(figsize=(10, 2.6))
    ax.plot(t, x[a:b], lw=0.8, color="black")
    p = np.asarray(peaks, np.int64)
    p = p[(p >= a) & (p < b)]
    ax.plot(p / fs, x[p], "v", color="tab:red", ms=6, label=f"detected beats ({len(p)})")
    if highlight is not None:
        ax.axvspan(*highlight, color="tab:orange", alpha=0.2, label=f"{highlight[1] - highlight[0]:.2f} s without a beat")
    if len(t):
        ax.set_xticks(np.arange(t[0], t[-1] + 1e-9, 0.2), minor=True)
    ax.grid(which="both", color="tab:pink", alpha=0.35, lw=0.5)
    ax.set(xlabel="seconds", ylabel="mV", title=title)
    ax.legend(loc="upper right", fontsize=8)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()
