"""Signal quality of one lead: is it worth reading at all? Each check is reported as a flag, never hidden.

* ``lead_off``: invalid samples (NaN) or a lead flat at one value for a long stretch;
* ``flat_line``: windows whose peak-to-peak amplitude is below what any heartbeat gives;
* ``saturation``: samples stuck at the recorder's extreme values (the amplifier clipped);
* ``noisy``: much of the power above the QRS band (muscle noise, mains interference).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Quality", "signal_quality"]

FLAT_MV = 0.05  # a 1-s window under this peak-to-peak holds no QRS complex (QRS amplitudes are ~0.5-3 mV)
FLAT_SHARE = 0.2
SATURATION_SHARE = 0.01
NOISE_RATIO = 0.5  # power above 40 Hz over power in the 5-40 Hz QRS band


@dataclass(frozen=True)
class Quality:
    flags: list[str] = field(default_factory=list)
    invalid_share: float = 0.0
    flat_share: float = 0.0
    saturated_share: float = 0.0
    noise_ratio: float = 0.0

    @property
    def readable(self) -> bool:
        """Good enough to measure a rate and a rhythm from."""
        return not {"lead_off", "flat_line"} & set(self.flags)


def signal_quality(x: np.ndarray, fs: float) -> Quality:
    x = np.asarray(x, np.float64)
    invalid = float(np.isnan(x).mean())
    y = np.nan_to_num(x, nan=float(np.nanmedian(x)) if not np.isnan(x).all() else 0.0)
    w = int(fs)
    windows = y[: len(y) // w * w].reshape(-1, w) if len(y) >= w else y[None]
    flat = float((np.ptp(windows, axis=1) < FLAT_MV).mean())
    lo, hi = y.min(), y.max()
    saturated = float(((y == lo) | (y == hi)).mean()) if hi > lo else 1.0
    noise = 0.0
    if fs > 100:
        from scipy.signal import welch  # on use: the image serving path stays without scipy.signal

        f, p = welch(y - y.mean(), fs=fs, nperseg=min(len(y), int(4 * fs)))
        band = p[(f >= 5) & (f <= 40)].sum()
        noise = float(p[f > 40].sum() / band) if band > 0 else float("inf")
    flags = []
    if invalid > 0.05 or flat > 0.9:
        flags.append("lead_off")
    elif flat > FLAT_SHARE:
        flags.append("flat_line")
    if saturated > SATURATION_SHARE:
        flags.append("saturation")
    if noise > NOISE_RATIO:
        flags.append("noisy")
    return Quality(flags, round(invalid, 4), round(flat, 4), round(saturated, 4), round(noise, 4))
