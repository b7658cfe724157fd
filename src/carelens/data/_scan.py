"""Reading every image once: decodability, size, exact pixel hash and a perceptual thumbnail.

The perceptual fingerprint is a 16x16 grey thumbnail, centred and scaled to unit norm, so that the
dot product of two fingerprints is their Pearson correlation. Near-duplicates (several frames of one
lesion, a re-saved copy) have correlation close to 1. This is the check that found BUSI's and
HAM10000's known duplicates (../shared/data/SOURCES.md).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from carelens.data._dataset import Dataset
from carelens.data._image_io import read_image
from carelens.errors import ImageReadError

__all__ = ["THUMB", "ScanResult", "near_duplicate_pairs", "scan_dataset"]

THUMB = 16  # thumbnail side; 256-dimensional fingerprint


@dataclass(frozen=True)
class ScanResult:
    """What one pass over the images found. Rows follow the dataset's order."""

    ok: np.ndarray  # (N,) bool
    errors: dict[int, str]  # index -> why unreadable
    width: np.ndarray  # (N,) int, 0 where unreadable
    height: np.ndarray
    pixel_hash: list[str]  # "" where unreadable
    thumbs: np.ndarray  # (N, THUMB*THUMB) float32, unit norm; zeros for unreadable/flat images


def _fingerprint(rgb: np.ndarray) -> tuple[str, np.ndarray]:
    h = hashlib.sha1(usedforsecurity=False)
    h.update(str(rgb.shape).encode())
    h.update(np.ascontiguousarray(rgb).tobytes())
    grey = Image.fromarray(rgb).convert("L").resize((THUMB, THUMB), Image.Resampling.BOX)
    v = np.asarray(grey, dtype=np.float32).ravel()
    v -= v.mean()
    norm = float(np.linalg.norm(v))
    return h.hexdigest(), (v / norm if norm > 1e-6 else np.zeros_like(v))


def _scan_file(path: Path) -> tuple[str | None, int, int, str, np.ndarray]:
    try:
        rgb = read_image(path)
    except ImageReadError as exc:
        return exc.reason, 0, 0, "", np.zeros(THUMB * THUMB, np.float32)
    digest, thumb = _fingerprint(rgb)
    return None, rgb.shape[1], rgb.shape[0], digest, thumb


def _path(ds: Dataset, i: int) -> Path:
    p = ds[i].path
    assert p is not None  # only file-based datasets are read in worker processes
    return p


def _scan_chunk(paths: list[Path]) -> list[tuple[str | None, int, int, str, np.ndarray]]:
    return [_scan_file(p) for p in paths]


def scan_dataset(
    ds: Dataset,
    *,
    workers: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ScanResult:
    """Read every image of ``ds`` once (in ``workers`` processes for file sources).

    ``progress(n)`` is called with the number of images just finished.
    """
    n = len(ds)
    ok = np.zeros(n, bool)
    width = np.zeros(n, np.int64)
    height = np.zeros(n, np.int64)
    hashes = [""] * n
    thumbs = np.zeros((n, THUMB * THUMB), np.float32)
    errors: dict[int, str] = {}

    def store(i: int, res: tuple[str | None, int, int, str, np.ndarray]) -> None:
        err, w, h, digest, thumb = res
        if err is not None:
            errors[i] = err
            return
        ok[i], width[i], height[i], hashes[i], thumbs[i] = True, w, h, digest, thumb

    file_rows = [i for i in range(n) if ds[i].path is not None]
    array_rows = [i for i in range(n) if ds[i].path is None]
    for i in array_rows:
        rgb = ds.load_image(i)
        digest, thumb = _fingerprint(rgb)
        store(i, (None, rgb.shape[1], rgb.shape[0], digest, thumb))
    if progress and array_rows:
        progress(len(array_rows))

    workers = workers or min(os.cpu_count() or 1, 4)
    chunk = 128
    batches = [file_rows[k : k + chunk] for k in range(0, len(file_rows), chunk)]
    if workers <= 1 or len(file_rows) < 2 * chunk:
        for rows in batches:
            for i, res in zip(rows, _scan_chunk([ds[i].path for i in rows]), strict=True):  # type: ignore[misc]
                store(i, res)
            if progress:
                progress(len(rows))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [(rows, pool.submit(_scan_chunk, [_path(ds, i) for i in rows])) for rows in batches]
            for rows, fut in futures:
                for i, res in zip(rows, fut.result(), strict=True):
                    store(i, res)
                if progress:
                    progress(len(rows))
    return ScanResult(ok, errors, width, height, hashes, thumbs)


def near_duplicate_pairs(thumbs: np.ndarray, threshold: float, block: int = 2048) -> list[tuple[int, int, float]]:
    """All pairs ``(i, j, r)`` with ``i < j`` whose fingerprint correlation ``r >= threshold``."""
    pairs: list[tuple[int, int, float]] = []
    n = len(thumbs)
    for a in range(0, n, block):
        sims = thumbs[a : a + block] @ thumbs.T  # (b, n)
        ii, jj = np.nonzero(sims >= threshold)
        for i, j in zip(ii.tolist(), jj.tolist(), strict=True):
            gi = a + i
            if gi < j:
                pairs.append((gi, j, float(sims[i, j])))
    return pairs
