"""The ECG strip as a PNG: the lead over seconds on the usual grid, the detected beats marked. matplotlib comes
with the ``ecg`` extra (the light serving install answers ECG requests with a clear "not installed")."""

from __future__ import annotations

import io

import numpy as np

from carelens.ecg._io import require

__all__ = ["strip_png"]


def strip_png(x: np.ndarray, fs: float, peaks: np.ndarray, *, start_s: float = 0.0, seconds: float = 10.0,
              title: str = "") -> bytes:
    """``seconds`` of the lead from ``start_s`` (millivolts; 0.2 s grid) with the detected beats marked."""
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
